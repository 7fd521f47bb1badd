package frontdoor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

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
