package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/gateway"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

// shopDescriptorSet writes the example shop's descriptors, imports
// included, as a binary FileDescriptorSet in dir.
func shopDescriptorSet(t *testing.T, dir string) string {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
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
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range []protoreflect.FileDescriptor{catalogv1.File_shop_catalog_v1_catalog_proto, ordersv1.File_shop_orders_v1_orders_proto, usersv1.File_shop_users_v1_users_proto} {
		add(fd)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shop.binpb")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The example API served by its generated handlers (compiled in) and by
// the dynamic transcoder (the same protos as a descriptor set, nothing
// compiled in) answers the same requests with the same status, content
// type and JSON.
func TestRESTCompiledAndDynamicAgree(t *testing.T) {
	compiled, _ := shopGateway(t, "")
	set := shopDescriptorSet(t, t.TempDir())
	dynamic, _ := shopGateway(t, fmt.Sprintf("schema: {descriptor_sets: [%q]}\n", set), gateway.WithCompiled(nil))
	for gw, want := range map[*Gateway]string{compiled: "compiled", dynamic: "file:" + set} {
		_, body := adminGet(t, gw, "/routes")
		if got := jsonAt(t, []byte(body), "rest.0.source"); got != want {
			t.Fatalf("source of the bindings: %v, want %s", got, want)
		}
	}
	for _, rq := range []struct{ verb, path, body string }{
		{"GET", "/v1/shelves/1/books/2", ""},
		{"GET", "/v1/shelves/1/books/99", ""},
		{"GET", "/v1/shelves/1/books", ""},
		{"GET", "/v1/books?genre=GENRE_SCIENCE", ""},
		{"GET", "/v1/books?genre=2", ""},
		{"GET", "/v1/books?genre=GENRE_NONE", ""},
		{"GET", "/v1/books?tags=classic&tags=sf", ""},
		{"GET", "/v1/books?filter.author=Mary%20Beard", ""},
		{"GET", "/v1/books?filter.maxPriceCents=1500", ""},
		{"GET", "/v1/books?published_after=1980-01-01T00:00:00Z", ""},
		{"GET", "/v1/books?published_after=yesterday", ""},
		{"GET", "/v1/books?page_size=1&page_token=1", ""},
		{"GET", "/v1/books?page_size=x", ""},
		{"GET", "/v1/books?page_size=1&page_size=2", ""},
		{"GET", "/v1/books?unknown=1", ""},
		{"GET", "/v1/shelves/1/books:array", ""},
		{"POST", "/v1/shelves/9/books?book_id=b1", `{"title":"Dune","author":"Frank Herbert","stock":3,"genre":"GENRE_FICTION"}`},
		{"POST", "/v1/shelves/9/books?book_id=b2", `{"title":"Dune","stok":3}`},
		{"POST", "/v1/shelves/9/books?book_id=b3", `{"title":`},
		{"POST", "/v1/shelves/9/books?book_id=b4", `{"stock":"three"}`},
		{"PATCH", "/v1/shelves/9/books/b1", `{"stock":7}`},
		{"PATCH", "/v1/shelves/9/books/b1?update_mask=title", `{"title":"Dune Messiah","stock":1}`},
		{"GET", "/v1/shelves/9/books/b1", ""},
		{"DELETE", "/v1/shelves/9/books/b1", ""},
		{"DELETE", "/v1/shelves/9/books/b1", ""},
		{"POST", "/v1/orders", `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":1}]}`},
		{"POST", "/v1/orders", `{"userId":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}`},
		{"POST", "/v1/orders", `[]`},
		{"GET", "/v1/orders/o-1", ""},
		{"GET", "/v1/orders/o-1:track", ""},
		{"GET", "/v1/orders/o-nope:track", ""},
		{"PUT", "/v1/users/grace", `{"display_name":"Grace Hopper"}`},
		{"GET", "/v1/users/grace", ""},
		{"GET", "/v1/users/ada%2Fx", ""},
		{"POST", "/v1/users/ada", `{}`},
	} {
		name := rq.verb + " " + rq.path
		c := doHTTP(t, nil, rq.verb, "http://"+compiled.Addr+rq.path, rq.body, nil)
		d := doHTTP(t, nil, rq.verb, "http://"+dynamic.Addr+rq.path, rq.body, nil)
		if c.code != d.code || c.header.Get("Content-Type") != d.header.Get("Content-Type") {
			t.Errorf("%s: compiled %d %q %s, dynamic %d %q %s", name, c.code, c.header.Get("Content-Type"), c.body, d.code, d.header.Get("Content-Type"), d.body)
			continue
		}
		if cj, dj := canonicalJSON(t, c.body), canonicalJSON(t, d.body); !reflect.DeepEqual(cj, dj) {
			t.Errorf("%s (%d): compiled\n%s\ndynamic\n%s", name, c.code, c.body, d.body)
		}
	}
	// A header the REST door does not forward, and a method the binding
	// does not take, the same way too.
	for _, verb := range []string{http.MethodPut, http.MethodHead} {
		c := doHTTP(t, nil, verb, "http://"+compiled.Addr+"/v1/shelves/1/books/2", "", nil)
		d := doHTTP(t, nil, verb, "http://"+dynamic.Addr+"/v1/shelves/1/books/2", "", nil)
		if c.code != d.code {
			t.Errorf("%s: compiled %d, dynamic %d", verb, c.code, d.code)
		}
	}
}

// canonicalJSON decodes a JSON document, or one per line (a stream),
// with times blanked (the upstream stamps them).
func canonicalJSON(t *testing.T, b []byte) []any {
	t.Helper()
	var out []any
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		out = append(out, blankTimes(v))
	}
	return out
}

func blankTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "time" || strings.HasSuffix(k, "Time") {
				x[k] = "T"
			} else {
				x[k] = blankTimes(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = blankTimes(e)
		}
	}
	return v
}
