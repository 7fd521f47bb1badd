package test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/frontdoor"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/internal/callinfo"
)

func TestDoors(t *testing.T) {
	doors, up, _ := allDoors(t)
	for _, d := range doors {
		t.Run(d.name(), func(t *testing.T) {
			t.Run("success", func(t *testing.T) {
				r := d.unary(t, &testingv1.EchoRequest{Message: "héllo", Payload: []byte{0, 1, 2, 255}}, nil, 0)
				if r.st.Code() != codes.OK || len(r.resps) != 1 {
					t.Fatalf("got %v", r.st)
				}
				if got := r.resps[0]; got.GetMessage() != "héllo" || !bytes.Equal(got.GetPayload(), []byte{0, 1, 2, 255}) || got.GetServer() != "up" {
					t.Fatalf("got %v", got)
				}
				if r.header["x-request-id"] == "" {
					t.Error("no x-request-id in the response")
				}
				up.NextCall(t)
			})

			t.Run("error codes with details", func(t *testing.T) {
				for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
					info := &errdetails.ErrorInfo{Reason: "R_" + c.String(), Domain: "test.example"}
					r := d.unary(t, &testingv1.EchoRequest{FailWith: statusProto(t, c, "failed: "+c.String(), []proto.Message{info})}, nil, 0)
					if r.st.Code() != c || r.st.Message() != "failed: "+c.String() {
						t.Errorf("%v: got %v %q", c, r.st.Code(), r.st.Message())
						continue
					}
					if det := r.st.Details(); len(det) != 1 || !proto.Equal(det[0].(proto.Message), info) {
						t.Errorf("%v: details %v", c, det)
					}
					if d.name() == "rest" && r.http != frontdoor.HTTPStatus(c) {
						t.Errorf("%v: HTTP %d, want %d", c, r.http, frontdoor.HTTPStatus(c))
					}
					up.NextCall(t)
				}
			})

			t.Run("metadata in and out", func(t *testing.T) {
				r := d.unary(t, &testingv1.EchoRequest{EchoMetadata: true}, map[string]string{"x-custom": "v1", "x-request-id": "door-" + d.name()}, 0)
				if r.st.Code() != codes.OK {
					t.Fatal(r.st)
				}
				call := up.NextCall(t)
				if v := call.MD.Get("x-custom"); len(v) != 1 || v[0] != "v1" {
					t.Errorf("upstream saw x-custom %q", v)
				}
				if v := call.MD.Get("x-request-id"); len(v) != 1 || v[0] != "door-"+d.name() {
					t.Errorf("upstream saw x-request-id %q", v)
				}
				if r.header["echo-x-custom"] != "v1" {
					t.Errorf("response header echo-x-custom = %q (headers %v)", r.header["echo-x-custom"], r.header)
				}
				if r.header["x-request-id"] != "door-"+d.name() {
					t.Errorf("response x-request-id = %q", r.header["x-request-id"])
				}
			})

			t.Run("deadline exceeded", func(t *testing.T) {
				r := d.unary(t, &testingv1.EchoRequest{Delay: durationpb.New(10 * time.Second)}, nil, 300*time.Millisecond)
				if r.st.Code() != codes.DeadlineExceeded {
					t.Fatalf("got %v, want DEADLINE_EXCEEDED", r.st)
				}
				if d.name() == "rest" && r.http != http.StatusGatewayTimeout {
					t.Errorf("HTTP %d, want 504", r.http)
				}
				if up.NextCall(t).CtxErr == nil {
					t.Error("upstream call not cancelled")
				}
			})

			t.Run("server streaming", func(t *testing.T) {
				r := d.stream(t, &testingv1.EchoRequest{Message: "s", Repeat: 3}, nil)
				if r.st.Code() != codes.OK || len(r.resps) != 3 {
					t.Fatalf("got %v and %d messages", r.st, len(r.resps))
				}
				for i, m := range r.resps {
					if m.GetIndex() != int32(i) || m.GetMessage() != "s" {
						t.Errorf("message %d: %v", i, m)
					}
				}
				up.NextCall(t)
			})

			t.Run("stream error after messages", func(t *testing.T) {
				info := &errdetails.ErrorInfo{Reason: "MID", Domain: "test.example"}
				r := d.stream(t, &testingv1.EchoRequest{Repeat: 2, FailWith: statusProto(t, codes.Aborted, "mid-stream", []proto.Message{info})}, nil)
				if len(r.resps) != 2 || r.st.Code() != codes.Aborted || r.st.Message() != "mid-stream" {
					t.Fatalf("got %d messages, then %v", len(r.resps), r.st)
				}
				if det := r.st.Details(); len(det) != 1 || !proto.Equal(det[0].(proto.Message), info) {
					t.Errorf("details %v", det)
				}
				up.NextCall(t)
			})
		})
	}
}

// TestOneChainForAllDoors proves that one interceptor of the core chain
// sees the calls of every door.
func TestOneChainForAllDoors(t *testing.T) {
	up := StartEcho(t, "up")
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if ci := callinfo.FromContext(ss.Context()); ci != nil {
			mu.Lock()
			seen[ci.Door] = info.FullMethod
			mu.Unlock()
		}
		return handler(srv, ss)
	}
	gw := StartGateway(t, doorsConfig(up.Addr), gatewayInterceptors(record))
	base := "http://" + gw.Addr
	for _, d := range []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}} {
		if r := d.unary(t, &testingv1.EchoRequest{}, nil, 0); r.st.Code() != codes.OK {
			t.Fatalf("%s: %v", d.name(), r.st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, door := range []string{callinfo.DoorGRPC, callinfo.DoorGRPCWeb, callinfo.DoorREST} {
		if seen[door] != "/edgegate.testing.v1.EchoService/Unary" {
			t.Errorf("the chain did not see the %s door's call (saw %v)", door, seen)
		}
	}
	// And the access log names the door of each (the HTTP doors write the
	// line after the answer: wait for it).
	for _, door := range []string{callinfo.DoorGRPC, callinfo.DoorGRPCWeb, callinfo.DoorREST} {
		gw.Logs.AccessLine(t, `"door":"`+door+`"`)
	}
}
