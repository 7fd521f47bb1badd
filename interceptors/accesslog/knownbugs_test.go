package accesslog_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// A handler that panics, in the gateway's chain order (recovery outermost,
// access log inside it): the panic unwinds through the access log
// interceptor, which neither records the outcome in the call's record nor
// writes its line. A native gRPC call then has no access log line at all,
// and an HTTP door's line says code OK with HTTP status 500.
func TestKnownBugPanicNotLogged(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	rec := recovery.UnaryServerInterceptor(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	al := l.UnaryServerInterceptor()
	si := &grpc.UnaryServerInfo{FullMethod: "/shop.v1.S/Get"}
	ctx, info := callinfo.Ensure(context.Background(), callinfo.DoorGRPC)
	info.Start = time.Now()
	_, err := rec(ctx, "req", si, func(ctx context.Context, req any) (any, error) {
		return al(ctx, req, si, func(context.Context, any) (any, error) { panic("boom") })
	})
	if err == nil {
		t.Fatal("the panic was not turned into an error")
	}
	ls := lines(t, buf)
	if len(ls) == 0 || info.Err == nil {
		t.Skipf("KNOWN BUG: a panicking native call has no access log line (%d lines) and no outcome in its record (err %v)", len(ls), info.Err)
	}
	t.Errorf("this known bug no longer reproduces; turn this test into a regular one")
	checkLine(t, oneLine(t, buf), map[string]any{"code": "Internal", "method": si.FullMethod})
}
