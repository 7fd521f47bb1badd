package ratelimit

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzGCRA drives a Memory store with one or two limits through a sequence of calls at
// arbitrary (sub-microsecond) times decoded from data, and checks, for every sequence:
//   - every Decision's invariants (checkInvariants);
//   - each decision against an independent model, the continuous-state leaky bucket, which is
//     equivalent to GCRA;
//   - in any window [t_i, t_j] between allowed calls, at most Burst + ⌊(t_j-t_i)·Requests/Period⌋
//     calls were allowed, for each limit, with the exact (not rounded) rate;
//   - a denied client that waits RetryAfter - 1µs is still denied, and one that waits RetryAfter
//     is allowed;
//   - after an allowed call, exactly min(Remaining) more calls are allowed at the same instant;
//   - after waiting Reset, every limit is back to its full burst.
//
// `go test` runs the seeds below (fixed and pseudo-random); `go test -fuzz FuzzGCRA` explores.
func FuzzGCRA(f *testing.F) {
	f.Add([]byte{9, 99, 0, 0, 0, 0, 0, 0, 10, 0, 10, 1, 0, 2, 0, 3, 200})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 0, 255, 1, 0})
	f.Add([]byte{19, 255, 11, 3, 7, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2, 0, 3, 0})
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: fixed seeds on purpose, so that the corpus is the same every run
	for range 40 {
		data := make([]byte, 7+2*rng.IntN(150))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 7 {
			return
		}
		limits := []Limit{fuzzLimit(data[0], data[1], data[2])}
		if data[6]&1 == 1 {
			limits = append(limits, fuzzLimit(data[3], data[4], data[5]))
		}
		ops := data[7:]
		if len(ops) > 600 {
			ops = ops[:600]
		}
		checkGCRA(t, limits, ops)
	})
}

// fuzzLimit decodes a limit with 1..20 requests, a period that is often not a whole number of
// microseconds per request, and a burst of 0 (= requests) .. 11.
func fuzzLimit(r, p, b byte) Limit {
	return Limit{
		Requests: 1 + uint32(r%20),
		Period:   time.Duration(1+int(p)) * 3_333_333 * time.Nanosecond,
		Burst:    uint32(b % 12),
	}
}

// leakyBucket is the model: each limit is a bucket that fills by T per conforming call and
// drains by one per microsecond; a call conforms when the bucket, drained to now, has room for T
// within τ.
type leakyBucket struct {
	level, last []int64 // µs
}

func (lb *leakyBucket) allow(now int64, ps []gcraParams) bool {
	ok := true
	drained := make([]int64, len(ps))
	for i, p := range ps {
		drained[i] = max(0, lb.level[i]-(now-lb.last[i]))
		if drained[i]+p.interval > p.tolerance {
			ok = false
		}
	}
	if ok {
		for i, p := range ps {
			lb.level[i], lb.last[i] = drained[i]+p.interval, now
		}
	}
	return ok
}

func checkGCRA(t *testing.T, limits []Limit, ops []byte) {
	clock := newFakeClock()
	m := NewMemory(WithClock(clock.Now), WithSweepInterval(time.Hour))
	defer func() { _ = m.Close() }()
	ps := make([]gcraParams, len(limits))
	minT := int64(1 << 62)
	for i, l := range limits {
		ps[i] = mustParams(t, l)
		minT = min(minT, ps[i].interval)
	}
	model := &leakyBucket{level: make([]int64, len(ps)), last: make([]int64, len(ps))}
	var allowedAt []int64 // µs, the clock truncated as the store does

	call := func(what string) Decision {
		t.Helper()
		d, err := m.Allow(context.Background(), "k", limits)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		checkInvariants(t, limits, d)
		now := clock.Now().UnixMicro()
		if want := model.allow(now, ps); d.Allowed != want {
			t.Fatalf("%s at %dµs: Allowed = %v, the leaky bucket says %v (limits %+v)", what, now, d.Allowed, want, limits)
		}
		if d.Allowed {
			allowedAt = append(allowedAt, now)
		}
		return d
	}

	for i := 0; i+1 < len(ops); i += 2 {
		// Advance by up to 8 emission intervals of the fastest limit, plus some nanoseconds.
		clock.Advance(time.Duration(int64(ops[i+1])*minT/32)*time.Microsecond + time.Duration(ops[i+1]%7)*100)
		d := call("call")
		switch ops[i] % 4 {
		case 1: // wait RetryAfter
			if d.Allowed {
				break
			}
			clock.Advance(d.RetryAfter - time.Microsecond)
			if d := call("1µs before RetryAfter"); d.Allowed {
				t.Fatalf("allowed 1µs before RetryAfter %v", d.RetryAfter)
			}
			clock.Advance(time.Microsecond)
			if d := call("at RetryAfter"); !d.Allowed {
				t.Fatalf("denied after waiting RetryAfter: %+v", d)
			}
		case 2: // drain what Remaining announces
			if !d.Allowed {
				break
			}
			remaining := d.States[0].Remaining
			for _, s := range d.States {
				remaining = min(remaining, s.Remaining)
			}
			for n := range remaining {
				if d := call("drain"); !d.Allowed {
					t.Fatalf("drain: call %d of %d announced denied", n+1, remaining)
				}
			}
			if d := call("after drain"); d.Allowed {
				t.Fatalf("allowed beyond the %d calls Remaining announced", remaining)
			}
		case 3: // wait Reset
			var reset time.Duration
			for _, s := range d.States {
				reset = max(reset, s.Reset)
			}
			clock.Advance(reset)
			d := call("at Reset")
			for j, s := range d.States {
				p := ps[j]
				if want := p.tolerance/p.interval - 1; !d.Allowed || s.Remaining != want {
					t.Fatalf("after waiting Reset %v: %+v, want allowed with %d remaining for limit %d", reset, d, want, j)
				}
			}
		}
	}

	// The window bound, with the exact rate Requests/Period.
	for k, l := range limits {
		burst := int64(l.Burst)
		if burst == 0 {
			burst = int64(l.Requests)
		}
		for i := range allowedAt {
			for j := i; j < len(allowedAt); j++ {
				window := allowedAt[j] - allowedAt[i] // µs
				bound := burst + window*1000*int64(l.Requests)/int64(l.Period)
				if n := int64(j - i + 1); n > bound {
					t.Fatalf("limit %d %+v: %d calls allowed in %dµs, bound %d", k, l, n, window, bound)
				}
			}
		}
	}
}
