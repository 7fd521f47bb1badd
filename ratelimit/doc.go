// Package ratelimit is the storage core of client rate limiting: it decides, for one client key
// and a list of limits, whether a call is allowed, and counts it when it is.
//
// # Algorithm: GCRA
//
// Every [Limit] is enforced with the generic cell rate algorithm (GCRA), which keeps a single
// number per key and limit: the theoretical arrival time (TAT), the instant at which the limit
// would be back to its full burst. With the emission interval T = Period/Requests and the
// tolerance τ = Burst·T, a call at time now is checked like this:
//
//	tat    := max(storedTAT, now)       // a missing or past TAT means "full burst available"
//	newTAT := tat + T
//	allow  := newTAT - τ <= now         // the call fits in the burst
//	if allow { storedTAT = newTAT }     // a denied call changes nothing
//
// A fresh key therefore allows Burst calls at once, then one call every T; it is never allowed
// more than Burst + elapsed/T calls in any window of length elapsed. The outputs follow from
// the TAT: RetryAfter = newTAT - τ - now for a denied call (waiting that long is enough, since
// nothing else changes the TAT), Reset = TAT - now, and Remaining = ⌊(now + τ - TAT)/T⌋.
//
// All arithmetic is done on integer microseconds. T is Period/Requests rounded UP to the
// microsecond (a limit whose T is not a whole number of microseconds is enforced very slightly
// stricter than written, never looser), and now is the clock truncated to the microsecond, so a
// client that waits RetryAfter from the moment it was denied is allowed. RetryAfter and Reset
// are exact to the microsecond.
//
// # Several limits
//
// A call is checked against all the limits of its key at once (for instance 10/s with burst 10,
// and 1000/day). It is allowed only when every limit allows it, and then it is counted against
// every limit; when any limit denies it, nothing is counted anywhere, and RetryAfter is the
// largest RetryAfter of the denying limits (the other limits keep allowing as time passes, so
// waiting that long is enough).
//
// State is identified by the key and the limit's (T, τ) pair, not by the limit's position in the
// list: reordering a key's limits keeps their state, and changing a limit starts it afresh.
//
// # Stores
//
// [Memory] keeps the TATs in process, in a map split into shards, each behind its own mutex, so
// calls for different keys rarely contend. An expired TAT (one in the past) is equivalent to no
// state at all, so eviction is only about memory: a sweep goroutine removes expired entries
// every sweep interval (one minute by default, [WithSweepInterval]); [Memory.Close] stops it.
// An entry thus lives at most Burst·T after the last allowed call, plus one sweep interval.
//
// [Redis] keeps the TATs in Redis, so that several gateway replicas share one budget per key.
// Each check is ONE Lua script (sent with EVALSHA, falling back to EVAL when the server does not
// have it cached, e.g. after a restart). Redis runs a script atomically, so the read of every
// limit's TAT, the decision and the writes happen with no other command in between: replicas
// cannot both spend the last call of a burst. The script takes the time from the Redis server's
// TIME command, never from the gateway's clock, so replicas with skewed clocks agree. It stores
// each allowed call's new TAT (microseconds since the epoch, exact in Lua's doubles) under
// <prefix>{<key>}:<T>-<τ> (T and τ in microseconds, prefix "edgegate:rl:" by default,
// [WithKeyPrefix]) with an expiry equal to the time until that TAT is in the past, rounded up to
// the millisecond: the state removes itself once it no longer matters. A denied call writes
// nothing.
//
// With Redis Cluster, one script may only touch keys of one hash slot: the key between braces is
// a hash tag, so all the limits of a key live together in one slot, and different keys spread over
// the Cluster's nodes. (A key holding '}' is tagged with a hash of itself instead.)
//
// # Failure
//
// A store returns an error only when it cannot decide. [Memory] can always decide; it errors only
// for an invalid limit (Requests or Period zero, or a tolerance beyond about 35 years). [Redis]
// errors when Redis is unreachable, answers with an error, or does not answer within the
// per-check timeout (50ms by default, [WithTimeout]). The caller then applies its own policy:
// fail open (allow the call) or fail closed (deny it). [Redis] holds no state of its own between
// checks, so when Redis comes back (go-redis reconnects by itself) checks succeed again with no
// action from the caller.
package ratelimit
