package frontdoor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	"github.com/edgegate/edgegate/router"
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
	rest, err := NewREST(&configv1.REST{}, router.NewInProcess(nil, answer, 0))
	if err != nil {
		t.Fatal(err)
	}
	return NewHTTPHandler(HTTPOptions{REST: rest, MaxBodyBytes: 1 << 16})
}

// FuzzREST drives REST request decoding (path templates, query parameters,
// JSON bodies) with arbitrary input: the handler never panics, and every
// answer is JSON, a google.rpc.Status when it is an error.
func FuzzREST(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/shelves/1/books/1", ""},
		{"GET", "/v1/books?genre=GENRE_SCIENCE&tags=a&tags=b&filter.author=x&published_after=2020-01-01T00:00:00Z", ""},
		{"POST", "/v1/shelves/1/books?book_id=x", `{"title":"t","genre":"GENRE_FICTION","readingTime":"3600s"}`},
		{"PATCH", "/v1/shelves/1/books/1?update_mask=title,stock", `{"stock":3}`},
		{"POST", "/v1/echo:unary", `{"message":"m","payload":"AAEC","delay":"1s"}`},
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
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Code == nil {
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

// FuzzGRPCWeb drives gRPC-Web request decoding (framing, base64) with
// arbitrary bodies through the real grpc.Server: never a panic, always a
// grpc-status, and a malformed body is never forwarded.
func FuzzGRPCWeb(f *testing.F) {
	good, _ := proto.Marshal(&testingv1.EchoRequest{Message: "m"})
	frame := append([]byte{0, 0, 0, 0, byte(len(good))}, good...)
	f.Add(frame, false)
	f.Add([]byte(base64.StdEncoding.EncodeToString(frame)), true)
	f.Add(frame[:3], false)
	f.Add([]byte{0x80, 0, 0, 0, 0}, false)
	f.Add([]byte("AAAA=AAAA=="), true)
	f.Add(append(frame, frame...), false)
	var calls atomic.Int64
	counting := func(srv any, ss grpc.ServerStream) error {
		calls.Add(1)
		return answer(srv, ss)
	}
	s := grpc.NewServer(grpc.ForceServerCodecV2(router.NewCodec()), grpc.UnknownServiceHandler(counting))
	h := NewHTTPHandler(HTTPOptions{GRPCWeb: NewGRPCWeb(s), MaxBodyBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte, text bool) {
		ct := "application/grpc-web+proto"
		if text {
			ct = "application/grpc-web-text"
		}
		req := httptest.NewRequest("POST", "/edgegate.testing.v1.EchoService/Unary", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Grpc-Web", "1")
		rec := httptest.NewRecorder()
		before := calls.Load()
		h.ServeHTTP(rec, req)
		gs := rec.Header().Get("Grpc-Status")
		if gs == "" && !bytes.Contains(rec.Body.Bytes(), []byte("grpc-status")) {
			// Text answers are base64: look inside.
			dec, _ := decodeBase64Chunks(rec.Body.Bytes())
			if !bytes.Contains(dec, []byte("grpc-status")) {
				t.Fatalf("no grpc-status in the answer to %q: headers %v body %q", body, rec.Header(), rec.Body.Bytes())
			}
		}
		if gs == "3" && calls.Load() != before {
			t.Fatalf("a body rejected as malformed was forwarded: %q", body)
		}
	})
}
