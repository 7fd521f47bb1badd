package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (a Memory not closed, a
// go-redis client not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a clock that tests move by hand; safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock starts at a fixed instant that is deliberately not a whole microsecond, so that
// the tests cover the truncation of the clock to microseconds.
func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 123_456_789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// allow calls s.Allow, fails the test on error, and checks the Decision's invariants.
func allow(t testing.TB, s Store, key string, limits ...Limit) Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.Allow(ctx, key, limits)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	checkInvariants(t, limits, d)
	return d
}

// newTestMemory returns a Memory on clock, closed when the test ends.
func newTestMemory(t testing.TB, clock *fakeClock, opts ...MemoryOption) *Memory {
	t.Helper()
	m := NewMemory(append([]MemoryOption{WithClock(clock.Now)}, opts...)...)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// mustParams returns the GCRA parameters of l, failing the test when l is invalid.
func mustParams(t testing.TB, l Limit) gcraParams {
	t.Helper()
	p, err := params(0, l)
	if err != nil {
		t.Fatalf("params(%+v): %v", l, err)
	}
	return p
}

// checkInvariants checks the relations that tie a Decision's fields together whatever the time
// of the check, exactly (to the microsecond), for any store:
//   - every duration is a whole number of microseconds;
//   - Remaining = ⌊(τ - Reset)/T⌋ for every limit;
//   - allowed: RetryAfter is 0 and T <= Reset <= τ for every limit (the call was counted);
//   - denied: RetryAfter = max over the limits of Reset + T - τ, and it is > 0.
func checkInvariants(t testing.TB, limits []Limit, d Decision) {
	t.Helper()
	if len(d.States) != len(limits) {
		t.Fatalf("len(States) = %d, want %d", len(d.States), len(limits))
	}
	if d.RetryAfter%time.Microsecond != 0 {
		t.Errorf("RetryAfter %v is not whole microseconds", d.RetryAfter)
	}
	var wait time.Duration
	for i, s := range d.States {
		p := mustParams(t, limits[i])
		T, tau := micros(p.interval), micros(p.tolerance)
		if s.Limit != limits[i] {
			t.Errorf("States[%d].Limit = %+v, want %+v", i, s.Limit, limits[i])
		}
		if s.Reset%time.Microsecond != 0 || s.Reset < 0 || s.Reset > tau {
			t.Errorf("States[%d].Reset = %v, want whole µs in [0, %v]", i, s.Reset, tau)
		}
		if want := int64((tau - s.Reset) / T); s.Remaining != want {
			t.Errorf("States[%d].Remaining = %d, want ⌊(τ-Reset)/T⌋ = %d (Reset %v)", i, s.Remaining, want, s.Reset)
		}
		if d.Allowed && s.Reset < T {
			t.Errorf("allowed, but States[%d].Reset = %v < T = %v", i, s.Reset, T)
		}
		wait = max(wait, s.Reset+T-tau)
	}
	switch {
	case d.Allowed && d.RetryAfter != 0:
		t.Errorf("allowed with RetryAfter %v, want 0", d.RetryAfter)
	case !d.Allowed && (d.RetryAfter <= 0 || d.RetryAfter != wait):
		t.Errorf("denied with RetryAfter %v, want max(Reset+T-τ) = %v (> 0)", d.RetryAfter, wait)
	}
}
