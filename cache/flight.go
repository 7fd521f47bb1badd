package cache

import (
	"context"
	"sync"
)

// Flights coalesces concurrent misses of one key: the first caller (the
// leader) makes the upstream call, the others wait for its answer. Its
// methods are safe for concurrent use.
type Flights struct {
	mu sync.Mutex
	m  map[string]*Flight
}

// Flight is one key's upstream call in progress.
type Flight struct {
	done  chan struct{}
	entry *Entry
}

// Join returns the flight of key: a new one, whose leader the caller is
// (it must call Land), or the one in progress.
func (f *Flights) Join(key string) (fl *Flight, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[key]; fl != nil {
		return fl, false
	}
	if f.m == nil {
		f.m = map[string]*Flight{}
	}
	fl = &Flight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

// Land ends the leader's flight of key with e, the answer the waiters may
// share: nil when it may not be shared (not cacheable), and they make
// their own calls.
func (f *Flights) Land(key string, fl *Flight, e *Entry) {
	f.mu.Lock()
	if f.m[key] == fl {
		delete(f.m, key)
	}
	f.mu.Unlock()
	fl.entry = e
	close(fl.done)
}

// Wait returns the leader's answer (nil: make your own call), or ctx's
// error when ctx ends first.
func (fl *Flight) Wait(ctx context.Context) (*Entry, error) {
	select {
	case <-fl.done:
		return fl.entry, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
