package test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

func TestGRPCWebWire(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr))
	url := "http://" + gw.Addr + "/edgegate.testing.v1.EchoService/"
	frame := webFrame(t, &testingv1.EchoRequest{Message: "wire"})

	check := func(t *testing.T, a webAnswer, msgs int) {
		t.Helper()
		if a.code != 200 || a.grpcStatus() != "0" || len(a.messages) != msgs {
			t.Fatalf("HTTP %d, grpc-status %q, %d messages; want 200, 0, %d (trailers %v)", a.code, a.grpcStatus(), len(a.messages), msgs, a.trailers)
		}
		var resp testingv1.EchoResponse
		if err := proto.Unmarshal(a.messages[0], &resp); err != nil || resp.GetMessage() != "wire" {
			t.Fatalf("message %v %v", &resp, err)
		}
	}
	t.Run("binary unary", func(t *testing.T) {
		check(t, postWeb(t, nil, url+"Unary", "application/grpc-web+proto", frame, nil), 1)
	})
	t.Run("text unary", func(t *testing.T) {
		a := postWeb(t, nil, url+"Unary", "application/grpc-web-text", []byte(base64.StdEncoding.EncodeToString(frame)), nil)
		check(t, a, 1)
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc-web-text") {
			t.Errorf("content type %q", ct)
		}
	})
	// A text body may come in padded base64 chunks; the door checks the
	// frames after decoding them so, and the call reads those frames, to a
	// proxied method and to the gateway's own services alike.
	chunked := func(b []byte) []byte {
		// Cut where neither part is a multiple of 3 bytes, so the first
		// chunk ends in padding.
		return []byte(base64.StdEncoding.EncodeToString(b[:7]) + base64.StdEncoding.EncodeToString(b[7:]))
	}
	t.Run("text unary in padded chunks", func(t *testing.T) {
		// A message long enough to be read in one go, past the padding.
		long := strings.Repeat("chunked ", 64)
		body := chunked(webFrame(t, &testingv1.EchoRequest{Message: long}))
		if !bytes.Contains(body[:len(body)-1], []byte("=")) {
			t.Fatalf("test body %q has no padding inside", body)
		}
		a := postWeb(t, nil, url+"Unary", "application/grpc-web-text", body, nil)
		if a.code != 200 || a.grpcStatus() != "0" || len(a.messages) != 1 {
			t.Fatalf("HTTP %d, grpc-status %q %q, %d messages", a.code, a.grpcStatus(), a.grpcMessage(), len(a.messages))
		}
		var resp testingv1.EchoResponse
		if err := proto.Unmarshal(a.messages[0], &resp); err != nil || resp.GetMessage() != long {
			t.Fatalf("message %q %v", resp.GetMessage(), err)
		}
	})
	t.Run("text gateway health in padded chunks", func(t *testing.T) {
		a := postWeb(t, nil, "http://"+gw.Addr+"/grpc.health.v1.Health/Check", "application/grpc-web-text", chunked(webFrame(t, &healthpb.HealthCheckRequest{Service: "x"})), nil)
		// The named service is unknown to the gateway's health server:
		// NOT_FOUND says the request (and its service name) arrived whole.
		if a.code != 200 || a.grpcStatus() != "5" {
			t.Fatalf("HTTP %d, grpc-status %q %q; want 5 (NOT_FOUND)", a.code, a.grpcStatus(), a.grpcMessage())
		}
	})
	t.Run("text server streaming", func(t *testing.T) {
		f := webFrame(t, &testingv1.EchoRequest{Message: "wire", Repeat: 3})
		check(t, postWeb(t, nil, url+"ServerStream", "application/grpc-web-text+proto", []byte(base64.StdEncoding.EncodeToString(f)), nil), 3)
	})
	t.Run("over HTTP/2", func(t *testing.T) {
		check(t, postWeb(t, h2cClient(), url+"Unary", "application/grpc-web", frame, nil), 1)
	})
	t.Run("trailers in the final frame, custom trailers too", func(t *testing.T) {
		f := webFrame(t, &testingv1.EchoRequest{Message: "wire", EchoMetadata: true})
		a := postWeb(t, nil, url+"Unary", "application/grpc-web", f, map[string]string{"x-custom": "c1"})
		check(t, a, 1)
		if a.trailers["echo-trailer-x-custom"] != "c1" {
			t.Errorf("trailers %v", a.trailers)
		}
	})
	t.Run("trailers-only error", func(t *testing.T) {
		f := webFrame(t, &testingv1.EchoRequest{FailWith: statusProto(t, codes.NotFound, "nothing here", nil)})
		a := postWeb(t, nil, url+"Unary", "application/grpc-web", f, nil)
		if a.grpcStatus() != "5" || a.grpcMessage() != "nothing here" || len(a.messages) != 0 {
			t.Fatalf("grpc-status %q %q, %d messages", a.grpcStatus(), a.grpcMessage(), len(a.messages))
		}
	})

	// The gateway's own services answer on the gRPC-Web door too (served by
	// its grpc.Server, not proxied).
	t.Run("gateway health", func(t *testing.T) {
		a := postWeb(t, nil, "http://"+gw.Addr+"/grpc.health.v1.Health/Check", "application/grpc-web", webFrame(t, &healthpb.HealthCheckRequest{}), nil)
		var resp healthpb.HealthCheckResponse
		if a.code != 200 || a.grpcStatus() != "0" || len(a.messages) != 1 {
			t.Fatalf("HTTP %d, grpc-status %q %q, %d messages", a.code, a.grpcStatus(), a.grpcMessage(), len(a.messages))
		}
		if err := proto.Unmarshal(a.messages[0], &resp); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %v %v", &resp, err)
		}
	})
	t.Run("unrouted method", func(t *testing.T) {
		a := postWeb(t, nil, "http://"+gw.Addr+"/some.Other/Method", "application/grpc-web", frame, nil)
		if a.grpcStatus() != "12" || !strings.Contains(a.grpcMessage(), "no route for method /some.Other/Method") {
			t.Fatalf("grpc-status %q %q, want 12 (UNIMPLEMENTED)", a.grpcStatus(), a.grpcMessage())
		}
	})

	up.DropCalls()
	bad := []struct {
		name, contentType string
		body              []byte
		want              string
	}{
		{"truncated frame", "application/grpc-web", frame[:len(frame)-3], "declares 6 bytes, 3 present"},
		{"frame length past the end", "application/grpc-web", append([]byte{0, 0, 0, 1, 0}, frame[5:]...), "declares 256 bytes, 6 present"},
		{"header shorter than 5 bytes", "application/grpc-web", []byte{0, 0}, "frame header at byte 0 is 2 bytes"},
		{"bad base64", "application/grpc-web-text", []byte("!!!not base64###"), "malformed gRPC-Web text body: illegal base64"},
		{"base64 of a truncated frame", "application/grpc-web-text", []byte(base64.StdEncoding.EncodeToString(frame[:4])), "frame header at byte 0 is 4 bytes"},
		{"a trailer frame in a request", "application/grpc-web", []byte{0x80, 0, 0, 0, 0}, "trailer frame"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			before := up.Started()
			a := postWeb(t, nil, url+"Unary", c.contentType, c.body, nil)
			if s := a.grpcStatus(); s != "3" {
				t.Fatalf("grpc-status %q (HTTP %d), want 3 (INVALID_ARGUMENT)", s, a.code)
			}
			if !strings.Contains(a.grpcMessage(), c.want) {
				t.Errorf("grpc-message %q, want it to say %q", a.grpcMessage(), c.want)
			}
			// The gateway keeps serving; up to that call, marked, the
			// upstream starts none but it.
			marker := "after " + c.name
			check(t, postWeb(t, nil, url+"Unary", "application/grpc-web", frame, map[string]string{MarkerKey: marker}), 1)
			if calls := up.StartedUntil(t, before, marker); len(calls) != 0 {
				t.Fatalf("upstream saw a call to %s; want none", calls[0].Method)
			}
			up.NextCall(t)
		})
	}
}

func TestCORS(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+`
http:
  cors:
    allowed_origins: ["https://app.example"]
    allowed_headers: [x-custom]
    exposed_headers: [echo-trailer-x-custom]
    max_age: 60s
  grpc_web:
    forward_request_headers: [x-custom]
`)
	base := "http://" + gw.Addr
	preflight := func(origin, path string) (int, http.Header) {
		req, _ := http.NewRequestWithContext(Ctx(t, 5*time.Second), "OPTIONS", base+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-grpc-web,x-custom")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, path := range []string{"/edgegate.testing.v1.EchoService/Unary", "/v1/echo:unary"} {
		code, h := preflight("https://app.example", path)
		if code != http.StatusNoContent {
			t.Fatalf("%s preflight: %d", path, code)
		}
		if h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Max-Age") != "60" ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-grpc-web") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-custom") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("%s preflight headers: %v", path, h)
		}
	}
	if code, h := preflight("https://evil.example", "/v1/echo:unary"); code != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disallowed origin: %d %v", code, h)
	}

	// The actual gRPC-Web call exposes grpc-status, grpc-message, the
	// configured custom trailer and the response's own headers.
	f := webFrame(t, &testingv1.EchoRequest{EchoMetadata: true})
	a := postWeb(t, nil, base+"/edgegate.testing.v1.EchoService/Unary", "application/grpc-web", f, map[string]string{"Origin": "https://app.example", "x-custom": "v"})
	expose := strings.ToLower(a.header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"grpc-status", "grpc-message", "echo-trailer-x-custom", "x-request-id", "echo-x-custom"} {
		if !strings.Contains(expose, h) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", expose, h)
		}
	}
	if a.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("Allow-Origin %q", a.header.Get("Access-Control-Allow-Origin"))
	}
	// REST answers carry CORS headers too.
	r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", `{"message":"x"}`, map[string]string{"Origin": "https://app.example"})
	if r.code != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "x-request-id") {
		t.Errorf("REST CORS: %d %v", r.code, r.header)
	}
}

func TestListenerProtocols(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, strings.Replace(EchoConfig(up.Addr), "  - address: 127.0.0.1:0\n",
		"  - {name: grpc-only, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}\n  - {name: web, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC_WEB]}\n", 1))
	addrs := gw.Addrs()
	grpcAddr, webAddr := addrs[0].String(), addrs[1].String()

	// The dedicated gRPC port serves native gRPC only.
	if _, err := testingv1.NewEchoServiceClient(Dial(t, grpcAddr)).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("native gRPC on the gRPC port: %v", err)
	}
	if resp, err := http.Get("http://" + grpcAddr + "/v1/echo:unary"); err == nil {
		_ = resp.Body.Close()
		t.Error("HTTP/1 was answered on the dedicated gRPC port")
	}
	// The gRPC-Web-only port: gRPC-Web yes, REST and native gRPC no.
	a := postWeb(t, nil, "http://"+webAddr+"/edgegate.testing.v1.EchoService/Unary", "application/grpc-web", webFrame(t, &testingv1.EchoRequest{}), nil)
	if a.grpcStatus() != "0" {
		t.Fatalf("gRPC-Web: %v", a)
	}
	wantStatusJSON(t, doHTTP(t, nil, "POST", "http://"+webAddr+"/v1/echo:unary", "{}", nil), 404, codes.NotFound, "no route")
	_, err := testingv1.NewEchoServiceClient(Dial(t, webAddr)).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
	if err == nil {
		t.Error("native gRPC was served on a gRPC-Web-only port")
	}
}
