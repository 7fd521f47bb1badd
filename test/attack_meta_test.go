package test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// The call metadata a client sends, and what of it reaches the upstream:
// forwarding headers, values gRPC cannot carry, browser headers on the
// gRPC-Web door; and the status of a call its deadline cut.

// deadlineMessage is the status message of a call whose deadline passed,
// as grpc-go words it (status.FromContextError).
const deadlineMessage = "context deadline exceeded"

// wantDeadline checks that a call ended with DEADLINE_EXCEEDED and the
// deadline's own message (and, on REST, 504).
func wantDeadline(t *testing.T, d door, kind string, r result) {
	t.Helper()
	if r.st.Code() != codes.DeadlineExceeded || r.st.Message() != deadlineMessage {
		t.Errorf("%s %s: %v %q, want DEADLINE_EXCEEDED %q", d.name(), kind, r.st.Code(), r.st.Message(), deadlineMessage)
	}
	if d.name() == "rest" && kind == "unary" && r.http != 504 {
		t.Errorf("rest unary: HTTP %d, want 504", r.http)
	}
}

// TestDeadlineStatusIsTheContexts: a call cut by its deadline (here the
// route's timeout) ends on every door, unary or streaming, with
// DEADLINE_EXCEEDED and the deadline's message, never with what the
// upstream's transport said of the reset it sent at the same moment.
func TestDeadlineStatusIsTheContexts(t *testing.T) {
	slow := &testingv1.EchoRequest{Delay: durationpb.New(5 * time.Second)}

	// Why this races: the gateway sends the route's deadline upstream (as
	// grpc-timeout), and grpc-go's server resets the stream (RST_STREAM
	// CANCEL) when its copy of that deadline passes, some microseconds
	// after the gateway's own. The gateway's upstream client reports that
	// reset as DEADLINE_EXCEEDED "stream terminated by RST_STREAM with
	// error code: CANCEL" when it reads the reset before the timer of its
	// own context has fired, which a timer late by those microseconds
	// allows. Twenty calls expiring at the same instant make the timers
	// late: without the fix, a few calls in a hundred get the reset's
	// message on each door, and 600 calls missing it every time is
	// vanishingly unlikely.
	t.Run("route timeout racing the upstream's reset", func(t *testing.T) {
		up := StartEcho(t, "up")
		gw := StartGateway(t, strings.Replace(doorsConfig(up.Addr), "    cluster: echo\n", "    cluster: echo\n    timeout: 30ms\n", 1))
		base := "http://" + gw.Addr
		for _, d := range []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}} {
			for _, kind := range []string{"unary", "stream"} {
				var mu sync.Mutex
				seen := map[string]int{}
				for range 5 {
					var wg sync.WaitGroup
					for range 20 {
						wg.Go(func() {
							var r result
							if kind == "unary" {
								r = d.unary(t, slow, nil, 0)
							} else {
								r = d.stream(t, slow, nil)
							}
							wantDeadline(t, d, kind, r)
							mu.Lock()
							seen[r.st.Message()]++
							mu.Unlock()
						})
					}
					wg.Wait()
				}
				t.Logf("%s %s: messages %v", d.name(), kind, seen)
			}
		}
	})

	// The race's window held open: an interceptor gives each call a
	// deadline whose timer never fires (its context's Done stays open, Err
	// nil), and the upstream's handlers never answer, so the upstream's
	// reset at that deadline is always what ends the upstream call, as it
	// is in the race above when the gateway's timer is late.
	t.Run("deadline passed before its timer fired", func(t *testing.T) {
		release := make(chan struct{})
		addr := StartServer(t, func(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, stuckEcho{release: release}) })
		t.Cleanup(func() { close(release) }) // before the server stops
		held := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx := &timerNotFired{Context: ss.Context(), deadline: time.Now().Add(50 * time.Millisecond)}
			return handler(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
		}
		gw := StartGateway(t, doorsConfig(addr), gatewayInterceptors(held))
		base := "http://" + gw.Addr
		for _, d := range []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}} {
			for range 3 {
				wantDeadline(t, d, "unary", d.unary(t, slow, nil, 0))
				wantDeadline(t, d, "stream", d.stream(t, slow, nil))
			}
		}
	})
}

// stuckEcho is an echo service whose calls wait for release, whatever
// their context says: only the server's transport ends them, by a reset
// at their deadline.
type stuckEcho struct {
	testingv1.UnimplementedEchoServiceServer
	release <-chan struct{}
}

func (s stuckEcho) Unary(context.Context, *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	<-s.release
	return nil, status.Error(codes.Aborted, "released")
}

func (s stuckEcho) ServerStream(*testingv1.EchoRequest, grpc.ServerStreamingServer[testingv1.EchoResponse]) error {
	<-s.release
	return status.Error(codes.Aborted, "released")
}

// timerNotFired is a context with a deadline whose timer has not fired:
// Deadline says when, Done and Err are the parent's.
type timerNotFired struct {
	context.Context
	deadline time.Time
}

func (c *timerNotFired) Deadline() (time.Time, bool) { return c.deadline, true }
