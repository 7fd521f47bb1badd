package frontdoor

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/health/grpc_health_v1" // a unary and a streaming method's descriptors
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
)

func TestIsNativeGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":                true,
		"application/grpc+proto":          true,
		"application/grpc;charset=utf-8":  true,
		"application/grpc-web":            false,
		"application/grpc-web-text+proto": false,
		"application/json":                false,
		"application/grpcx":               false,
		"":                                false,
	} {
		if got := isNativeGRPC(ct); got != want {
			t.Errorf("isNativeGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestGuardDropsFirstAck checks that exactly the client's first SETTINGS
// ACK is removed (the acknowledgement of the sniffer's SETTINGS) and every
// other byte passes in order, whatever the reads' sizes.
func TestGuardDropsFirstAck(t *testing.T) {
	settings := []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100}
	ack := []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}
	headers := []byte{0, 0, 2, 1, 4, 0, 0, 0, 1, 0x82, 0x86}
	var in bytes.Buffer
	in.WriteString(http2.ClientPreface)
	in.Write(settings)
	in.Write(headers)
	in.Write(ack)
	in.Write(ack) // a second ACK belongs to the HTTP/2 server
	in.Write(headers)
	var want bytes.Buffer
	want.WriteString(http2.ClientPreface)
	want.Write(settings)
	want.Write(headers)
	want.Write(ack)
	want.Write(headers)
	for _, chunk := range []int{1, 3, 7, 9, 64} {
		client, server := net.Pipe()
		go func() {
			b := in.Bytes()
			for len(b) > 0 {
				n := min(chunk, len(b))
				_, _ = client.Write(b[:n])
				b = b[n:]
			}
			_ = client.Close()
		}()
		g := newGuardConn(&replayConn{Conn: server}, server, &sniffer{maxBlock: 1 << 16}, 0)
		g.dropAck = true
		got, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("reads of %d: got %x\nwant %x", chunk, got, want.Bytes())
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	c := NewCORS(&configv1.CORS{AllowedOrigins: []string{"https://a.example"}, MaxAge: durationpb.New(time.Minute), AllowCredentials: true})
	req := httptest.NewRequest("OPTIONS", "/x", nil)
	req.Header.Set("Origin", "https://a.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	if !c.handle(rec, req) || rec.Code != http.StatusNoContent {
		t.Fatalf("preflight: handled=%v code=%d", true, rec.Code)
	}
	h := rec.Header()
	if h.Get("Access-Control-Allow-Origin") != "https://a.example" || h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Max-Age") != "60" {
		t.Fatalf("headers %v", h)
	}
	// A simple request from an allowed origin is marked and passed on.
	req = httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Origin", "https://a.example")
	rec = httptest.NewRecorder()
	if c.handle(rec, req) || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "grpc-status") {
		t.Fatalf("simple request: %v", rec.Header())
	}
	// Another origin: no CORS headers; its preflight is refused.
	req = httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Origin", "https://b.example")
	rec = httptest.NewRecorder()
	if c.handle(rec, req) || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("disallowed origin was marked")
	}
	if NewCORS(nil) != nil {
		t.Fatal("NewCORS(nil) must be nil")
	}
}

// flushCounter is a ResponseRecorder that counts flushes.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++; f.ResponseRecorder.Flush() }

// A gRPC-Web call of a method the schema knows to answer with one message
// (Options.IsUnary) is written whole when it ends; a streaming (or unknown)
// one is flushed as it goes.
func TestGRPCWebFlushes(t *testing.T) {
	core := router.NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		f := &router.Frame{}
		if err := ss.RecvMsg(f); err != nil {
			return err
		}
		f.SetBytes([]byte{})
		return ss.SendMsg(f)
	})
	h := NewHTTPHandler(HTTPOptions{GRPCWeb: grpcweb.New(grpcweb.Options{Core: core, MaxBodyBytes: 1 << 10,
		IsUnary: func(m string) bool { return m == "/grpc.health.v1.Health/Check" }}), MaxBodyBytes: 1 << 10})
	for method, flushed := range map[string]bool{
		"/grpc.health.v1.Health/Check": false,
		"/grpc.health.v1.Health/Watch": true,
		"/unknown.Service/Method":      true,
	} {
		req := httptest.NewRequest(http.MethodPost, method, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		req.Header.Set("Content-Type", "application/grpc-web+proto")
		w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
		h.ServeHTTP(w, req)
		if got := w.flushes > 0; got != flushed {
			t.Errorf("%s: %d flushes, want flushed %v", method, w.flushes, flushed)
		}
		if body := w.Body.Bytes(); !bytes.HasPrefix(body, []byte{0, 0, 0, 0, 0, 0x80}) || !bytes.Contains(body, []byte("grpc-status: 0")) {
			t.Errorf("%s: body %q, want an empty message and an OK trailer frame", method, body)
		}
	}
}

// A preflight to a listener without http.cors is told what to configure,
// instead of a bare 404 for OPTIONS.
func TestPreflightWithoutCORS(t *testing.T) {
	h := NewHTTPHandler(HTTPOptions{})
	req := httptest.NewRequest(http.MethodOptions, "/edgegate.testing.v1.EchoService/Unary", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "http.cors.allowed_origins") || !strings.Contains(rec.Body.String(), `\"https://app.example\"`) {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"code":7`) {
		t.Errorf("not a google.rpc.Status body: %v %s", rec.Header(), rec.Body)
	}
}
