package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	"github.com/edgegate/edgegate/schema"
)

func catalogRegistry(t *testing.T) *schema.Registry {
	t.Helper()
	r, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{{File: catalogv1.File_shop_catalog_v1_catalog_proto}},
		Routed:   func(string) bool { return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTemplate(t *testing.T) {
	reg := catalogRegistry(t)
	got := describe(Options{Registry: func() *schema.Registry { return reg }})
	var m *methodJSON
	for i := range got.Methods {
		if got.Methods[i].Full == "/shop.catalog.v1.CatalogService/CreateBook" {
			m = &got.Methods[i]
		}
	}
	if m == nil {
		t.Fatalf("no CreateBook in %+v", got.Methods)
	}
	b, _ := json.Marshal(m.Template)
	// Every field at its zero value: an enum at its first value, 64-bit
	// integers as strings, a repeated field with one element, the
	// well-known types in their JSON form.
	want := `{"book":{"author":"","genre":"GENRE_UNSPECIFIED","name":"","priceCents":"0","publishTime":"1970-01-01T00:00:00Z","readingTime":"0s","stock":0,"tags":[""],"title":""},"bookId":"","parent":""}`
	if string(b) != want {
		t.Errorf("template\n%s\nwant\n%s", b, want)
	}
	types := map[string]string{}
	for _, f := range m.Fields {
		types[f.Path] = f.Type
	}
	for path, typ := range map[string]string{"parent": "string", "book.genre": "shop.catalog.v1.Genre", "book.tags": "repeated string", "book.publishTime": "google.protobuf.Timestamp", "book.priceCents": "int64"} {
		if types[path] != typ {
			t.Errorf("field %s: type %q, want %q", path, types[path], typ)
		}
	}
	if m.Kind != "unary" || len(m.Bindings) != 1 || m.Bindings[0].Verb != "POST" || m.Bindings[0].Body != "book" || m.Source != "compiled" {
		t.Errorf("%+v", m)
	}
	if got.CanCall {
		t.Error("can_call without a door")
	}
}

func TestHandler(t *testing.T) {
	reg := catalogRegistry(t)
	door := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Door-Path", r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	})
	h := Handler(Options{Registry: func() *schema.Registry { return reg }, Door: door, Listener: "public", Address: "127.0.0.1:8080"})
	get := func(path string) (int, string, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
	}
	if code, ctype, body := get("/console/"); code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, "console.js") {
		t.Errorf("/console/: %d %q", code, ctype)
	}
	if code, ctype, _ := get("/console/console.js"); code != 200 || !strings.Contains(ctype, "javascript") {
		t.Errorf("console.js: %d %q", code, ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/console/call/shop.catalog.v1.CatalogService/GetBook", nil))
	if rec.Code != http.StatusNoContent || rec.Header().Get("X-Door-Path") != "/shop.catalog.v1.CatalogService/GetBook" {
		t.Errorf("call: %d, the door saw %q", rec.Code, rec.Header().Get("X-Door-Path"))
	}
	code, _, body := get("/console/api/descriptors")
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal([]byte(body), &set); code != 200 || err != nil {
		t.Fatalf("descriptors: %d %v", code, err)
	}
	// Each file after its imports.
	seen := map[string]bool{}
	for _, f := range set.GetFile() {
		for _, d := range f.GetDependency() {
			if !seen[d] {
				t.Errorf("%s before its import %s", f.GetName(), d)
			}
		}
		seen[f.GetName()] = true
	}
	if !seen["shop/catalog/v1/catalog.proto"] || !seen["google/rpc/error_details.proto"] {
		t.Errorf("files %v", seen)
	}
	if code, _, body := get("/console/api/methods"); code != 200 || !strings.Contains(body, `"can_call":true`) || !strings.Contains(body, `"address":"127.0.0.1:8080"`) {
		t.Errorf("methods: %d %s", code, body)
	}
	if code, _, _ := get("/console/nope"); code != 404 {
		t.Errorf("/console/nope: %d", code)
	}
}
