package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/interceptors/ratelimit"
)

// go-redis's lines become JSON lines at WARN, each kind (format) at most
// once per period, the next one saying how many were left out.
func TestRedisLogger(t *testing.T) {
	var buf bytes.Buffer
	l := ratelimit.NewRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
	const dial = "redis: connection pool: failed to dial after %d attempts: %v"
	for range 1000 {
		l.Printf(context.Background(), dial, 5, "connection refused")
	}
	l.Printf(context.Background(), "redis: connection pool: conn[%d] rejected by hook", 7)
	var recs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 {
		t.Fatalf("%d lines for 1000 of one kind and 1 of another, want 2:\n%s", len(recs), buf.String())
	}
	for i, want := range []string{"connection pool: failed to dial after 5 attempts: connection refused", "connection pool: conn[7] rejected by hook"} {
		if recs[i]["msg"] != ratelimit.RedisMessage || recs[i]["level"] != "WARN" || recs[i]["detail"] != want {
			t.Errorf("line %d: %v, want WARN %q detail %q", i, recs[i], ratelimit.RedisMessage, want)
		}
	}
}
