package router

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/upstream"
)

// pastDeadline is a context whose deadline has passed while its timer has
// not fired yet: Done is open and Err nil, as a context.WithDeadline is in
// the instant after its deadline.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// Once the call's context is done, or its deadline has passed, the client
// is told the context's status, not what the upstream's transport said of
// the reset it sent at the same deadline.
func TestUpstreamErrorOfADoneContext(t *testing.T) {
	pool, err := upstream.New([]upstream.Spec{{Config: &configv1.Cluster{Name: "users", Endpoints: []string{"127.0.0.1:1"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	cl := pool.Get("users")
	p := NewProxy(nil, ProxyOptions{})
	reset := status.Error(codes.DeadlineExceeded, "stream terminated by RST_STREAM with error code: CANCEL")

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want *status.Status
	}{
		{"deadline exceeded", expired, reset, status.New(codes.DeadlineExceeded, "context deadline exceeded")},
		{"deadline passed, timer not fired", pastDeadline{context.Background()}, reset, status.New(codes.DeadlineExceeded, "context deadline exceeded")},
		{"cancelled", cancelled, status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL"), status.New(codes.Canceled, "context canceled")},
		{"within its time: the upstream's own", context.Background(), status.Error(codes.DeadlineExceeded, "upstream's own deadline"), status.New(codes.DeadlineExceeded, "upstream's own deadline")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := status.Convert(p.upstreamError(tc.ctx, tc.err, cl, "/users.v1.S/Get"))
			if got.Code() != tc.want.Code() || got.Message() != tc.want.Message() {
				t.Errorf("upstreamError = %v %q, want %v %q", got.Code(), got.Message(), tc.want.Code(), tc.want.Message())
			}
		})
	}
}
