package main

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	storefrontv1 "github.com/edgegate/edgegate/gen/shop/storefront/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// request is a CodeGeneratorRequest to generate files with parameter,
// holding them and their dependencies, dependencies first.
func request(parameter string, files ...protoreflect.FileDescriptor) *pluginpb.CodeGeneratorRequest {
	req := &pluginpb.CodeGeneratorRequest{Parameter: proto.String(parameter)}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
		req.FileToGenerate = append(req.FileToGenerate, fd.Path())
	}
	return req
}

// run runs the plugin on req with compiled.go in compiled and returns the
// generated files by name.
func run(t *testing.T, req *pluginpb.CodeGeneratorRequest, compiled string) map[string]string {
	t.Helper()
	p, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := generate(p, compiled); err != nil {
		t.Fatal(err)
	}
	resp := p.Response()
	if resp.Error != nil {
		t.Fatal(resp.GetError())
	}
	out := map[string]string{}
	for _, f := range resp.GetFile() {
		out[f.GetName()] = f.GetContent()
	}
	return out
}

// TestRepoProtos runs the plugin on the repo's protos, as buf.gen.yaml
// does, and compares every generated file with testdata/<name>.golden.
func TestRepoProtos(t *testing.T) {
	req := request("paths=source_relative",
		configv1.File_edgegate_config_v1_config_proto,
		testingv1.File_edgegate_testing_v1_echo_proto,
		catalogv1.File_shop_catalog_v1_catalog_proto,
		ordersv1.File_shop_orders_v1_orders_proto,
		usersv1.File_shop_users_v1_users_proto,
		storefrontv1.File_shop_storefront_v1_storefront_proto)
	out := run(t, req, "compiled")
	want := []string{
		"compiled/compiled.go",
		"edgegate/testing/v1/echo.edgegate.go",
		"shop/catalog/v1/catalog.edgegate.go",
		"shop/orders/v1/orders.edgegate.go",
		"shop/storefront/v1/storefront.edgegate.go",
		"shop/users/v1/users.edgegate.go",
	}
	var names []string
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("generated %q, want %q", names, want)
	}
	for _, name := range names {
		golden := filepath.Join("testdata", filepath.FromSlash(name)+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, []byte(out[name]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (go test -update writes it)", err)
		}
		if !bytes.Equal(b, []byte(out[name])) {
			t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", name, golden, out[name])
		}
	}
}

// TestGeneratedIsInGen checks that the golden files are what gen/ holds:
// buf.gen.yaml runs this plugin as the test does.
func TestGeneratedIsInGen(t *testing.T) {
	testdata, gen := os.DirFS("testdata"), os.DirFS(filepath.Join("..", "..", "gen"))
	err := fs.WalkDir(testdata, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".golden") {
			return err
		}
		name := strings.TrimSuffix(p, ".golden")
		want, err := fs.ReadFile(testdata, p)
		if err != nil {
			return err
		}
		got, err := fs.ReadFile(gen, name)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("gen/%s is not testdata/%s: run make generate", name, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// file is a proto3 file of package pkg with services: each service is a
// name and whether its one method has a google.api.http binding.
func file(name, pkg string, services ...struct {
	name  string
	bound bool
}) protoreflect.FileDescriptor {
	msg := strings.ToUpper(path.Base(name)[:1]) + strings.TrimSuffix(path.Base(name)[1:], ".proto") + "Message"
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String(name),
		Package:     proto.String(pkg),
		Syntax:      proto.String("proto3"),
		Dependency:  []string{"google/api/annotations.proto"},
		Options:     &descriptorpb.FileOptions{GoPackage: proto.String("example.com/api/" + strings.ReplaceAll(pkg, ".", "/"))},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String(msg)}},
	}
	for _, s := range services {
		opts := &descriptorpb.MethodOptions{}
		if s.bound {
			proto.SetExtension(opts, annotations.E_Http, &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/m"}})
		}
		fdp.Service = append(fdp.Service, &descriptorpb.ServiceDescriptorProto{
			Name: proto.String(s.name),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Do"), InputType: proto.String("." + pkg + "." + msg), OutputType: proto.String("." + pkg + "." + msg), Options: opts,
			}},
		})
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	return fd
}

// TestOnlyBoundServicesHaveREST checks that a service without a
// google.api.http binding is registered without a REST registrar, and a
// file without services gets no file.
func TestOnlyBoundServicesHaveREST(t *testing.T) {
	type svc = struct {
		name  string
		bound bool
	}
	two := file("my/api/v1/api.proto", "my.api.v1", svc{"Bound", true}, svc{"Unbound", false})
	none := file("my/api/v1/unbound.proto", "my.api.v1", svc{"Hidden", false})
	empty := file("my/api/v1/types.proto", "my.api.v1")
	out := run(t, request("paths=source_relative", two, none, empty), "compiled")
	if _, ok := out["my/api/v1/types.edgegate.go"]; ok {
		t.Error("a file without services has a .edgegate.go")
	}
	api := out["my/api/v1/api.edgegate.go"]
	if !strings.Contains(api, `"my.api.v1.Bound": func(`) || !strings.Contains(api, "RegisterBoundHandlerClient(ctx, mux, NewBoundClient(cc))") {
		t.Errorf("api.edgegate.go has no REST registrar of Bound:\n%s", api)
	}
	if strings.Contains(api, "Unbound") {
		t.Errorf("api.edgegate.go has a REST registrar of Unbound:\n%s", api)
	}
	unbound := out["my/api/v1/unbound.edgegate.go"]
	if !strings.Contains(unbound, "File: File_my_api_v1_unbound_proto,") || strings.Contains(unbound, "REST:") || strings.Contains(unbound, "grpc-gateway") {
		t.Errorf("unbound.edgegate.go registers REST handlers or no file:\n%s", unbound)
	}
	compiled := out["compiled/compiled.go"]
	if strings.Count(compiled, `_ "example.com/api/my/api/v1"`) != 1 {
		t.Errorf("compiled.go does not import the package once:\n%s", compiled)
	}

	if out := run(t, request("paths=source_relative", two), "-"); len(out) != 1 {
		t.Errorf("compiled=- generated %d files, want only api.edgegate.go", len(out))
	}
	if out := run(t, request("paths=source_relative", two), "internal/api"); !strings.Contains(out["internal/api/compiled.go"], "package api\n") {
		t.Errorf("compiled=internal/api: %v", out)
	}
	p, err := protogen.Options{}.New(request("paths=source_relative", two))
	if err != nil {
		t.Fatal(err)
	}
	if err := generate(p, "../up"); err == nil {
		t.Error("compiled=../up: no error")
	}
}
