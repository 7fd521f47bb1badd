package metrics

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// BenchmarkObserve is the metrics a relayed call records: the call's
// series (started, in flight, handled, duration) and its upstream leg's.
func BenchmarkObserve(b *testing.B) {
	m := New("test")
	m.KnowMethods([]string{"/pkg.S/M"})
	info := callinfo.New(callinfo.DoorGRPC)
	info.SetRoute("r", "c", false)
	ctx := callinfo.NewContext(context.Background(), info)
	call := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = m.observe(ctx, "/pkg.S/M", call)
		m.UpstreamDone("c", "127.0.0.1:1", codes.OK, time.Millisecond)
	}
}
