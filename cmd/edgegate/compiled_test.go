package main

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	"github.com/edgegate/edgegate/schema"
)

// protoServices returns the full names of the services the .proto files
// under dir define.
func protoServices(t *testing.T, dir string) []string {
	t.Helper()
	pkgRE := regexp.MustCompile(`(?m)^package\s+([\w.]+)\s*;`)
	svcRE := regexp.MustCompile(`(?m)^service\s+(\w+)\s*\{`)
	var out []string
	fsys := os.DirFS(dir)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".proto") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		pkg := pkgRE.FindSubmatch(b)
		for _, m := range svcRE.FindAllSubmatch(b, -1) {
			if pkg == nil {
				t.Fatalf("%s: a service without a package", p)
			}
			out = append(out, string(pkg[1])+"."+string(m[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestCompiledRegistersEveryService checks that the binary's compiled-in
// API (gen/compiled) registers every service of proto/, each service with
// a google.api.http binding with a REST registrar and the others without.
func TestCompiledRegistersEveryService(t *testing.T) {
	rest := map[string]schema.RESTRegistrar{}
	var got []string
	for _, c := range schema.CompiledFiles() {
		svcs := c.File.Services()
		for i := range svcs.Len() {
			sd := svcs.Get(i)
			name := string(sd.FullName())
			got = append(got, name)
			bound := false
			for j := range sd.Methods().Len() {
				bound = bound || proto.HasExtension(sd.Methods().Get(j).Options(), annotations.E_Http)
			}
			if r := c.REST[name]; bound != (r != nil) {
				t.Errorf("%s: has bindings %v, has a REST registrar %v", name, bound, r != nil)
			} else if r != nil {
				rest[name] = r
			}
		}
		for name := range c.REST {
			if c.File.Services().ByName(protoreflect.FullName(name).Name()) == nil {
				t.Errorf("%s: a REST registrar of %s, which it does not define", c.File.Path(), name)
			}
		}
	}
	slices.Sort(got)
	want := protoServices(t, filepath.Join("..", "..", "proto"))
	if !slices.Equal(got, want) {
		t.Errorf("compiled-in services %q, proto/ defines %q (make generate?)", got, want)
	}
	for _, name := range []string{"shop.catalog.v1.CatalogService", "shop.orders.v1.OrdersService", "shop.users.v1.UsersService", "edgegate.testing.v1.EchoService"} {
		if rest[name] == nil {
			t.Errorf("%s: no REST registrar", name)
		}
	}
	for name, r := range rest {
		if err := r(context.Background(), runtime.NewServeMux(), &recordConn{}); err != nil {
			t.Errorf("%s: REST registrar: %v", name, err)
		}
	}
}

// TestBinaryImportsCompiled checks that the binary links the compiled-in
// API itself (compiled.go, left out with -tags edgegate_nocompiled), not
// through a package that happens to import it.
func TestBinaryImportsCompiled(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "compiled.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if imp.Path.Value == `"github.com/edgegate/edgegate/gen/compiled"` {
			return
		}
	}
	t.Error("compiled.go does not import github.com/edgegate/edgegate/gen/compiled")
}

// TestCompiledRESTHandlersCall checks that a compiled-in REST registrar
// puts the service's handlers on the mux, calling the connection it is
// given: GET /v1/shelves/s/books/b is GetBook.
func TestCompiledRESTHandlersCall(t *testing.T) {
	var register schema.RESTRegistrar
	for _, c := range schema.CompiledFiles() {
		if r := c.REST["shop.catalog.v1.CatalogService"]; r != nil {
			register = r
		}
	}
	if register == nil {
		t.Fatal("CatalogService is not compiled in with a REST registrar")
	}
	mux := runtime.NewServeMux()
	cc := &recordConn{}
	if err := register(context.Background(), mux, cc); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/shelves/s/books/b", nil))
	if rec.Code != http.StatusOK || cc.method != "/shop.catalog.v1.CatalogService/GetBook" || cc.name != "shelves/s/books/b" {
		t.Fatalf("GET /v1/shelves/s/books/b: %d %s, called %q with name %q", rec.Code, rec.Body, cc.method, cc.name)
	}
	if !strings.Contains(rec.Body.String(), `"title":"from the connection"`) {
		t.Errorf("GET /v1/shelves/s/books/b answered %s, not the connection's book", rec.Body)
	}
}

// recordConn is a connection that answers every unary GetBook with a book
// and records the last call.
type recordConn struct {
	method, name string
}

func (c *recordConn) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	c.method = method
	if req, ok := args.(*catalogv1.GetBookRequest); ok {
		c.name = req.GetName()
	}
	if b, ok := reply.(*catalogv1.Book); ok {
		b.Name, b.Title = c.name, "from the connection"
	}
	return nil
}

func (c *recordConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("recordConn: no streams")
}
