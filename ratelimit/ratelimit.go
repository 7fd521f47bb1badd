package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Limit is Requests calls per Period, with at most Burst calls at once (Burst 0 means Requests).
//
// A valid Limit has Requests > 0 and Period > 0, and a tolerance Burst·T (T = Period/Requests
// rounded up to the microsecond) of at most 2^50 µs (about 35 years).
type Limit struct {
	Requests uint32
	Period   time.Duration
	Burst    uint32
}

// LimitState is one limit's state for a key after a decision.
type LimitState struct {
	Limit Limit
	// Remaining is the number of calls this limit still allows right now, after the decision
	// (an allowed call has been counted). In a denied Decision it is 0 exactly for the limits
	// that denied the call, and >= 1 for the others (what that limit alone would still allow).
	Remaining int64
	// Reset is the time until the limit is back to its full burst; 0 when it already is.
	Reset time.Duration
}

// Decision is the outcome of one check of all the limits of a key.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when denied: the time until this call would be allowed (> 0); 0 when allowed
	States     []LimitState  // one per limit, in order
}

// Store decides atomically, for one key, whether a call is allowed under every limit; an allowed
// call is counted against every limit, a denied one against none. Implementations are safe for
// concurrent use. Err is non-nil only when the store cannot decide (Redis unreachable, timeout);
// the caller then applies its fail-open / fail-closed policy.
//
// An empty list of limits allows every call (Allowed true, no States). An invalid Limit (see
// [Limit]) is an error, and the Decision is then the zero value.
type Store interface {
	Allow(ctx context.Context, key string, limits []Limit) (Decision, error)
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
)

// maxTolerance bounds a limit's tolerance, in microseconds, so that a TAT (now + tolerance, in
// microseconds since the epoch) stays below 2^53 and is exact in the doubles of Redis's Lua.
const maxTolerance = 1 << 50

// gcraParams is a Limit in the units of the algorithm: integer microseconds.
type gcraParams struct {
	interval  int64 // T, the emission interval, > 0
	tolerance int64 // τ = Burst·T, >= interval
}

// params converts l, or returns an error naming limits[i] when l is not valid.
func params(i int, l Limit) (gcraParams, error) {
	if l.Requests == 0 {
		return gcraParams{}, fmt.Errorf("ratelimit: limits[%d]: requests must be > 0", i)
	}
	if l.Period <= 0 {
		return gcraParams{}, fmt.Errorf("ratelimit: limits[%d]: period must be > 0, got %v", i, l.Period)
	}
	burst := int64(l.Burst)
	if burst == 0 {
		burst = int64(l.Requests)
	}
	// T = ⌈Period / Requests⌉ in microseconds; Requests·1000 < 2^42, no overflow.
	div := int64(l.Requests) * int64(time.Microsecond)
	interval := (int64(l.Period) + div - 1) / div
	if interval > maxTolerance/burst {
		return gcraParams{}, fmt.Errorf("ratelimit: limits[%d]: burst × period/requests is over 2^50µs (about 35 years)", i)
	}
	return gcraParams{interval: interval, tolerance: burst * interval}, nil
}

// paramsOf converts every limit; ps has len(limits) entries.
func paramsOf(limits []Limit, buf []gcraParams) ([]gcraParams, error) {
	ps := buf[:0]
	for i, l := range limits {
		p, err := params(i, l)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// decide runs GCRA for one call at now (µs) on the TATs of a key's limits. tats[i] is limit i's
// stored TAT, or any value <= now when it has none. On return tats[i] is max(tats[i], now) when
// the call is denied, and the new TAT to store when it is allowed. It is the single definition
// of the algorithm in Go; the Redis script mirrors it.
func decide(now int64, ps []gcraParams, tats []int64) (allowed bool) {
	allowed = true
	for i, p := range ps {
		tats[i] = max(tats[i], now)
		if tats[i]+p.interval-p.tolerance > now {
			allowed = false
		}
	}
	if allowed {
		for i, p := range ps {
			tats[i] += p.interval
		}
	}
	return allowed
}

// decision builds the Decision of a call at now from the TATs that [decide] left, for limits
// and their params ps.
func decision(now int64, allowed bool, limits []Limit, ps []gcraParams, tats []int64) Decision {
	d := Decision{Allowed: allowed, States: make([]LimitState, len(limits))}
	for i, p := range ps {
		tat := tats[i]
		s := LimitState{Limit: limits[i], Reset: micros(tat - now)}
		if wait := tat + p.interval - p.tolerance - now; !allowed && wait > 0 {
			// This limit denied the call: tat is unchanged, and the call fits once now + wait.
			d.RetryAfter = max(d.RetryAfter, micros(wait))
		} else {
			// The call fits (or, allowed, has been counted): tat <= now + τ, so this is >= 0.
			s.Remaining = (now + p.tolerance - tat) / p.interval
		}
		d.States[i] = s
	}
	return d
}

// micros converts a non-negative count of microseconds to a Duration; negative counts give 0.
func micros(us int64) time.Duration {
	if us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}
