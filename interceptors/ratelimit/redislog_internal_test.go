package ratelimit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Once the period has passed, the next line of a kind is written and
// says how many were left out since the last.
func TestRedisLoggerSaysSuppressed(t *testing.T) {
	var buf bytes.Buffer
	l := NewRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), 10*time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range 4 {
		l.Printf(context.Background(), "redis: dial %v", "refused")
		now = now.Add(time.Second)
	}
	now = now.Add(10 * time.Second)
	l.Printf(context.Background(), "redis: dial %v", "refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[1], `"suppressed":3`) {
		t.Fatalf("want 2 lines, the second with suppressed 3:\n%s", buf.String())
	}
}
