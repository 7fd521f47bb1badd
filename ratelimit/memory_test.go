package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemoryRefill walks one limit through time: burst, deny, refill one call every T, and a
// client that waits exactly RetryAfter is allowed while one that waits 1µs less is not.
func TestMemoryRefill(t *testing.T) {
	clock := newFakeClock()
	m := newTestMemory(t, clock)
	l := Limit{Requests: 10, Period: time.Second, Burst: 2} // T 100ms, τ 200ms

	steps := []struct {
		advance    time.Duration
		allowed    bool
		retryAfter time.Duration
		remaining  int64
		reset      time.Duration
	}{
		{0, true, 0, 1, 100 * time.Millisecond},
		{0, true, 0, 0, 200 * time.Millisecond},
		{0, false, 100 * time.Millisecond, 0, 200 * time.Millisecond},
		{99_999 * time.Microsecond, false, time.Microsecond, 0, 100_001 * time.Microsecond},
		{time.Microsecond, true, 0, 0, 200 * time.Millisecond}, // waited exactly RetryAfter
		{50 * time.Millisecond, false, 50 * time.Millisecond, 0, 150 * time.Millisecond},
		{50 * time.Millisecond, true, 0, 0, 200 * time.Millisecond},
		{350 * time.Millisecond, true, 0, 1, 100 * time.Millisecond}, // idle > τ: full burst again
		{time.Hour, true, 0, 1, 100 * time.Millisecond},
		{0, true, 0, 0, 200 * time.Millisecond},
		// Partial refill: 150ms later one call fits, with 50ms of credit towards the next.
		{150 * time.Millisecond, true, 0, 0, 150 * time.Millisecond},
		{0, false, 50 * time.Millisecond, 0, 150 * time.Millisecond},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		d := allow(t, m, "k", l)
		if d.Allowed != s.allowed || d.RetryAfter != s.retryAfter ||
			d.States[0].Remaining != s.remaining || d.States[0].Reset != s.reset {
			t.Fatalf("step %d: got allowed %v retry %v remaining %d reset %v, want %v %v %d %v",
				i, d.Allowed, d.RetryAfter, d.States[0].Remaining, d.States[0].Reset,
				s.allowed, s.retryAfter, s.remaining, s.reset)
		}
	}
}

// TestMemoryRemainingReset checks Remaining and Reset while a drained burst refills. The probes
// pair the limit with one that is exhausted on the same key: they are denied, so they report
// the limit's state without changing it.
func TestMemoryRemainingReset(t *testing.T) {
	clock := newFakeClock()
	m := newTestMemory(t, clock)
	l := Limit{Requests: 10, Period: time.Second} // T 100ms, τ 1s
	blocker := Limit{Requests: 1, Period: 24 * time.Hour, Burst: 1}
	for range 10 {
		allow(t, m, "k", l)
	}
	allow(t, m, "k", blocker)
	var at time.Duration // since the burst was drained
	for _, tc := range []struct {
		at        time.Duration
		remaining int64
		reset     time.Duration
	}{
		{0, 0, time.Second},
		{99 * time.Millisecond, 0, 901 * time.Millisecond},
		{100 * time.Millisecond, 1, 900 * time.Millisecond},
		{350 * time.Millisecond, 3, 650 * time.Millisecond},
		{999_999 * time.Microsecond, 9, time.Microsecond},
		{time.Second, 10, 0},
		{time.Hour, 10, 0},
	} {
		clock.Advance(tc.at - at)
		at = tc.at
		d := allow(t, m, "k", l, blocker)
		if d.Allowed {
			t.Fatalf("at %v: allowed, want denied by the blocker", tc.at)
		}
		if s := d.States[0]; s.Remaining != tc.remaining || s.Reset != tc.reset {
			t.Errorf("at %v: Remaining %d Reset %v, want %d %v", tc.at, s.Remaining, s.Reset, tc.remaining, tc.reset)
		}
	}
}

// TestMemoryConcurrentOneKey: 50 goroutines × 40 calls on one key with Burst 100 and a long
// period allow exactly 100 calls.
func TestMemoryConcurrentOneKey(t *testing.T) {
	m := newTestMemory(t, newFakeClock())
	l := Limit{Requests: 100, Period: 24 * time.Hour, Burst: 100}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		hammer(t, &wg, m, "hot", l, 40, &allowed, &denied)
	}
	wg.Wait()
	if allowed.Load() != 100 || denied.Load() != 1900 {
		t.Errorf("allowed %d, denied %d; want 100 and 1900", allowed.Load(), denied.Load())
	}
}

// hammer starts a goroutine on wg that makes calls checks of key against
// l on store, counting the allowed and denied ones.
func hammer(t *testing.T, wg *sync.WaitGroup, store Store, key string, l Limit, calls int, allowed, denied *atomic.Int64) {
	wg.Go(func() {
		for range calls {
			d, err := store.Allow(context.Background(), key, []Limit{l})
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			} else {
				denied.Add(1)
			}
		}
	})
}

// TestMemoryConcurrentKeys runs many keys at once, with the real clock: each key is allowed
// exactly its burst (the period is long enough that nothing refills).
func TestMemoryConcurrentKeys(t *testing.T) {
	m := NewMemory()
	t.Cleanup(func() { _ = m.Close() })
	l := Limit{Requests: 5, Period: 24 * time.Hour}
	const keys = 64
	var counts [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 * keys {
				k := (i + g) % keys
				d, err := m.Allow(context.Background(), "key-"+strconv.Itoa(k), []Limit{l})
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					counts[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range counts {
		if n := counts[k].Load(); n != 5 {
			t.Errorf("key-%d: %d allowed, want 5", k, n)
		}
	}
}

// TestMemoryEviction: the sweep removes exactly the entries whose TAT is past, and the
// goroutine started by NewMemory does it by itself.
func TestMemoryEviction(t *testing.T) {
	t.Run("sweep", func(t *testing.T) {
		clock := newFakeClock()
		m := newTestMemory(t, clock, WithSweepInterval(time.Hour)) // the goroutine stays idle
		short := Limit{Requests: 1, Period: time.Second}
		long := Limit{Requests: 1, Period: time.Hour}
		for i := range 1000 {
			allow(t, m, fmt.Sprintf("short-%d", i), short)
		}
		allow(t, m, "long", long)
		allow(t, m, "both", short, long) // two entries
		if n := m.entries(); n != 1003 {
			t.Fatalf("entries = %d, want 1003", n)
		}
		clock.Advance(999_999 * time.Microsecond)
		m.sweep()
		if n := m.entries(); n != 1003 {
			t.Fatalf("after 1s-1µs: entries = %d, want 1003 (none expired yet)", n)
		}
		clock.Advance(time.Microsecond)
		m.sweep()
		if n := m.entries(); n != 2 {
			t.Fatalf("after 1s: entries = %d, want 2 (long, both's long)", n)
		}
		// Eviction loses nothing: "both" is still limited by its hour limit.
		if d := allow(t, m, "both", short, long); d.Allowed {
			t.Errorf("both: allowed after the sweep, want denied by the hour limit")
		}
		clock.Advance(time.Hour)
		m.sweep()
		if n := m.entries(); n != 0 {
			t.Fatalf("after 1h: entries = %d, want 0", n)
		}
		if d := allow(t, m, "short-1", short); !d.Allowed || d.States[0].Remaining != 0 {
			t.Errorf("short-1 after eviction: %+v, want a fresh key", d)
		}
	})
	t.Run("goroutine", func(t *testing.T) {
		clock := newFakeClock()
		m := newTestMemory(t, clock, WithSweepInterval(5*time.Millisecond))
		for i := range 100 {
			allow(t, m, strconv.Itoa(i), Limit{Requests: 1, Period: time.Second})
		}
		clock.Advance(time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; m.entries() != 0; i++ {
			if i >= 500 || time.Now().After(deadline) {
				t.Fatalf("entries = %d after 5s, want 0: the sweep goroutine did not run", m.entries())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("close", func(t *testing.T) {
		m := NewMemory(WithSweepInterval(time.Millisecond))
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
		if d := allow(t, m, "k", strict1); !d.Allowed { // still answers after Close
			t.Errorf("Allow after Close: %+v", d)
		}
	})
}

// TestMemoryClockSubMicrosecond: the clock is truncated to the microsecond, so that waiting
// RetryAfter is enough from any nanosecond of the microsecond in which the call was denied.
func TestMemoryClockSubMicrosecond(t *testing.T) {
	for _, ns := range []time.Duration{0, 1, 500, 999} {
		clock := newFakeClock()
		clock.Advance(-clock.Now().Sub(clock.Now().Truncate(time.Microsecond)) + ns)
		m := newTestMemory(t, clock)
		l := Limit{Requests: 3, Period: time.Second, Burst: 1} // T 333334µs
		allow(t, m, "k", l)
		d := allow(t, m, "k", l)
		if d.Allowed || d.RetryAfter != 333334*time.Microsecond {
			t.Fatalf("+%dns: %+v, want denied for 333334µs", ns, d)
		}
		clock.Advance(d.RetryAfter - time.Microsecond)
		if d := allow(t, m, "k", l); d.Allowed {
			t.Fatalf("+%dns: allowed 1µs before RetryAfter", ns)
		}
		clock.Advance(time.Microsecond)
		if d := allow(t, m, "k", l); !d.Allowed {
			t.Fatalf("+%dns: denied after waiting RetryAfter: %+v", ns, d)
		}
	}
}

// BenchmarkMemoryAllow measures one check, serial and parallel, on one hot key and on many keys.
func BenchmarkMemoryAllow(b *testing.B) {
	limits := []Limit{{Requests: 10, Period: time.Second, Burst: 10}, {Requests: 1000, Period: 24 * time.Hour}}
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	b.Run("one-key", func(b *testing.B) {
		m := NewMemory()
		defer func() { _ = m.Close() }()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = m.Allow(ctx, "k", limits)
		}
	})
	b.Run("many-keys", func(b *testing.B) {
		m := NewMemory()
		defer func() { _ = m.Close() }()
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_, _ = m.Allow(ctx, keys[i%len(keys)], limits)
			i++
		}
	})
	b.Run("one-key-parallel", func(b *testing.B) {
		m := NewMemory()
		defer func() { _ = m.Close() }()
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = m.Allow(ctx, "k", limits)
			}
		})
	})
	b.Run("many-keys-parallel", func(b *testing.B) {
		m := NewMemory()
		defer func() { _ = m.Close() }()
		ctx := context.Background()
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 997
			for pb.Next() {
				_, _ = m.Allow(ctx, keys[i%len(keys)], limits)
				i++
			}
		})
	})
}
