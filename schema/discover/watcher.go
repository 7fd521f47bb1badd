package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Status is where a Watcher's set stands.
type Status int

const (
	// Never: no fetch has succeeded yet; there is no set.
	Never Status = iota
	// OK: the last fetch succeeded; the set is what it got.
	OK
	// Stale: the last fetch failed; the set is the last good one.
	Stale
)

// String is the status in lower case: "never", "ok", "stale".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Stale:
		return "stale"
	}
	return "never"
}

// State describes a Watcher's set.
type State struct {
	Status Status
	// Fetched is when the set was fetched, and Hash its Hash (OK and
	// Stale); zero and "" with Never.
	Fetched time.Time
	Hash    string
	// Err is the error of the last fetch, and Since when fetches have been
	// failing (Stale and Never; with Never, nil and zero until the first
	// fetch ends).
	Err   error
	Since time.Time
}

// Metrics receives a Watcher's measures; *metrics.Metrics implements it.
type Metrics interface {
	// SchemaReflectionUp records whether the cluster's last fetch
	// succeeded.
	SchemaReflectionUp(cluster string, up bool)
	// SchemaReflectionChanged counts a change of the cluster's set.
	SchemaReflectionChanged(cluster string)
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithMetrics has the Watcher report to m after every fetch.
func WithMetrics(m Metrics) Option {
	return func(w *Watcher) { w.metrics = m }
}

// Endpoint is one endpoint of a cluster and a connection to it alone.
type Endpoint struct {
	Addr string
	CC   grpc.ClientConnInterface
}

// WithEndpoints has the Watcher read every endpoint of the cluster on each
// fetch, each over its own connection, instead of the cluster's
// connection: the set is the first endpoint's (in the order given) that
// answers, and endpoints that serve other descriptors than it are logged
// with both hashes.
func WithEndpoints(eps []Endpoint) Option {
	return func(w *Watcher) { w.endpoints = eps }
}

// ErrClosed is the error of Refresh after Close.
var ErrClosed = errors.New("reflection watcher closed")

// Watcher keeps the descriptors one cluster serves, fetched with Fetch.
// Its methods are safe for concurrent use; fetches happen one at a time.
type Watcher struct {
	cluster  string
	cc       grpc.ClientConnInterface
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	onChange func()
	metrics  Metrics
	// endpoints, when set, are read one by one instead of cc;
	// disagreement is the last difference between them that was logged.
	endpoints    []Endpoint
	disagreement string

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	start  sync.Once
	done   chan struct{} // closed when the loop has ended (or never ran)
	// failedNow gets a value (never blocking) when a fetch fails.
	failedNow chan struct{}
	closed    sync.Once

	fetchMu sync.Mutex // held for a whole fetch and its update

	mu    sync.Mutex
	set   *descriptorpb.FileDescriptorSet
	state State
}

// New returns a Watcher of cluster over cc that fetches, once started,
// every interval (not positive: only the first time; a failed fetch is
// tried again sooner, from 1 s doubling up to 30 s), each fetch bounded
// by timeout (when positive), logging to log (nil: nowhere) with the
// attribute cluster.
//
// onChange (may be nil) is called from the Watcher's goroutine after
// Current returns a new set that a background fetch got: the first set,
// and every set whose Hash differs from the one before. The next fetch
// waits for it to return; it must not call Close. A change Refresh finds
// is not reported to onChange, since Refresh's caller has the set; a
// Refresh before Start makes its set the one the first background fetch
// compares with.
func New(cluster string, cc grpc.ClientConnInterface, interval, timeout time.Duration, log *slog.Logger, onChange func(), opts ...Option) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{
		cluster:  cluster,
		cc:       cc,
		interval: interval,
		timeout:  timeout,
		log:      log.With("cluster", cluster),
		onChange: onChange,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),

		failedNow: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Start fetches at once, in the background, and every interval after,
// until Close. Calls after the first, or after Close, do nothing.
func (w *Watcher) Start() {
	w.start.Do(func() {
		if w.ctx.Err() != nil {
			close(w.done) // closed before it started: no loop to wait for
			return
		}
		go w.loop()
	})
}

// After a failed fetch the next one comes sooner than the interval: after
// retryMin, doubling up to retryMax (never beyond the interval), so that a
// cluster that was down at start is read soon after it comes up; after a
// failed Refresh, retryMin after it.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

func (w *Watcher) loop() {
	defer close(w.done)
	t := time.NewTimer(0)
	t.Stop()
	defer t.Stop()
	retry := retryMin
	for {
		changed, _, err := w.fetch(w.ctx)
		if changed && w.onChange != nil {
			w.onChange()
		}
		wait := w.interval // not positive: no periodic fetch
		if err != nil {
			select {
			case <-w.failedNow: // this fetch's own failure
			default:
			}
			if wait <= 0 || retry < wait {
				wait = retry
			}
			retry = min(2*retry, retryMax)
		} else {
			retry = retryMin
		}
		var next <-chan time.Time
		if wait > 0 {
			t.Reset(wait)
			next = t.C
		}
	sleep:
		for {
			select {
			case <-w.ctx.Done():
				return
			case <-next:
				break sleep
			case <-w.failedNow:
				// A Refresh failed: try again after retryMin, not an
				// interval later.
				if wait <= 0 || wait > retryMin {
					wait = retryMin
					t.Reset(wait)
					next = t.C
				}
			}
		}
	}
}

// Close stops the background fetches, ending one in flight, and returns
// when they have stopped. Current keeps answering; Refresh fails with
// ErrClosed. Calls after the first return at once.
func (w *Watcher) Close() {
	w.closed.Do(func() {
		w.cancel()
		w.start.Do(func() { close(w.done) }) // never started: no loop to wait for
		<-w.done
	})
}

// Current returns the set in use (nil with Never) and its state. The set
// is shared: callers must not modify it.
func (w *Watcher) Current() (*descriptorpb.FileDescriptorSet, State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.set, w.state
}

// Refresh fetches now, waiting for a fetch in flight to end first, updates
// Current as a background fetch does (a failure keeps the last good set,
// and has a started Watcher fetch again a second later), and returns what
// it fetched or its error. It ends when ctx does, or
// Close is called.
func (w *Watcher) Refresh(ctx context.Context) (*descriptorpb.FileDescriptorSet, error) {
	if w.ctx.Err() != nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.ctx, cancel) //nolint:contextcheck // watches the Watcher's lifetime to end this call at Close; the call's context is ctx
	defer stop()
	_, set, err := w.fetch(ctx)
	if err != nil && w.ctx.Err() != nil {
		return nil, ErrClosed
	}
	return set, err
}

// fetch runs one Fetch and updates the state; changed reports a new set.
// A fetch that fails because ctx ended (the caller gave up, or Close) is
// not a failure of the cluster and leaves the state as it was.
func (w *Watcher) fetch(ctx context.Context) (changed bool, set *descriptorpb.FileDescriptorSet, err error) {
	w.fetchMu.Lock()
	defer w.fetchMu.Unlock()
	fctx := ctx
	if w.timeout > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	set, err = w.read(fctx)
	if err != nil && ctx.Err() != nil {
		return false, nil, fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	now := time.Now()
	if err != nil {
		w.failed(now, err)
		return false, nil, err
	}
	return w.succeeded(now, set), set, nil
}

// read fetches the cluster's set: from its connection, or from every
// endpoint (at once) when the Watcher has them. Called with fetchMu held.
func (w *Watcher) read(ctx context.Context) (*descriptorpb.FileDescriptorSet, error) {
	if len(w.endpoints) == 0 {
		return Fetch(ctx, w.cc)
	}
	type result struct {
		set  *descriptorpb.FileDescriptorSet
		hash string
		err  error
	}
	res := make([]result, len(w.endpoints))
	var wg sync.WaitGroup
	for i, ep := range w.endpoints {
		wg.Go(func() {
			set, err := Fetch(ctx, ep.CC)
			if err != nil {
				res[i].err = fmt.Errorf("endpoint %s: %w", ep.Addr, err)
				return
			}
			res[i] = result{set: set, hash: Hash(set)}
		})
	}
	wg.Wait()
	first := -1
	var errs []error
	var differ []string
	for i, r := range res {
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case first < 0:
			first = i
		case r.hash != res[first].hash:
			differ = append(differ, w.endpoints[i].Addr+"="+r.hash)
		}
	}
	if first < 0 {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		w.log.Debug("schema from reflection: endpoints not read", "error", errors.Join(errs...))
	}
	w.noteDisagreement(w.endpoints[first].Addr+"="+res[first].hash, differ)
	return res[first].set, nil
}

// noteDisagreement logs, when it changes, that endpoints of the cluster
// serve other descriptors than the one whose set is used (used), and
// when they agree again.
func (w *Watcher) noteDisagreement(used string, differ []string) {
	d := ""
	if len(differ) > 0 {
		d = used + " " + strings.Join(differ, " ")
	}
	if d == w.disagreement {
		return
	}
	w.disagreement = d
	if d == "" {
		w.log.Info("schema from reflection: the cluster's endpoints serve the same descriptors again", "used", used)
		return
	}
	w.log.Warn("schema from reflection: the cluster's endpoints serve different descriptors; the first endpoint's are used",
		"used", used, "different", strings.Join(differ, " "))
}

func (w *Watcher) failed(now time.Time, err error) {
	select {
	case w.failedNow <- struct{}{}:
	default:
	}
	w.mu.Lock()
	prev := w.state
	w.state.Err = err
	if prev.Status == OK || prev.Err == nil {
		w.state.Since = now
	}
	if w.set != nil {
		w.state.Status = Stale
	}
	st := w.state
	w.mu.Unlock()

	if w.metrics != nil {
		w.metrics.SchemaReflectionUp(w.cluster, false)
	}
	switch {
	case prev.Status == OK:
		w.log.Warn("schema from reflection unavailable, keeping the last good set", "error", err, "hash", st.Hash, "fetched", st.Fetched)
	case prev.Err == nil:
		w.log.Warn("schema from reflection unavailable, no set yet", "error", err)
	default:
		w.log.Debug("schema from reflection still unavailable", "error", err, "since", st.Since)
	}
}

func (w *Watcher) succeeded(now time.Time, set *descriptorpb.FileDescriptorSet) (changed bool) {
	hash := Hash(set)
	w.mu.Lock()
	prev := w.state
	changed = hash != prev.Hash
	if changed {
		w.set = set
	}
	w.state = State{Status: OK, Fetched: now, Hash: hash}
	w.mu.Unlock()

	if w.metrics != nil {
		w.metrics.SchemaReflectionUp(w.cluster, true)
	}
	if prev.Err != nil {
		w.log.Info("schema from reflection recovered", "hash", hash, "down_for", now.Sub(prev.Since).Round(time.Millisecond))
	}
	switch {
	case prev.Hash == "":
		w.log.Info("schema from reflection fetched", "hash", hash, "files", len(set.GetFile()))
	case changed:
		w.log.Info("schema from reflection changed", "from", prev.Hash, "to", hash, "files", len(set.GetFile()))
		if w.metrics != nil {
			w.metrics.SchemaReflectionChanged(w.cluster)
		}
	}
	return changed
}
