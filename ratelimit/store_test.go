package ratelimit

import (
	"context"
	"strings"
	"testing"
	"time"
)

// call is one Allow of a storeCase and what it must return at a frozen instant.
type call struct {
	key        string // "" means "k"
	limits     []Limit
	times      int // the call is made this many times (0 means 1), all with the same outcome
	allowed    bool
	retryAfter time.Duration
	remaining  []int64         // per limit
	reset      []time.Duration // per limit
}

// storeCase is a sequence of calls made at (nearly) the same instant. Every store runs the same
// table: Memory with a frozen clock must match exactly, Redis (whose time is the server's and
// moves) within the real time the case took.
type storeCase struct {
	name  string
	calls []call
}

var (
	hour3 = Limit{Requests: 3, Period: time.Hour, Burst: 3} // T 20m, τ 1h
	// 10 per 10s rather than per second, so that Redis (whose time moves) refills nothing
	// while a case runs, even on a slow machine.
	tenPer10s = Limit{Requests: 10, Period: 10 * time.Second, Burst: 10} // T 1s, τ 10s
	perDay    = Limit{Requests: 1000, Period: 24 * time.Hour}            // T 86.4s, τ 24h
	strict1   = Limit{Requests: 1, Period: time.Hour, Burst: 1}          // T 1h, τ 1h
	strict2   = Limit{Requests: 1, Period: 2 * time.Hour, Burst: 1}      // T 2h, τ 2h
	thirds    = Limit{Requests: 3, Period: time.Second, Burst: 1}        // T 333334µs (rounded up), τ T
	burst5    = Limit{Requests: 10, Period: 10 * time.Hour, Burst: 5}    // T 1h, τ 5h
)

var storeCases = []storeCase{
	{name: "burst then deny with exact RetryAfter", calls: []call{
		{limits: []Limit{hour3}, allowed: true, remaining: []int64{2}, reset: []time.Duration{20 * time.Minute}},
		{limits: []Limit{hour3}, allowed: true, remaining: []int64{1}, reset: []time.Duration{40 * time.Minute}},
		{limits: []Limit{hour3}, allowed: true, remaining: []int64{0}, reset: []time.Duration{time.Hour}},
		{limits: []Limit{hour3}, times: 3, allowed: false, retryAfter: 20 * time.Minute,
			remaining: []int64{0}, reset: []time.Duration{time.Hour}},
	}},
	{name: "burst 0 means requests", calls: []call{
		{limits: []Limit{{Requests: 4, Period: time.Hour}}, times: 3, allowed: true}, // not checked in detail
		{limits: []Limit{{Requests: 4, Period: time.Hour}}, allowed: true, remaining: []int64{0}, reset: []time.Duration{time.Hour}},
		{limits: []Limit{{Requests: 4, Period: time.Hour}}, allowed: false, retryAfter: 15 * time.Minute,
			remaining: []int64{0}, reset: []time.Duration{time.Hour}},
	}},
	{name: "burst smaller than requests", calls: []call{
		{limits: []Limit{burst5}, times: 4, allowed: true},
		{limits: []Limit{burst5}, allowed: true, remaining: []int64{0}, reset: []time.Duration{5 * time.Hour}},
		{limits: []Limit{burst5}, allowed: false, retryAfter: time.Hour, remaining: []int64{0}, reset: []time.Duration{5 * time.Hour}},
	}},
	{name: "emission interval rounded up to the microsecond", calls: []call{
		{limits: []Limit{thirds}, allowed: true, remaining: []int64{0}, reset: []time.Duration{333334 * time.Microsecond}},
		{limits: []Limit{thirds}, allowed: false, retryAfter: 333334 * time.Microsecond,
			remaining: []int64{0}, reset: []time.Duration{333334 * time.Microsecond}},
	}},
	{name: "several limits: the stricter denies and nothing is consumed", calls: []call{
		{limits: []Limit{tenPer10s, hour3}, allowed: true, remaining: []int64{9, 2},
			reset: []time.Duration{time.Second, 20 * time.Minute}},
		{limits: []Limit{tenPer10s, hour3}, times: 2, allowed: true},
		{limits: []Limit{tenPer10s, hour3}, times: 5, allowed: false, retryAfter: 20 * time.Minute,
			remaining: []int64{7, 0}, reset: []time.Duration{3 * time.Second, time.Hour}},
		// tenPer10s alone was not charged for the 5 denied calls: 7 calls left.
		{key: "k", limits: []Limit{tenPer10s}, times: 7, allowed: true},
		{key: "k", limits: []Limit{tenPer10s}, allowed: false, retryAfter: time.Second,
			remaining: []int64{0}, reset: []time.Duration{10 * time.Second}},
	}},
	{name: "10 per 10s burst 10 and 1000/day", calls: []call{
		{limits: []Limit{tenPer10s, perDay}, times: 9, allowed: true},
		{limits: []Limit{tenPer10s, perDay}, allowed: true, remaining: []int64{0, 990},
			reset: []time.Duration{10 * time.Second, 10 * 86400 * time.Millisecond}},
		{limits: []Limit{tenPer10s, perDay}, allowed: false, retryAfter: time.Second,
			remaining: []int64{0, 990}, reset: []time.Duration{10 * time.Second, 10 * 86400 * time.Millisecond}},
	}},
	{name: "RetryAfter is the max over the denying limits", calls: []call{
		{limits: []Limit{strict1, strict2}, allowed: true, remaining: []int64{0, 0},
			reset: []time.Duration{time.Hour, 2 * time.Hour}},
		{limits: []Limit{strict1, strict2}, allowed: false, retryAfter: 2 * time.Hour,
			remaining: []int64{0, 0}, reset: []time.Duration{time.Hour, 2 * time.Hour}},
	}},
	{name: "state follows the limit, not its position", calls: []call{
		{limits: []Limit{strict1, hour3}, allowed: true},
		{limits: []Limit{hour3, strict1}, allowed: false, retryAfter: time.Hour,
			remaining: []int64{2, 0}, reset: []time.Duration{20 * time.Minute, time.Hour}},
		// Burst 0 and Burst == Requests are the same limit, with the same state.
		{limits: []Limit{{Requests: 3, Period: time.Hour}}, allowed: true,
			remaining: []int64{1}, reset: []time.Duration{40 * time.Minute}},
	}},
	{name: "keys are independent", calls: []call{
		{key: "alice", limits: []Limit{strict1}, allowed: true},
		{key: "alice", limits: []Limit{strict1}, allowed: false, retryAfter: time.Hour,
			remaining: []int64{0}, reset: []time.Duration{time.Hour}},
		{key: "bob", limits: []Limit{strict1}, allowed: true, remaining: []int64{0}, reset: []time.Duration{time.Hour}},
		{key: "alice:3600000000-3600000000", limits: []Limit{strict1}, allowed: true}, // no clash with alice's Redis key
	}},
	{name: "no limits allows", calls: []call{
		{limits: nil, times: 3, allowed: true},
	}},
}

// runStoreCases runs storeCases against the stores that newStore returns (a fresh one per
// case). exact says that the store's time does not move during a case (Memory with a fake clock).
func runStoreCases(t *testing.T, newStore func(t *testing.T) Store, exact bool) {
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			prefix := strings.ReplaceAll(t.Name(), " ", "_") + "/"
			start := time.Now()
			for i, c := range tc.calls {
				key := c.key
				if key == "" {
					key = "k"
				}
				for n := range max(c.times, 1) {
					d, err := store.Allow(ctx, prefix+key, c.limits)
					if err != nil {
						t.Fatalf("calls[%d] #%d: Allow: %v", i, n, err)
					}
					checkInvariants(t, c.limits, d)
					if d.Allowed != c.allowed {
						t.Fatalf("calls[%d] #%d: Allowed = %v, want %v (%+v)", i, n, d.Allowed, c.allowed, d)
					}
					// Time moves for a store with a real clock: a duration may then be smaller
					// than at the frozen instant by as much as the case has taken so far.
					var slack time.Duration
					if !exact {
						slack = time.Since(start) + time.Millisecond
					}
					checkDuration(t, i, "RetryAfter", d.RetryAfter, c.retryAfter, slack, !c.allowed)
					for j, want := range c.remaining {
						if got := d.States[j].Remaining; got != want {
							t.Errorf("calls[%d]: States[%d].Remaining = %d, want %d", i, j, got, want)
						}
					}
					for j, want := range c.reset {
						checkDuration(t, i, "Reset", d.States[j].Reset, want, slack, true)
					}
				}
			}
		})
	}
}

// checkDuration checks got == want, or want-slack <= got <= want when slack > 0. A zero want is
// only checked when check is set.
func checkDuration(t *testing.T, call int, what string, got, want, slack time.Duration, check bool) {
	t.Helper()
	if !check && want == 0 {
		return
	}
	if got > want || got < want-slack {
		t.Errorf("calls[%d]: %s = %v, want %v (slack %v)", call, what, got, want, slack)
	}
}

func TestMemoryStoreCases(t *testing.T) {
	runStoreCases(t, func(t *testing.T) Store { return newTestMemory(t, newFakeClock()) }, true)
}

func TestRedisStoreCases(t *testing.T) {
	srv := startRedis(t)
	client := srv.Client()
	runStoreCases(t, func(t *testing.T) Store {
		// A generous timeout: under -race, the default 50ms is not what is being tested here.
		return NewRedis(client, WithTimeout(5*time.Second))
	}, false)
}

func TestInvalidLimits(t *testing.T) {
	cases := []struct {
		name  string
		limit Limit
		want  string
	}{
		{"zero requests", Limit{Period: time.Second}, "limits[1]: requests must be > 0"},
		{"zero period", Limit{Requests: 1}, "limits[1]: period must be > 0"},
		{"negative period", Limit{Requests: 1, Period: -time.Second}, "limits[1]: period must be > 0"},
		{"tolerance over 2^50µs", Limit{Requests: 1, Period: 24 * time.Hour, Burst: 20000}, "limits[1]: burst × period/requests"},
	}
	srv := startRedis(t)
	stores := map[string]Store{
		"memory": newTestMemory(t, newFakeClock()),
		"redis":  NewRedis(srv.Client(), WithTimeout(5*time.Second)),
	}
	for _, tc := range cases {
		for name, store := range stores {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				d, err := store.Allow(context.Background(), "k", []Limit{tenPer10s, tc.limit})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Allow: err = %v, want one containing %q", err, tc.want)
				}
				if d.Allowed || d.States != nil {
					t.Errorf("Decision = %+v, want the zero value", d)
				}
			})
		}
	}
}

func TestParams(t *testing.T) {
	cases := []struct {
		limit               Limit
		interval, tolerance int64 // µs
	}{
		{Limit{Requests: 10, Period: time.Second, Burst: 10}, 100_000, 1_000_000},
		{Limit{Requests: 10, Period: time.Second}, 100_000, 1_000_000},
		{Limit{Requests: 10, Period: time.Second, Burst: 1}, 100_000, 100_000},
		{Limit{Requests: 3, Period: time.Second, Burst: 2}, 333_334, 666_668},       // rounded up
		{Limit{Requests: 1000, Period: time.Microsecond}, 1, 1000},                  // T at least 1µs
		{Limit{Requests: 1, Period: 1500 * time.Nanosecond}, 2, 2},                  // sub-µs period rounded up
		{Limit{Requests: 1000, Period: 24 * time.Hour}, 86_400_000, 86_400_000_000}, // 1000/day
		{Limit{Requests: 1, Period: 1 << 50 * time.Microsecond}, 1 << 50, 1 << 50},  // the largest tolerance
	}
	for _, tc := range cases {
		p, err := params(0, tc.limit)
		if err != nil {
			t.Errorf("params(%+v): %v", tc.limit, err)
			continue
		}
		if p.interval != tc.interval || p.tolerance != tc.tolerance {
			t.Errorf("params(%+v) = T %dµs τ %dµs, want T %dµs τ %dµs", tc.limit, p.interval, p.tolerance, tc.interval, tc.tolerance)
		}
	}
	if _, err := params(0, Limit{Requests: 1, Period: (1<<50 + 1) * time.Microsecond}); err == nil {
		t.Errorf("params accepted a tolerance of 2^50+1 µs")
	}
}
