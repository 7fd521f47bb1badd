package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/internal/callinfo"
	limiter "github.com/edgegate/edgegate/ratelimit"
)

// A bucket's store key is the policy, its scope and the first half of the
// SHA-256 of the key values, each ended by a zero byte: replicas share
// buckets in Redis by it, so it must not change between versions.
func TestKeyFormat(t *testing.T) {
	long := strings.Repeat("k", 300) // past the key's stack buffer
	values := []string{"203.0.113.7", "", long}
	p := &Policy{Name: "per-client", Scope: "a1b2"}
	for _, v := range values {
		p.Key = append(p.Key, func(context.Context, metadata.MD, *callinfo.Info) string { return v })
	}
	h := sha256.New()
	for _, v := range values {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	want := "per-client:a1b2:" + hex.EncodeToString(h.Sum(nil)[:16])
	if got := p.key(context.Background(), nil, nil); got != want {
		t.Fatalf("key %q, want %q", got, want)
	}
}

// The RateLimit header's value: each limit's item, remaining calls (never
// below 0) and seconds to reset, rounded up.
func TestStateHeader(t *testing.T) {
	p := &Policy{Name: "p", Limits: make([]limiter.Limit, 2)}
	d := limiter.Decision{States: []limiter.LimitState{
		{Remaining: 4, Reset: 1500 * time.Millisecond},
		{Remaining: -1, Reset: time.Minute},
	}}
	if got, want := p.state(d), `"p.0";r=4;t=2, "p.1";r=0;t=60`; got != want {
		t.Fatalf("state %q, want %q", got, want)
	}
}

// BenchmarkKeyAndState is the rate limiter's per-call string work: the
// bucket's key and the RateLimit header of the decision.
func BenchmarkKeyAndState(b *testing.B) {
	p := &Policy{Name: "per-client", Scope: "a1b2", Limits: make([]limiter.Limit, 1)}
	p.Key = []KeyFunc{func(context.Context, metadata.MD, *callinfo.Info) string { return "203.0.113.7" }}
	d := limiter.Decision{States: []limiter.LimitState{{Remaining: 99, Reset: time.Second}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.key(ctx, nil, nil)
		_ = p.state(d)
	}
}
