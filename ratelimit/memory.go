package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryOption configures [NewMemory].
type MemoryOption func(*memoryOptions)

type memoryOptions struct {
	clock func() time.Time
	sweep time.Duration
}

func defaultMemoryOptions() memoryOptions {
	return memoryOptions{clock: time.Now, sweep: time.Minute}
}

// WithClock makes the store read the time from clock instead of [time.Now]; tests use it to
// control time. clock must be safe for concurrent use. A nil clock keeps time.Now.
func WithClock(clock func() time.Time) MemoryOption {
	return func(o *memoryOptions) {
		if clock != nil {
			o.clock = clock
		}
	}
}

// WithSweepInterval sets how often expired entries are removed (default one minute). An entry
// outlives its expiry by at most d. d <= 0 keeps the default.
func WithSweepInterval(d time.Duration) MemoryOption {
	return func(o *memoryOptions) {
		if d > 0 {
			o.sweep = d
		}
	}
}

// numShards is the number of independently locked parts of a Memory store (a power of two).
const numShards = 256

// Memory is an in-process [Store]. It is safe for concurrent use; calls for keys in different
// shards never contend. Create it with [NewMemory] and stop it with [Memory.Close].
type Memory struct {
	clock  func() time.Time
	seed   maphash.Seed
	shards [numShards]memoryShard

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// memoryShard holds the TATs (µs since the epoch) of the keys that hash to it.
type memoryShard struct {
	mu   sync.Mutex
	tats map[entryKey]int64
	peak int // the most entries since tats was last allocated
	_    [40]byte
}

// entryKey identifies one limit of one key: limits with the same parameters share state, as
// they do in Redis.
type entryKey struct {
	key string
	p   gcraParams
}

// NewMemory returns an in-process store, and starts the goroutine that evicts expired entries
// every sweep interval ([WithSweepInterval]). An entry expires when its TAT is in the past, at
// most Burst·T after the key's last allowed call; until it is swept, an expired entry takes
// memory but changes no decision. Memory is therefore bounded by the number of keys active within
// the longest tolerance plus one sweep interval. Call [Memory.Close] to stop the goroutine.
func NewMemory(opts ...MemoryOption) *Memory {
	o := defaultMemoryOptions()
	for _, opt := range opts {
		opt(&o)
	}
	m := &Memory{
		clock: o.clock,
		seed:  maphash.MakeSeed(),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].tats = make(map[entryKey]int64)
	}
	go m.sweepLoop(o.sweep)
	return m
}

// Close stops the sweep goroutine and waits for it to return. It is idempotent and always
// returns nil. The store still answers Allow after Close, but no longer evicts.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// Allow implements [Store]. It ignores ctx (an in-process check never blocks on I/O) and
// returns an error only for an invalid Limit.
func (m *Memory) Allow(_ context.Context, key string, limits []Limit) (Decision, error) {
	var pbuf [4]gcraParams
	ps, err := paramsOf(limits, pbuf[:])
	if err != nil {
		return Decision{}, err
	}
	if len(ps) == 0 {
		return Decision{Allowed: true}, nil
	}
	var tbuf [4]int64
	tats := tbuf[:0]
	if len(ps) > len(tbuf) {
		tats = make([]int64, 0, len(ps))
	}
	tats = tats[:len(ps)]

	sh := &m.shards[maphash.String(m.seed, key)&(numShards-1)]
	sh.mu.Lock()
	// The clock is read under the lock so that the calls of a key see non-decreasing times.
	now := m.clock().UnixMicro()
	for i, p := range ps {
		tats[i] = sh.tats[entryKey{key, p}] // 0 when absent: <= now, same as no state
	}
	allowed := decide(now, ps, tats)
	if allowed {
		for i, p := range ps {
			sh.tats[entryKey{key, p}] = tats[i]
		}
		sh.peak = max(sh.peak, len(sh.tats))
	}
	sh.mu.Unlock()
	return decision(now, allowed, limits, ps, tats), nil
}

func (m *Memory) sweepLoop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep removes the entries whose TAT is not after now, one shard at a time. A shard that has
// shrunk to under a quarter of its peak gets a new map, so that memory taken by a burst of keys
// is given back.
func (m *Memory) sweep() {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		now := m.clock().UnixMicro()
		for k, tat := range sh.tats {
			if tat <= now {
				delete(sh.tats, k)
			}
		}
		if n := len(sh.tats); n < sh.peak/4 {
			fresh := make(map[entryKey]int64, n)
			for k, tat := range sh.tats {
				fresh[k] = tat
			}
			sh.tats, sh.peak = fresh, n
		}
		sh.mu.Unlock()
	}
}

// entries returns the number of entries held, expired or not.
func (m *Memory) entries() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.tats)
		sh.mu.Unlock()
	}
	return n
}
