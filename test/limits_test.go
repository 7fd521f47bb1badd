package test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

func TestMaxConcurrentStreams(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"limits:\n  max_concurrent_streams: 2\n")
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	ctx := Ctx(t, 10*time.Second)
	var open []testingv1.EchoService_BidiClient
	for range 2 {
		st, err := c.Bidi(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		open = append(open, st)
	}
	// A third call on the same connection cannot start while two are open:
	// it is held back until its deadline (300ms), and, since on a slow
	// machine that could pass with no limit at all, up to the marked call
	// after, the upstream starts none but that one.
	before := up.Started()
	_, err := c.Unary(Ctx(t, 300*time.Millisecond), &testingv1.EchoRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third stream: got %v, want it held back until its deadline", err)
	}
	if err := open[0].CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := open[0].Recv(); err == nil {
		t.Fatal("want EOF")
	}
	if _, err := c.Unary(WithMarker(Ctx(t, 5*time.Second), "after one closed"), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("after one stream closed: %v", err)
	}
	if calls := up.StartedUntil(t, before, "after one closed"); len(calls) != 0 {
		t.Fatalf("the third call reached the upstream (%s) while two streams were open", calls[0].Method)
	}
}

func TestMaxHeaderListSize(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"limits:\n  max_header_list_bytes: 1024\n")
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	ctx := metadata.AppendToOutgoingContext(Ctx(t, 5*time.Second), "x-big", strings.Repeat("a", 4096))
	before := up.Started()
	_, err := c.Unary(ctx, &testingv1.EchoRequest{})
	if err == nil {
		t.Fatal("a 4 KiB header passed a 1 KiB limit")
	}
	t.Logf("oversized header: %v", err)
	// Never forwarded: up to the small call after, marked, the upstream
	// starts none but it.
	if _, err := c.Unary(WithMarker(Ctx(t, 5*time.Second), "small"), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("a small call after: %v", err)
	}
	if calls := up.StartedUntil(t, before, "small"); len(calls) != 0 {
		t.Fatalf("upstream saw a call to %s; want none", calls[0].Method)
	}
}

func TestHealthReportsDraining(t *testing.T) {
	_, _, gw := echoClient(t)
	hc := healthpb.NewHealthClient(Dial(t, gw.Addr))
	ctx, cancel := context.WithCancel(Ctx(t, 10*time.Second))
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before drain: %v %v", r, err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Shutdown(Ctx(t, 5*time.Second)) }()
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("while draining: %v %v, want NOT_SERVING", r, err)
	}
	cancel() // the watch was the last call in flight
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestMaxHeaderListSizeRawClient sends an oversized header block from a raw
// HTTP/2 client that ignores the gateway's SETTINGS: the gateway itself must
// refuse it, not just well-behaved clients.
func TestMaxHeaderListSizeRawClient(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"limits:\n  max_header_list_bytes: 1024\n")
	conn, err := net.DialTimeout("tcp", gw.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/edgegate.testing.v1.EchoService/Unary"},
		{":authority", gw.Addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
		{"x-big", strings.Repeat("a", 4096)},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: false}); err != nil {
		t.Fatal(err)
	}
	// An empty request message, so that a gateway that accepted the headers
	// would answer the call.
	_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 0})
	// Read until the stream is refused (RST_STREAM, an error status, or the
	// connection closed); it must never be answered with grpc-status 0.
	refused := false
	for !refused {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the gateway neither served nor refused the stream")
			}
			break // connection closed by the gateway: refused
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			refused = f.StreamID == 1
		case *http2.GoAwayFrame:
			refused = true
		case *http2.HeadersFrame:
			if f.StreamID == 1 {
				fields, err := hpack.NewDecoder(4096, nil).DecodeFull(f.HeaderBlockFragment())
				if err != nil {
					t.Fatal(err)
				}
				for _, hf := range fields {
					if hf.Name == "grpc-status" && hf.Value == "0" {
						t.Fatal("oversized header block was served")
					}
					if hf.Name == ":status" && hf.Value != "200" || hf.Name == "grpc-status" {
						refused = true
					}
				}
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}
	// Never forwarded: whatever the gateway did with the stream it did
	// before refusing it, so up to a marked call sent now the upstream
	// starts none but that one.
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(WithMarker(Ctx(t, 5*time.Second), "after the raw stream"), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if calls := up.StartedUntil(t, 0, "after the raw stream"); len(calls) != 0 {
		t.Fatalf("upstream saw a call to %s; want none", calls[0].Method)
	}
}

// TestHTTPInFlightLimit: the HTTP doors shed requests over the listener's
// in-flight limit at once, so that an overload cannot queue without bound.
func TestHTTPInFlightLimit(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"http: {max_in_flight: 2}\n")
	base := "http://" + gw.Addr
	done := make(chan httpResult, 2)
	for range 2 {
		go func() {
			done <- doHTTP(t, nil, "POST", base+"/v1/echo:unary", `{"delay":"1s"}`, nil)
		}()
	}
	up.WaitStarted(t, 2) // both at the upstream, so in flight in the door
	start := time.Now()
	r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", "{}", nil)
	wantStatusJSON(t, r, 503, codes.Unavailable, "2 requests in flight")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	a := postWeb(t, nil, base+"/edgegate.testing.v1.EchoService/Unary", "application/grpc-web", webFrame(t, &testingv1.EchoRequest{}), nil)
	if a.grpcStatus() != "14" {
		t.Errorf("gRPC-Web over the limit: grpc-status %q, want 14", a.grpcStatus())
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("shedding took %v; it must be at once", took)
	}
	// Native gRPC is not an HTTP door request: it still passes.
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Errorf("native gRPC: %v", err)
	}
	for range 2 {
		if r := <-done; r.code != 200 {
			t.Errorf("a request within the limit: %d %s", r.code, r.body)
		}
	}
	if r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", "{}", nil); r.code != 200 {
		t.Errorf("after: %d", r.code)
	}
}
