package frontdoor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// answer is a core handler that answers every call with one fixed
// response after reading the request: enough to drive the doors' decoding.
func answer(_ any, ss grpc.ServerStream) error {
	f := &router.Frame{}
	if err := ss.RecvMsg(f); err != nil {
		return err
	}
	f.Free()
	method, _ := grpc.MethodFromServerStream(ss)
	var resp proto.Message = &testingv1.EchoResponse{Message: "ok"}
	if strings.HasPrefix(method, "/shop.catalog") {
		resp = &catalogv1.Book{Name: "shelves/1/books/1"}
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	out := &router.Frame{}
	out.SetBytes(b)
	return ss.SendMsg(out)
}

func restHandler(t testing.TB) http.Handler {
	reg, err := schema.Build(schema.Input{Compiled: schema.CompiledFiles()})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := NewREST(&configv1.REST{}, router.NewInProcess(nil, answer), reg)
	if err != nil {
		t.Fatal(err)
	}
	return NewHTTPHandler(HTTPOptions{REST: rest, MaxBodyBytes: 1 << 16})
}

// FuzzREST drives REST request decoding (path templates, query parameters,
// JSON bodies) with arbitrary input: the handler never panics, and every
// answer is JSON, a google.rpc.Status when it is an error (in an
// {"error": …} record for a server stream's binding).
func FuzzREST(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/shelves/1/books/1", ""},
		{"GET", "/v1/books?genre=GENRE_SCIENCE&tags=a&tags=b&filter.author=x&published_after=2020-01-01T00:00:00Z", ""},
		{"POST", "/v1/shelves/1/books?book_id=x", `{"title":"t","genre":"GENRE_FICTION","readingTime":"3600s"}`},
		{"PATCH", "/v1/shelves/1/books/1?update_mask=title,stock", `{"stock":3}`},
		{"POST", "/v1/echo:unary", `{"message":"m","payload":"AAEC","delay":"1s"}`},
		{"POST", "/v1/echo:stream", `{"repeat":"x"}`},
		{"PUT", "/v1/users/a%2Fb", `{"display_name":"x"}`},
		{"POST", "/v1/orders", `{"items":[{"book":"b","quantity":"9999999999999"}]}`},
		{"GET", "/v1/books?page_size=-1&genre=99999", ""},
		{"DELETE", "/v1/%zz", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	h := restHandler(f)
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !validMethod(method) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Method, req.URL, req.RequestURI = method, u, target
		req.Body = http.NoBody
		if body != "" {
			req.Body = httpBody(body)
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		ct := rec.Header().Get("Content-Type")
		if !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: content type %q, body %q", method, target, ct, rec.Body.String())
		}
		if rec.Code >= 400 {
			var st struct {
				Code    *int   `json:"code"`
				Message string `json:"message"`
			}
			body := rec.Body.Bytes()
			var record struct{ Error json.RawMessage } // a server stream's error record
			if json.Unmarshal(body, &record) == nil && record.Error != nil {
				body = record.Error
			}
			if err := json.Unmarshal(body, &st); err != nil || st.Code == nil {
				t.Fatalf("%s %s: HTTP %d with a body that is no google.rpc.Status: %q", method, target, rec.Code, rec.Body.String())
			}
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return true
	}
	return false
}

func httpBody(s string) *bodyReader { return &bodyReader{strings.NewReader(s)} }

type bodyReader struct{ *strings.Reader }

func (bodyReader) Close() error { return nil }

// recorder is a core handler that keeps the last request it got (as sent
// upstream) and answers as answer does.
type recorder struct {
	mu   sync.Mutex
	last []byte
}

func (rc *recorder) handle(srv any, ss grpc.ServerStream) error {
	return answer(srv, &recordStream{ServerStream: ss, rc: rc})
}

type recordStream struct {
	grpc.ServerStream
	rc *recorder
}

func (s *recordStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.rc.mu.Lock()
	s.rc.last = append([]byte(nil), m.(*router.Frame).Bytes()...)
	s.rc.mu.Unlock()
	return nil
}

func (rc *recorder) take() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	b := rc.last
	rc.last = nil
	return b
}

// FuzzRESTDynamic drives the dynamic transcoder and the generated handlers
// of the same API (the example catalog and echo services) with the same
// arbitrary requests: they answer with the same status, and when both
// call upstream, with equal requests.
func FuzzRESTDynamic(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/shelves/1/books/1", ""},
		{"GET", "/v1/books?genre=GENRE_SCIENCE&tags=a&tags=b&filter.author=x&published_after=2020-01-01T00:00:00Z", ""},
		{"GET", "/v1/books?filter.maxPriceCents=3&pageSize=2&genre=1", ""},
		{"POST", "/v1/shelves/1/books?book_id=x", `{"title":"t","genre":"GENRE_FICTION","readingTime":"3600s"}`},
		{"PATCH", "/v1/shelves/1/books/1?update_mask=title,stock", `{"stock":3}`},
		{"PATCH", "/v1/shelves/1/books/1", `{"stock":3,"tags":["a"]}`},
		{"DELETE", "/v1/shelves/1/books/1", ""},
		{"POST", "/v1/echo:unary", `{"message":"m","payload":"AAEC","delay":"1s"}`},
		{"POST", "/v1/echo:stream", `{"repeat":"x"}`},
		{"GET", "/v1/shelves/1/books:array", ""},
		{"GET", "/v1/books?page_size=-1&genre=99999", ""},
		{"GET", "/v1/shelves/a%2Fb/books/c?name=x", ""},
		{"POST", "/v1/shelves//books", ""},
		{"PATCH", "/v1/shelves/1/books/1", " "},
	} {
		f.Add(s[0], s[1], s[2])
	}
	compiledReg, dynamicReg := twoRegistries(f)
	var rc, rd recorder
	compiled, err := NewREST(&configv1.REST{}, router.NewInProcess(nil, rc.handle), compiledReg)
	if err != nil {
		f.Fatal(err)
	}
	dynamic, err := NewREST(&configv1.REST{}, router.NewInProcess(nil, rd.handle), dynamicReg)
	if err != nil {
		f.Fatal(err)
	}
	hc := NewHTTPHandler(HTTPOptions{REST: compiled, MaxBodyBytes: 1 << 16})
	hd := NewHTTPHandler(HTTPOptions{REST: dynamic, MaxBodyBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !validMethod(method) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") {
			return
		}
		do := func(h http.Handler) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/", nil)
			req.Method, req.URL, req.RequestURI = method, u, target
			req.Body = http.NoBody
			if body != "" {
				req.Body = httpBody(body)
				req.ContentLength = int64(len(body))
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		c, d := do(hc), do(hd)
		if c.Code != d.Code {
			t.Fatalf("%s %s %q: compiled %d %s, dynamic %d %s", method, target, body, c.Code, c.Body, d.Code, d.Body)
		}
		bc, bd := rc.take(), rd.take()
		if (bc == nil) != (bd == nil) {
			t.Fatalf("%s %s %q: only one door called upstream (compiled %v, dynamic %v)", method, target, body, bc != nil, bd != nil)
		}
		if bc == nil {
			return
		}
		m := compiledReg.Method(methodOf(t, compiledReg, method, u.Path))
		if m == nil {
			return
		}
		a, b := dynamicpb.NewMessage(m.Desc.Input()), dynamicpb.NewMessage(m.Desc.Input())
		if proto.Unmarshal(bc, a) != nil || proto.Unmarshal(bd, b) != nil || !proto.Equal(a, b) {
			t.Fatalf("%s %s %q: upstream requests differ:\ncompiled %v\ndynamic  %v", method, target, body, a, b)
		}
	})
}

// methodOf names the method whose binding takes verb and path, by trying
// each binding's pattern with grpc-gateway's matcher (through a mux).
func methodOf(t *testing.T, reg *schema.Registry, verb, path string) string {
	t.Helper()
	for _, b := range reg.Bindings() {
		if b.Verb != verb {
			continue
		}
		mux := runtime.NewServeMux()
		matched := false
		if err := mux.HandlePath(verb, b.Path, func(http.ResponseWriter, *http.Request, map[string]string) { matched = true }); err != nil {
			continue
		}
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(verb, path, nil))
		if matched {
			return b.Method.Full
		}
	}
	return ""
}

// twoRegistries is the compiled-in API twice: from its generated Go
// types, and from descriptor sets of the same files (what the dynamic
// transcoder serves).
func twoRegistries(tb testing.TB) (compiled, dynamic *schema.Registry) {
	tb.Helper()
	files := schema.CompiledFiles()
	compiled, err := schema.Build(schema.Input{Compiled: files})
	if err != nil {
		tb.Fatal(err)
	}
	var sets []schema.FileSet
	for _, c := range files {
		set := &descriptorpb.FileDescriptorSet{}
		addFile(set, map[string]bool{}, c.File)
		sets = append(sets, schema.FileSet{Source: schema.Source{Kind: schema.SourceFile, Name: c.File.Path()}, Files: set})
	}
	dynamic, err = schema.Build(schema.Input{Sets: sets})
	if err != nil {
		tb.Fatal(err)
	}
	return compiled, dynamic
}

// addFile adds fd and its imports (first) to set.
func addFile(set *descriptorpb.FileDescriptorSet, seen map[string]bool, fd protoreflect.FileDescriptor) {
	if seen[fd.Path()] {
		return
	}
	seen[fd.Path()] = true
	for i := range fd.Imports().Len() {
		addFile(set, seen, fd.Imports().Get(i).FileDescriptor)
	}
	set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
}

// BenchmarkRESTTranscode is the cost of one unary REST call through the
// REST door alone (a core that answers at once), by the generated
// handlers of the compiled-in echo service and by the dynamic transcoder
// from the same descriptors: which way is faster for a compiled-in
// service.
func BenchmarkRESTTranscode(b *testing.B) {
	compiledReg, dynamicReg := twoRegistries(b)
	body := `{"message":"` + strings.Repeat("x", 100) + `"}`
	for _, c := range []struct {
		name string
		reg  *schema.Registry
	}{{"compiled", compiledReg}, {"dynamic", dynamicReg}} {
		b.Run(c.name, func(b *testing.B) {
			rest, err := NewREST(&configv1.REST{}, router.NewInProcess(nil, answer), c.reg)
			if err != nil {
				b.Fatal(err)
			}
			h := NewHTTPHandler(HTTPOptions{REST: rest, MaxBodyBytes: 1 << 16})
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/echo:unary", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
