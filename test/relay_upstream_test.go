package test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/test/attack"
)

// rawUpstream listens on loopback and serves its n-th connection (from 0)
// with serve(n, conn), until the test ends.
func rawUpstream(t *testing.T, serve func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				serve(n, c)
			})
		}
	})
	return ln.Addr().String()
}

// h2Frames reads the client preface of c, sends SETTINGS, and calls
// onRequest when a request has ended (END_STREAM), until the connection
// ends; SETTINGS are acknowledged meanwhile.
func h2Frames(c net.Conn, onRequest func(fr *http2.Framer, id uint32)) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				onRequest(fr, f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				onRequest(fr, f.StreamID)
			}
		}
	}
}

// answerEcho answers stream id with an EchoResponse from server, as a
// gRPC server would: headers, the message, trailers with grpc-status 0.
func answerEcho(fr *http2.Framer, id uint32, server string) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: bytes.Clone(hb.Bytes()), EndHeaders: true})
	b, _ := proto.Marshal(&testingv1.EchoResponse{Server: server})
	_ = fr.WriteData(id, false, attack.Message(b))
	hb.Reset()
	_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
}

// A call the upstream never processed (GOAWAY naming an earlier stream)
// is made again on a new connection, whatever the method and with no
// retry policy, on every door.
func TestRelayRetriesACallTheUpstreamNeverSaw(t *testing.T) {
	for _, name := range []string{"grpc", "grpc-web", "rest"} {
		t.Run(name, func(t *testing.T) {
			// The first call the upstream gets is answered GOAWAY naming
			// no stream: it was not processed. Every later one is served.
			var calls atomic.Int32
			addr := rawUpstream(t, func(_ int, c net.Conn) {
				h2Frames(c, func(fr *http2.Framer, id uint32) {
					if calls.Add(1) == 1 {
						_ = fr.WriteGoAway(0, http2.ErrCodeNo, []byte("restarting"))
						return
					}
					answerEcho(fr, id, "raw")
				})
			})
			gw := StartGateway(t, doorsConfig(addr))
			r := doorNamed(t, name, gw).unary(t, &testingv1.EchoRequest{Message: "again"}, nil, 0)
			if r.st.Code() != codes.OK || len(r.resps) != 1 || r.resps[0].GetServer() != "raw" {
				t.Fatalf("%s: %v %v, want the call served after the GOAWAY", name, r.st, r.resps)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("the upstream got %d calls, want 2 (the refused one and its retry)", n)
			}
		})
	}
}

// An upstream's RST_STREAM reaches a native client as RST_STREAM with
// the same code, and the other doors as the status grpc-go maps it to;
// the gateway keeps serving.
func TestRelayPassesUpstreamResets(t *testing.T) {
	addr := rawUpstream(t, func(_ int, c net.Conn) {
		h2Frames(c, func(fr *http2.Framer, id uint32) {
			_ = fr.WriteRSTStream(id, http2.ErrCodeEnhanceYourCalm)
		})
	})
	gw := StartGateway(t, doorsConfig(addr))

	// A raw HTTP/2 client sees the frame itself.
	h, err := attack.Dial(gw.Addr, nil, []http2.Setting{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	id, err := h.Open(grpcFields(gw.Addr), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Fr.WriteData(id, true, attack.Message(nil)); err != nil {
		t.Fatal(err)
	}
	var code http2.ErrCode
	_, err = h.Frames(Patience, func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				code = f.ErrCode
				return true
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				t.Errorf("headers %v, want RST_STREAM", f.Fields)
				return true
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.Fr.WriteSettingsAck()
			}
		}
		return false
	})
	if err != nil || code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("raw client: %v, RST_STREAM %v; want ENHANCE_YOUR_CALM", err, code)
	}

	for _, name := range []string{"grpc", "grpc-web", "rest"} {
		r := doorNamed(t, name, gw).unary(t, &testingv1.EchoRequest{}, nil, 0)
		if r.st.Code() != codes.ResourceExhausted || r.st.Message() != "stream terminated by RST_STREAM with error code: ENHANCE_YOUR_CALM" {
			t.Errorf("%s: %v, want RESOURCE_EXHAUSTED from the reset", name, r.st)
		}
		if name == "rest" && r.http != 429 {
			t.Errorf("rest: HTTP %d, want 429", r.http)
		}
	}
}

// doorNamed is a client of gw's door called name.
func doorNamed(t *testing.T, name string, gw *Gateway) door {
	base := "http://" + gw.Addr
	switch name {
	case "grpc":
		return grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}
	case "grpc-web":
		return webDoor{base: base}
	default:
		return restDoor{base: base}
	}
}
