package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/frontdoor"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// result is what a client of any door got from one call.
type result struct {
	resps  []*testingv1.EchoResponse
	header map[string]string // response headers (and, for gRPC, header metadata), lower-case keys
	st     *status.Status    // OK for success
	http   int               // HTTP status; 0 for native gRPC
}

// door is a front door as a client uses it. md is request metadata
// (headers); timeout, when positive, is the call's deadline.
type door interface {
	name() string
	unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result
	stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result
}

// grpcDoor is grpc-go against the native gRPC door.
type grpcDoor struct{ c testingv1.EchoServiceClient }

func (grpcDoor) name() string { return "grpc" }

func outCtx(t *testing.T, md map[string]string, timeout time.Duration) context.Context {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx := Ctx(t, timeout)
	for k, v := range md {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v)
	}
	return ctx
}

func flatten(md metadata.MD) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		out[k] = strings.Join(v, ",")
	}
	return out
}

func (d grpcDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	var hdr metadata.MD
	resp, err := d.c.Unary(outCtx(t, md, timeout), req, grpc.Header(&hdr))
	r := result{header: flatten(hdr), st: status.Convert(err)}
	if err == nil {
		r.resps = []*testingv1.EchoResponse{resp}
	}
	return r
}

func (d grpcDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	st, err := d.c.ServerStream(outCtx(t, md, 0), req)
	if err != nil {
		return result{st: status.Convert(err)}
	}
	var r result
	for {
		resp, err := st.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.st = status.Convert(err)
			}
			break
		}
		r.resps = append(r.resps, resp)
	}
	hdr, _ := st.Header()
	r.header = flatten(hdr)
	if r.st == nil {
		r.st = status.New(codes.OK, "")
	}
	return r
}

// webDoor is connect-go's independent gRPC-Web client.
type webDoor struct {
	base   string
	client *http.Client // nil: http.DefaultClient
}

func (webDoor) name() string { return "grpc-web" }

func connectStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return status.New(codes.Unknown, err.Error())
	}
	sp := &spb.Status{Code: int32(ce.Code()), Message: ce.Message()}
	for _, d := range ce.Details() {
		m, err := d.Value()
		if err != nil {
			continue
		}
		if a, err := anypb.New(m); err == nil {
			sp.Details = append(sp.Details, a)
		}
	}
	return status.FromProto(sp)
}

func httpFlatten(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return out
}

func (d webDoor) ctx(t *testing.T, timeout time.Duration) context.Context {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return Ctx(t, timeout)
}

func (d webDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	c := connect.NewClient[testingv1.EchoRequest, testingv1.EchoResponse](d.httpClient(), d.base+"/edgegate.testing.v1.EchoService/Unary", connect.WithGRPCWeb())
	cr := connect.NewRequest(req)
	for k, v := range md {
		cr.Header().Set(k, v)
	}
	resp, err := c.CallUnary(d.ctx(t, timeout), cr)
	r := result{st: connectStatus(err)}
	if err == nil {
		r.resps = []*testingv1.EchoResponse{resp.Msg}
		r.header = httpFlatten(resp.Header())
	} else {
		var ce *connect.Error
		if errors.As(err, &ce) {
			r.header = httpFlatten(ce.Meta())
		}
	}
	return r
}

func (d webDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	c := connect.NewClient[testingv1.EchoRequest, testingv1.EchoResponse](d.httpClient(), d.base+"/edgegate.testing.v1.EchoService/ServerStream", connect.WithGRPCWeb())
	cr := connect.NewRequest(req)
	for k, v := range md {
		cr.Header().Set(k, v)
	}
	st, err := c.CallServerStream(d.ctx(t, 0), cr)
	if err != nil {
		return result{st: connectStatus(err)}
	}
	defer func() { _ = st.Close() }()
	var r result
	for st.Receive() {
		r.resps = append(r.resps, proto.CloneOf(st.Msg()))
	}
	r.st = connectStatus(st.Err())
	r.header = httpFlatten(st.ResponseHeader())
	return r
}

// restDoor is plain net/http against the REST door.
type restDoor struct {
	base   string
	client *http.Client // nil: http.DefaultClient
}

func (restDoor) name() string { return "rest" }

var restJSON = protojson.MarshalOptions{}

func (d restDoor) do(t *testing.T, path string, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) (code int, header http.Header, body []byte) {
	t.Helper()
	body, err := restJSON.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodPost, d.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	for k, v := range md {
		hreq.Header.Set(k, v)
	}
	if timeout > 0 {
		hreq.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", timeout.Milliseconds()))
	}
	resp, err := d.httpClient().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// restStatus decodes a google.rpc.Status JSON body.
func restStatus(t *testing.T, b []byte) *status.Status {
	t.Helper()
	var sp spb.Status
	if err := protojson.Unmarshal(b, &sp); err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v: %s", err, b)
	}
	return status.FromProto(&sp)
}

func (d restDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	code, h, b := d.do(t, "/v1/echo:unary", req, md, timeout)
	r := result{header: httpFlatten(h), http: code}
	if code != http.StatusOK {
		r.st = restStatus(t, b)
		return r
	}
	var out testingv1.EchoResponse
	if err := protojson.Unmarshal(b, &out); err != nil {
		t.Fatalf("response: %v: %s", err, b)
	}
	r.resps, r.st = []*testingv1.EchoResponse{&out}, status.New(codes.OK, "")
	return r
}

func (d restDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	code, h, b := d.do(t, "/v1/echo:stream", req, md, 0)
	r := result{header: httpFlatten(h), http: code, st: status.New(codes.OK, "")}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var rec struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("stream record %q: %v", line, err)
		}
		if rec.Error != nil {
			r.st = restStatus(t, rec.Error)
			continue
		}
		var out testingv1.EchoResponse
		if err := protojson.Unmarshal(rec.Result, &out); err != nil {
			t.Fatalf("stream result %s: %v", rec.Result, err)
		}
		r.resps = append(r.resps, &out)
	}
	return r
}

// doorsConfig exposes the echo upstream on every door, with the REST
// header allowlists the cases use.
func doorsConfig(addr string) string {
	return EchoConfig(addr) + `
http:
  rest:
    forward_request_headers: [x-custom]
    expose_response_headers: [echo-x-custom, echo-x-request-id]
`
}

// allDoors starts an echo upstream and a gateway and returns a client per
// door.
func allDoors(t *testing.T) ([]door, *Upstream, *Gateway) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr))
	base := "http://" + gw.Addr
	return []door{
		grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))},
		webDoor{base: base},
		restDoor{base: base},
	}, up, gw
}

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
	// And the access log names the door of each.
	for _, door := range []string{callinfo.DoorGRPC, callinfo.DoorGRPCWeb, callinfo.DoorREST} {
		if !strings.Contains(gw.Logs.String(), `"door":"`+door+`"`) {
			t.Errorf("no access log line for door %s", door)
		}
	}
}

func (d webDoor) httpClient() *http.Client  { return orDefault(d.client) }
func (d restDoor) httpClient() *http.Client { return orDefault(d.client) }

func orDefault(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}
