package cache

import (
	"context"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
)

// Store keeps entries by key. Its methods are safe for concurrent use; a
// store that cannot answer (Redis down) misses, and says why through its
// own hooks, never by failing a call.
type Store interface {
	// Get returns the entry of key, or nil; an entry past its Expires is
	// never returned.
	Get(ctx context.Context, key string) *Entry
	// Set stores e under key until e.Expires.
	Set(ctx context.Context, key string, e *Entry)
	// Purge deletes every entry whose key starts with prefix ("" is every
	// entry) and returns how many it deleted.
	Purge(ctx context.Context, prefix string) (int, error)
}

// MemoryOptions are the memory tier's hooks; every field is optional.
type MemoryOptions struct {
	// Evicted is told of every entry evicted to stay within the budget.
	Evicted func()
}

// Memory is the memory tier: entries weighed by their key and Size,
// within a byte budget, evicted by W-TinyLFU (otter) past it and deleted
// at their Expires.
type Memory struct {
	c *otter.Cache[string, *Entry]
}

// NewMemory returns a memory tier that holds maxBytes at most.
func NewMemory(maxBytes uint64, o MemoryOptions) *Memory {
	opts := &otter.Options[string, *Entry]{
		MaximumWeight:    maxBytes,
		Weigher:          weigh,
		ExpiryCalculator: expiry{},
	}
	if o.Evicted != nil {
		opts.OnDeletion = func(e otter.DeletionEvent[string, *Entry]) {
			if e.Cause == otter.CauseOverflow {
				o.Evicted()
			}
		}
	}
	return &Memory{c: otter.Must(opts)}
}

func weigh(k string, e *Entry) uint32 {
	return uint32(min(len(k)+e.Size(), 1<<31)) //nolint:gosec // bounded by min
}

// expiry keeps an entry until its Expires.
type expiry struct{}

func (expiry) ExpireAfterCreate(e otter.Entry[string, *Entry]) time.Duration {
	return time.Until(e.Value.Expires)
}

func (expiry) ExpireAfterUpdate(e otter.Entry[string, *Entry], _ *Entry) time.Duration {
	return time.Until(e.Value.Expires)
}

func (expiry) ExpireAfterRead(e otter.Entry[string, *Entry]) time.Duration {
	return e.ExpiresAfter()
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) *Entry {
	e, _ := m.c.GetIfPresent(key)
	if e != nil && !time.Now().Before(e.Expires) {
		return nil
	}
	return e
}

// Set implements Store.
func (m *Memory) Set(_ context.Context, key string, e *Entry) {
	if time.Now().Before(e.Expires) {
		m.c.Set(key, e)
	}
}

// Purge implements Store.
func (m *Memory) Purge(_ context.Context, prefix string) (int, error) {
	n := 0
	for k := range m.c.Keys() {
		if strings.HasPrefix(k, prefix) {
			if _, ok := m.c.Invalidate(k); ok {
				n++
			}
		}
	}
	return n, nil
}

// Bytes returns the weight the memory tier holds now.
func (m *Memory) Bytes() uint64 { return m.c.WeightedSize() }

// Len returns the number of entries the memory tier holds now.
func (m *Memory) Len() int { return m.c.EstimatedSize() }

// Close stops the memory tier's goroutines.
func (m *Memory) Close() { m.c.StopAllGoroutines() }
