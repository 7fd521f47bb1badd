package grpcweb

import (
	"bytes"
	"encoding/base64"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/router"
)

// echoOnce answers every call with one fixed response after reading the
// request.
func echoOnce(_ any, ss grpc.ServerStream) error {
	f := &router.Frame{}
	if err := ss.RecvMsg(f); err != nil {
		return err
	}
	f.Free()
	b, err := proto.Marshal(&testingv1.EchoResponse{Message: "ok"})
	if err != nil {
		return err
	}
	out := &router.Frame{}
	out.SetBytes(b)
	return ss.SendMsg(out)
}

// FuzzGRPCWeb drives gRPC-Web request decoding (framing, base64) with
// arbitrary bodies through both back ends of the door: the in-process
// core (proxied methods) and improbable-eng's wrapper in front of a real
// grpc.Server (the gateway's own services). Never a panic, always a
// grpc-status, and a malformed body is never forwarded.
func FuzzGRPCWeb(f *testing.F) {
	good, _ := proto.Marshal(&testingv1.EchoRequest{Message: "m"})
	frame := append([]byte{0, 0, 0, 0, byte(len(good))}, good...)
	f.Add(frame, false, false)
	f.Add([]byte(base64.StdEncoding.EncodeToString(frame)), true, false)
	f.Add([]byte(base64.StdEncoding.EncodeToString(frame)), true, true)
	f.Add(frame[:3], false, true)
	f.Add([]byte{0x80, 0, 0, 0, 0}, false, false)
	f.Add([]byte("AAAA=AAAA=="), true, false)
	f.Add(append(frame, frame...), false, true)
	var calls atomic.Int64
	counting := func(srv any, ss grpc.ServerStream) error {
		calls.Add(1)
		return echoOnce(srv, ss)
	}
	s := grpc.NewServer(grpc.ForceServerCodecV2(router.NewCodec()), grpc.UnknownServiceHandler(counting))
	doors := map[bool]*Door{
		false: New(Options{Core: router.NewInProcess(nil, counting), MaxBodyBytes: 1 << 16}),
		true:  New(Options{Server: s, Own: []string{"edgegate.testing.v1.EchoService"}, MaxBodyBytes: 1 << 16}),
	}
	f.Fuzz(func(t *testing.T, body []byte, text, own bool) {
		ct := "application/grpc-web+proto"
		if text {
			ct = "application/grpc-web-text"
		}
		req := httptest.NewRequest("POST", "/edgegate.testing.v1.EchoService/Unary", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Grpc-Web", "1")
		rec := httptest.NewRecorder()
		before := calls.Load()
		doors[own].ServeHTTP(rec, req)
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
