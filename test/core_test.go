package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
	"github.com/edgegate/edgegate/interceptors/recovery"
)

func TestCallTypes(t *testing.T) {
	c, up, _ := echoClient(t)
	ctx := Ctx(t, 10*time.Second)

	t.Run("unary", func(t *testing.T) {
		resp, err := c.Unary(ctx, &testingv1.EchoRequest{Message: "hello", Payload: []byte{0, 1, 2, 255}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetMessage() != "hello" || !bytes.Equal(resp.GetPayload(), []byte{0, 1, 2, 255}) || resp.GetServer() != "up" {
			t.Fatalf("got %v", resp)
		}
		if c := up.NextCall(t); c.Method != "Unary" {
			t.Fatalf("upstream saw %s", c.Method)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		st, err := c.ServerStream(ctx, &testingv1.EchoRequest{Message: "s", Repeat: 5})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			resp, err := st.Recv()
			if err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if resp.GetIndex() != int32(i) || resp.GetMessage() != "s" {
				t.Fatalf("recv %d: got %v", i, resp)
			}
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after 5 messages: got %v, want EOF", err)
		}
		up.NextCall(t)
	})

	t.Run("client streaming", func(t *testing.T) {
		st, err := c.ClientStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "b", "c"} {
			if err := st.Send(&testingv1.EchoRequest{Message: m, Payload: []byte(m)}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := st.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetMessage() != "a,b,c" || string(resp.GetPayload()) != "abc" || resp.GetIndex() != 3 {
			t.Fatalf("got %v", resp)
		}
		up.NextCall(t)
	})

	t.Run("bidi streaming", func(t *testing.T) {
		st, err := c.Bidi(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			m := fmt.Sprintf("ping %d", i)
			if err := st.Send(&testingv1.EchoRequest{Message: m}); err != nil {
				t.Fatal(err)
			}
			resp, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetMessage() != m || resp.GetIndex() != int32(i) {
				t.Fatalf("got %v, want %q", resp, m)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("got %v, want EOF", err)
		}
		up.NextCall(t)
	})

	t.Run("server streaming error after messages", func(t *testing.T) {
		st, err := c.ServerStream(ctx, &testingv1.EchoRequest{Repeat: 2, FailWith: statusProto(t, codes.Aborted, "mid-stream", nil)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := st.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		_, err = st.Recv()
		if status.Code(err) != codes.Aborted || status.Convert(err).Message() != "mid-stream" {
			t.Fatalf("got %v, want ABORTED mid-stream", err)
		}
	})
}

func TestMetadataTrailersAndStatusPassThrough(t *testing.T) {
	c, up, _ := echoClient(t)
	ctx := Ctx(t, 10*time.Second)
	bin := string([]byte{0, 1, 2, 0xfe, 0xff})
	ctx = metadata.AppendToOutgoingContext(ctx, "x-custom", "hello world", "x-blob-bin", bin, "x-multi", "one", "x-multi", "two")

	var hdr, tlr metadata.MD
	msg := "héllo wörld ✓ 日本語 100% \"bad\" {}\t"
	details := []proto.Message{
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "message", Description: "ünïcode"}}},
		&errdetails.ErrorInfo{Reason: "R", Domain: "d.example", Metadata: map[string]string{"k": "v"}},
	}
	_, err := c.Unary(ctx, &testingv1.EchoRequest{EchoMetadata: true, FailWith: statusProto(t, codes.FailedPrecondition, msg, details)},
		grpc.Header(&hdr), grpc.Trailer(&tlr))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("code %v, want FAILED_PRECONDITION (%v)", st.Code(), err)
	}
	if st.Message() != msg {
		t.Fatalf("message %q, want %q byte-exact", st.Message(), msg)
	}
	got := st.Details()
	if len(got) != 2 || !proto.Equal(got[0].(proto.Message), details[0]) || !proto.Equal(got[1].(proto.Message), details[1]) {
		t.Fatalf("details %v, want %v", got, details)
	}

	// Request metadata reached the upstream, as the upstream saw it.
	call := up.NextCall(t)
	if v := call.MD.Get("x-custom"); len(v) != 1 || v[0] != "hello world" {
		t.Fatalf("upstream x-custom %q", v)
	}
	if v := call.MD.Get("x-blob-bin"); len(v) != 1 || v[0] != bin {
		t.Fatalf("upstream x-blob-bin %q, want %q", v, bin)
	}
	if v := call.MD.Get("x-multi"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Fatalf("upstream x-multi %q", v)
	}
	if v := call.MD.Get("x-request-id"); len(v) != 1 || v[0] == "" {
		t.Fatalf("upstream x-request-id %q, want one generated id", v)
	}

	// Response headers and trailers came back, binary values byte-exact.
	for _, want := range []struct {
		md       metadata.MD
		key, val string
	}{
		{hdr, "echo-x-custom", "hello world"},
		{hdr, "echo-x-blob-bin", bin},
		{tlr, "echo-trailer-x-custom", "hello world"},
		{tlr, "echo-trailer-x-blob-bin", bin},
	} {
		if v := want.md.Get(want.key); len(v) != 1 || v[0] != want.val {
			t.Errorf("%s = %q, want %q", want.key, v, want.val)
		}
	}
	if v := hdr.Get("x-request-id"); len(v) != 1 || v[0] != call.MD.Get("x-request-id")[0] {
		t.Errorf("response x-request-id %q, upstream saw %q", v, call.MD.Get("x-request-id"))
	}

	// A successful streaming call carries headers and trailers too.
	hdr, tlr = nil, nil
	st2, err := c.ServerStream(metadata.AppendToOutgoingContext(Ctx(t, 5*time.Second), "x-request-id", "client-id-1"), &testingv1.EchoRequest{EchoMetadata: true, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if hdr, err = st2.Header(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st2.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	tlr = st2.Trailer()
	if v := hdr.Get("echo-x-request-id"); len(v) != 1 || v[0] != "client-id-1" {
		t.Errorf("upstream saw x-request-id %q, want the client's", v)
	}
	if v := hdr.Get("x-request-id"); len(v) != 1 || v[0] != "client-id-1" {
		t.Errorf("response x-request-id %q, want the client's", v)
	}
	if v := tlr.Get("echo-trailer-x-request-id"); len(v) != 1 || v[0] != "client-id-1" {
		t.Errorf("trailer %q", v)
	}
}

func TestDeadlineExceededCancelsUpstream(t *testing.T) {
	c, up, _ := echoClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Unary(ctx, &testingv1.EchoRequest{Delay: durationpb.New(30 * time.Second)})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
	call := up.NextCall(t)
	if call.CtxErr == nil {
		t.Fatal("upstream call was not cancelled")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("upstream call outlived the client's deadline by far")
	}
	// The deadline travelled upstream (as grpc-timeout).
	if call.Deadline.IsZero() || call.Deadline.After(start.Add(time.Second)) {
		t.Fatalf("upstream deadline %v; want the client's, about %v", call.Deadline, start.Add(300*time.Millisecond))
	}
}

func TestRouteTimeout(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, strings.Replace(EchoConfig(up.Addr), "cluster: echo\n", "cluster: echo\n    timeout: 200ms\n", 1))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	_, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(10 * time.Second)})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED from the route timeout", err)
	}
	if up.NextCall(t).CtxErr == nil {
		t.Fatal("upstream call was not cancelled")
	}
	// Within the timeout, calls pass.
	if _, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(10 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
}

func TestClientCancellationReachesUpstream(t *testing.T) {
	c, up, _ := echoClient(t)
	ctx, cancel := context.WithCancel(Ctx(t, 10*time.Second))
	st, err := c.Bidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&testingv1.EchoRequest{Message: "first"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	// The second request makes the upstream wait; the client gives up
	// once the upstream has read it, and so waits.
	if err := st.Send(&testingv1.EchoRequest{Delay: durationpb.New(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	up.WaitReceived(t, 2)
	cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("client got %v, want CANCELED", err)
	}
	call := up.NextCall(t)
	if call.Method != "Bidi" || call.CtxErr == nil {
		t.Fatalf("upstream saw %+v; want its Bidi call cancelled", call)
	}
}

func TestLargeMessages(t *testing.T) {
	up := StartEcho(t, "up", grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	cfg := EchoConfig(up.Addr) + "limits:\n  max_message_bytes: 8388608\n"
	gw := StartGateway(t, cfg)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(32<<20), grpc.MaxCallSendMsgSize(32<<20))))
	payload := bytes.Repeat([]byte("0123456789abcdef"), (4<<20)/16) // 4 MiB
	resp, err := c.Unary(Ctx(t, 30*time.Second), &testingv1.EchoRequest{Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.GetPayload(), payload) {
		t.Fatal("4 MiB payload changed on the way")
	}
	up.NextCall(t)

	// Over the configured limit: rejected by the gateway, never forwarded:
	// up to a marked call after the answer, the upstream starts none.
	before := up.Started()
	big := make([]byte, 9<<20)
	_, err = c.Unary(Ctx(t, 30*time.Second), &testingv1.EchoRequest{Payload: big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("9 MiB message: got %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := c.Unary(WithMarker(Ctx(t, 10*time.Second), "after 9 MiB"), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if calls := up.StartedUntil(t, before, "after 9 MiB"); len(calls) != 0 {
		t.Fatalf("upstream saw a call to %s; want none", calls[0].Method)
	}
}

func TestCompressedCalls(t *testing.T) {
	c, _, _ := echoClient(t)
	payload := bytes.Repeat([]byte("compress me "), 10000)
	resp, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Payload: payload}, grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.GetPayload(), payload) {
		t.Fatal("payload changed")
	}
	st, err := c.Bidi(Ctx(t, 10*time.Second), grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Send(&testingv1.EchoRequest{Payload: payload}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil || !bytes.Equal(r.GetPayload(), payload) {
			t.Fatalf("bidi gzip: %v", err)
		}
	}
}

func TestUnroutedMethods(t *testing.T) {
	_, _, gw := echoClient(t)
	conn := Dial(t, gw.Addr)
	for _, method := range []string{
		"/edgegate.testing.v1.NoSuchService/Unary",
		"/no.such.pkg.Service/Method",
	} {
		err := conn.Invoke(Ctx(t, 5*time.Second), method, &testingv1.EchoRequest{}, &testingv1.EchoResponse{})
		st := status.Convert(err)
		if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), method) {
			t.Errorf("%s: got %v, want UNIMPLEMENTED naming the method", method, err)
		}
	}
	// An unknown method of a routed service is the upstream's answer.
	err := conn.Invoke(Ctx(t, 5*time.Second), "/edgegate.testing.v1.EchoService/NoSuchMethod", &testingv1.EchoRequest{}, &testingv1.EchoResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: got %v, want UNIMPLEMENTED", err)
	}
}

func TestUpstreamDown(t *testing.T) {
	addr := FreeAddr(t)
	gw := StartGateway(t, EchoConfig(addr))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	for range 2 {
		_, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{})
		st := status.Convert(err)
		if st.Code() != codes.Unavailable {
			t.Fatalf("got %v, want UNAVAILABLE", err)
		}
		if !strings.Contains(st.Message(), `"echo"`) || strings.Contains(st.Message(), "127.0.0.1") {
			t.Fatalf("message %q: want the cluster named, no address", st.Message())
		}
	}
	if !strings.Contains(gw.Logs.String(), addr) {
		t.Error("the log should keep the upstream's real error")
	}
}

func TestRoutingAcrossClusters(t *testing.T) {
	a := StartEcho(t, "a")
	b := StartEcho(t, "b")
	users := StartServer(t, func(s *grpc.Server) { usersv1.RegisterUsersServiceServer(s, shop.NewUsers()) })
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: a, endpoints: [%q]}
  - {name: b, endpoints: [%q]}
  - {name: users, endpoints: [%q]}
routes:
  - {name: echo-unary, match: {method: edgegate.testing.v1.EchoService/Unary}, cluster: b}
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: a}
  - {name: shop, match: {package: shop}, cluster: users}
`, a.Addr, b.Addr, users))
	conn := Dial(t, gw.Addr)
	echo := testingv1.NewEchoServiceClient(conn)
	ctx := Ctx(t, 10*time.Second)
	r, err := echo.Unary(ctx, &testingv1.EchoRequest{})
	if err != nil || r.GetServer() != "b" {
		t.Fatalf("Unary: %v %v, want served by b (method route)", r, err)
	}
	st, err := echo.ServerStream(ctx, &testingv1.EchoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r, err = st.Recv()
	if err != nil || r.GetServer() != "a" {
		t.Fatalf("ServerStream: %v %v, want served by a (service route)", r, err)
	}
	u, err := usersv1.NewUsersServiceClient(conn).GetUser(ctx, &usersv1.GetUserRequest{UserId: "ada"})
	if err != nil || u.GetDisplayName() != "Ada Lovelace" {
		t.Fatalf("GetUser: %v %v (package route)", u, err)
	}
	_, err = usersv1.NewUsersServiceClient(conn).GetUser(ctx, &usersv1.GetUserRequest{UserId: "nobody"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetUser nobody: %v, want NOT_FOUND from the upstream", err)
	}
}

func TestPanicDoesNotTakeGatewayDown(t *testing.T) {
	up := StartEcho(t, "up")
	panicky := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if md, _ := metadata.FromIncomingContext(ss.Context()); len(md.Get("x-test-panic")) > 0 {
			panic("test panic")
		}
		return handler(srv, ss)
	}
	gw := StartGateway(t, EchoConfig(up.Addr), gatewayInterceptors(panicky))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	for range 3 {
		_, err := c.Unary(metadata.AppendToOutgoingContext(Ctx(t, 5*time.Second), "x-test-panic", "1"), &testingv1.EchoRequest{})
		if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != recovery.Message {
			t.Fatalf("got %v, want INTERNAL %q", err, recovery.Message)
		}
		if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{Message: "still here"}); err != nil {
			t.Fatalf("after a panic: %v", err)
		}
	}
	if !strings.Contains(gw.Logs.String(), "test panic") {
		t.Error("the panic was not logged")
	}
}

func TestAccessLog(t *testing.T) {
	c, _, gw := echoClient(t)
	ctx := metadata.AppendToOutgoingContext(Ctx(t, 5*time.Second), "x-request-id", "log-me-1")
	req := &testingv1.EchoRequest{Payload: make([]byte, 100)}
	resp, err := c.Unary(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	line := gw.Logs.AccessLine(t, "log-me-1")
	for _, want := range []string{
		`"door":"grpc"`, `"method":"/edgegate.testing.v1.EchoService/Unary"`, `"route":"echo"`, `"upstream":"echo"`, `"code":"OK"`,
		fmt.Sprintf(`"bytes_in":%d`, proto.Size(req)), fmt.Sprintf(`"bytes_out":%d`, proto.Size(resp)), `"peer":"127.0.0.1:`, `"duration_ms":`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line %s lacks %s", line, want)
		}
	}
}

// A unary method is forwarded as a unary call: a client that half-closes
// without a request message gets INTERNAL, and the upstream sees nothing.
func TestUnaryWithoutRequest(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr))
	conn := Dial(t, gw.Addr)
	ctx := Ctx(t, 10*time.Second)
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/edgegate.testing.v1.EchoService/Unary")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	err = cs.RecvMsg(&testingv1.EchoResponse{})
	if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "without a request message") {
		t.Fatalf("got %v, want INTERNAL naming the missing request", err)
	}
	// The gateway keeps serving, and the upstream's first call is this one:
	// had the gateway forwarded the first, it would have before answering
	// it, so before this one, on the same connection to the upstream.
	c := testingv1.NewEchoServiceClient(conn)
	if _, err := c.Unary(metadata.AppendToOutgoingContext(ctx, "x-call", "after"), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if call := up.NextCall(t); call.Method != "Unary" || strings.Join(call.MD.Get("x-call"), ",") != "after" {
		t.Fatalf("upstream's first call: %s %v, want the call after", call.Method, call.MD)
	}
}

// A start whose clusters do not connect within their connect timeout says
// so in the log, naming them, instead of only "ready".
func TestStartWithUnreachableClusters(t *testing.T) {
	up := StartEcho(t, "up")
	cfg := fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
clusters:
  - {name: echo, endpoints: [%q], connect_timeout: 300ms}
  - {name: gone, endpoints: [%q], connect_timeout: 300ms}
routes:
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
  - {match: {default: true}, cluster: gone}
`, up.Addr, FreeAddr(t))
	gw := StartGateway(t, cfg)
	line := gw.Logs.WaitFor(t, "a warning naming the unreachable cluster", func(logs string) bool {
		return strings.Contains(logs, "upstream clusters not reachable")
	})
	if !strings.Contains(line, `"clusters":"gone"`) {
		t.Errorf("the warning does not name only the cluster that did not connect:\n%s", line)
	}
	// Every cluster down: the warning says that nothing is reachable.
	all := StartGateway(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
clusters: [{name: gone, endpoints: [%q], connect_timeout: 300ms}]
routes: [{match: {default: true}, cluster: gone}]
`, FreeAddr(t)))
	all.Logs.WaitContains(t, "no upstream cluster is reachable")
}
