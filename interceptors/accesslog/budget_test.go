package accesslog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/logline"
)

// notifyBuffer is a concurrency-safe log sink that says when a line with
// a message arrives.
type notifyBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	msg   string
	found chan struct{}
	once  sync.Once
}

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.Contains(string(p), `"msg":"`+b.msg+`"`) {
		b.once.Do(func() { close(b.found) })
	}
	return b.buf.Write(p)
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The lines of calls cancelled by their client are written at most
// perSecond a second; those beyond it are counted and summed up in one
// line within a second. Other lines are all written: failures, calls that
// the upstream answered CANCELLED (the call's context is not cancelled).
func TestLimitCancelled(t *testing.T) {
	out := &notifyBuffer{msg: accesslog.DroppedMessage, found: make(chan struct{})}
	var dropped atomic.Int64
	l := accesslog.New(slog.New(logline.New(out, true, slog.LevelInfo)), 1).LimitCancelled(5, func() { dropped.Add(1) })
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	write := func(ctx context.Context, err error) {
		l.Write(ctx, &callinfo.Info{Door: callinfo.DoorGRPC, Start: time.Now(), Method: "/pkg.S/M", Err: err}, 0)
	}
	start := time.Now()
	for range 50 {
		write(cancelled, status.Error(codes.Canceled, "context canceled"))
		write(context.Background(), status.Error(codes.Canceled, "the upstream said so"))
		write(cancelled, status.Error(codes.Internal, "boom"))
	}
	elapsed := time.Since(start)
	select {
	case <-out.found:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q line within 10s:\n%s", accesslog.DroppedMessage, out)
	}
	var clientCancelled, upstreamCancelled, failed, summed int
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var rec struct {
			Msg, Code, Error, Level string
			Dropped                 int
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch {
		case rec.Msg == accesslog.DroppedMessage:
			summed += rec.Dropped
			if rec.Level != "WARN" {
				t.Errorf("summary at %s, want WARN", rec.Level)
			}
		case rec.Code == "Canceled" && rec.Error == "context canceled":
			clientCancelled++
		case rec.Code == "Canceled":
			upstreamCancelled++
		case rec.Code == "Internal":
			failed++
		}
	}
	windows := int(elapsed/time.Second) + 1
	if clientCancelled < 5 || clientCancelled > 5*windows {
		t.Errorf("%d lines of client-cancelled calls in %v, want 5 a second", clientCancelled, elapsed)
	}
	if clientCancelled+summed != 50 || dropped.Load() != int64(50-clientCancelled) {
		t.Errorf("%d written, %d summed up, %d counted dropped; want 50 in all, the dropped counted", clientCancelled, summed, dropped.Load())
	}
	if upstreamCancelled != 50 || failed != 50 {
		t.Errorf("%d lines of upstream-cancelled calls and %d of failed ones, want 50 each", upstreamCancelled, failed)
	}
}
