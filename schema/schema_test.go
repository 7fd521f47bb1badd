package schema_test

import (
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	"github.com/edgegate/edgegate/schema"
)

// setOf is the descriptor set of fd and its dependencies, dependencies
// first, as `buf build -o` writes one.
func setOf(fds ...protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var visit func(f protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := range imps.Len() {
			visit(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	for _, fd := range fds {
		visit(fd)
	}
	return set
}

var echoFile = testingv1.File_edgegate_testing_v1_echo_proto

func TestBuildFromEverySource(t *testing.T) {
	r, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: echoFile}},
		Sets:     []schema.FileSet{{Source: schema.Source{Kind: schema.SourceFile, Name: "api.binpb"}, Files: setOf(catalogv1.File_shop_catalog_v1_catalog_proto)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.Services() {
		names = append(names, string(s.Desc.FullName())+"@"+s.Source.String())
	}
	if got := strings.Join(names, " "); got != "edgegate.testing.v1.EchoService@compiled shop.catalog.v1.CatalogService@file:api.binpb" {
		t.Errorf("services %s", got)
	}
	if !r.IsUnary("/edgegate.testing.v1.EchoService/Unary") || r.IsUnary("/edgegate.testing.v1.EchoService/ServerStream") || r.IsUnary("/nope.S/M") {
		t.Error("IsUnary")
	}
	if m := r.Method("/shop.catalog.v1.CatalogService/GetBook"); m == nil || !m.Safe() || len(m.Bindings) != 1 || m.Bindings[0].Path != "/v1/{name=shelves/*/books/*}" {
		t.Errorf("GetBook %+v", m)
	}
}

// Only the services with a routed method are in the registry.
func TestOnlyRoutedServices(t *testing.T) {
	r, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: echoFile}, {File: catalogv1.File_shop_catalog_v1_catalog_proto}},
		Routed:   func(m string) bool { return strings.HasPrefix(m, "/edgegate.testing.v1.EchoService/") },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Services()) != 1 || r.Service("shop.catalog.v1.CatalogService") != nil {
		t.Errorf("services %v", r.Services())
	}
	for _, b := range r.Bindings() {
		if b.Method.Service.Desc.FullName() != "edgegate.testing.v1.EchoService" {
			t.Errorf("binding of an unrouted service: %s %s", b.Verb, b.Path)
		}
	}
}

// A service two sources describe differently is an error naming both.
func TestConflictingSources(t *testing.T) {
	other := setOf(echoFile)
	for _, f := range other.File {
		if f.GetName() == echoFile.Path() {
			f.MessageType = append(f.MessageType, &descriptorpb.DescriptorProto{Name: new("Extra")})
		}
	}
	_, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: echoFile}},
		Sets:     []schema.FileSet{{Source: schema.Source{Kind: schema.SourceReflection, Name: "echo"}, Files: other}},
	})
	if err == nil || !strings.Contains(err.Error(), "compiled and reflection:echo describe") {
		t.Fatalf("got %v", err)
	}
	// The same descriptors from two sources are fine.
	if _, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: echoFile}},
		Sets:     []schema.FileSet{{Source: schema.Source{Kind: schema.SourceReflection, Name: "echo"}, Files: setOf(echoFile)}},
	}); err != nil {
		t.Fatal(err)
	}
}

// Two bindings of one verb and path shape are an error naming both; a
// rule for an annotated binding sets its success status; default bindings
// bind what has none.
func TestBindings(t *testing.T) {
	_, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: echoFile}},
		Rules:    []*configv1.HttpRule{{Method: "edgegate.testing.v1.EchoService/Bidi", Pattern: &configv1.HttpRule_Post{Post: "/v1/{x=echo}:unary"}}},
	})
	if err == nil || !strings.Contains(err.Error(), "is claimed by edgegate.testing.v1.EchoService/Unary (compiled) and by edgegate.testing.v1.EchoService/Bidi (schema.http_rules[0])") {
		t.Fatalf("got %v", err)
	}
	r, err := schema.Build(schema.Input{
		Compiled:        []schema.Compiled{{File: echoFile}},
		Rules:           []*configv1.HttpRule{{Method: "edgegate.testing.v1.EchoService/Unary", Pattern: &configv1.HttpRule_Post{Post: "/v1/echo:unary"}, Body: "*", SuccessStatus: 201}},
		DefaultBindings: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if b := r.Method("/edgegate.testing.v1.EchoService/Unary").Bindings[0]; b.SuccessStatus != 201 {
		t.Errorf("success status %d", b.SuccessStatus)
	}
	if bs := r.Method("/edgegate.testing.v1.EchoService/Bidi").Bindings; len(bs) != 0 {
		t.Errorf("a client stream got a default binding: %v", bs)
	}
	var defaults []string
	for _, b := range r.Bindings() {
		if b.Origin == schema.FromDefault {
			defaults = append(defaults, b.Verb+" "+b.Path)
		}
	}
	t.Logf("default bindings: %v", defaults)
}

func TestPathShape(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/{name=shelves/*/books/*}": "/v1/shelves/*/books/*",
		"/v1/{id}:track":               "/v1/*:track",
		"/v1/files/{path=**}":          "/v1/files/**",
	} {
		if got, err := schema.PathShape(in); err != nil || got != want {
			t.Errorf("PathShape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"v1", "/v1/{", "/v1/}", "/v1/{=x}"} {
		if _, err := schema.PathShape(bad); err == nil {
			t.Errorf("PathShape(%q): no error", bad)
		}
	}
}

// IsUnary knows the methods of the registry's routed services: unary ones
// answer with one message, streams do not, unknown methods are not known.
func TestIsUnary(t *testing.T) {
	r, err := schema.Build(schema.Input{Compiled: []schema.Compiled{{File: echoFile}, {File: healthpb.File_grpc_health_v1_health_proto}}})
	if err != nil {
		t.Fatal(err)
	}
	for method, want := range map[string]bool{
		"/grpc.health.v1.Health/Check":                  true,  // unary
		"/grpc.health.v1.Health/Watch":                  false, // server streaming
		"/edgegate.testing.v1.EchoService/Unary":        true,
		"/edgegate.testing.v1.EchoService/ClientStream": false, // client streaming
		"/edgegate.testing.v1.EchoService/Bidi":         false,
		"/unknown.Service/Method":                       false,
		"/grpc.health.v1.Health":                        false, // a service, not a method
		"":                                              false,
	} {
		if got := r.IsUnary(method); got != want {
			t.Errorf("IsUnary(%q) = %v, want %v", method, got, want)
		}
	}
	var none *schema.Registry
	if none.IsUnary("/grpc.health.v1.Health/Check") {
		t.Error("a nil registry knows a method")
	}
}

// A rule for a method no source describes is an error, unless the method
// is Pending (its cluster's reflection not read yet): then it waits.
func TestRuleOfPendingMethod(t *testing.T) {
	rule := []*configv1.HttpRule{{Method: "my.v1.Later/Get", Pattern: &configv1.HttpRule_Get{Get: "/v1/later"}}}
	if _, err := schema.Build(schema.Input{Rules: rule}); err == nil || !strings.Contains(err.Error(), "my.v1.Later/Get is not a routed method of a known service") {
		t.Fatalf("unknown method: %v", err)
	}
	reg, err := schema.Build(schema.Input{Rules: rule, Pending: func(m string) bool { return m == "/my.v1.Later/Get" }})
	if err != nil || len(reg.Bindings()) != 0 {
		t.Fatalf("pending method: %v, %d bindings; want no error and no binding yet", err, len(reg.Bindings()))
	}
}
