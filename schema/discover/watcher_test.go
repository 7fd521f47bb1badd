package discover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	refv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/schema/discover"
)

// logLines collects a logger's JSON lines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// with returns the lines whose message is msg.
func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	data := slices.Clone(l.buf.Bytes())
	l.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(data) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// reflectionMetric returns the value of a schema reflection family for
// cluster, or -1 when it has no sample.
func reflectionMetric(t *testing.T, m *metrics.Metrics, name, cluster string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if labelValue(s, "cluster") == cluster {
				if s.Gauge != nil {
					return s.GetGauge().GetValue()
				}
				return s.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func labelValue(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// signals returns onChange and a channel that receives once per call.
func signals() (func(), chan struct{}) {
	ch := make(chan struct{}, 16)
	return func() { ch <- struct{}{} }, ch
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func statusOf(w *discover.Watcher) discover.Status {
	_, st := w.Current()
	return st.Status
}

// The life of a watched cluster: the first set, the upstream down (the
// set kept, one warning), back with another service (recovered, changed,
// onChange), with the metrics following.
func TestWatcherLifecycle(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho, withReflection)
	logs := &logLines{}
	m := metrics.New("test")
	onChange, changes := signals()
	w := discover.New("shop", dial(t, u.addr), 20*time.Millisecond, 5*time.Second, logs.logger(), onChange, discover.WithMetrics(m))
	defer w.Close()

	if set, st := w.Current(); set != nil || st.Status != discover.Never || st.Err != nil {
		t.Fatalf("before Start: %v, %+v; want no set, Never, no error", set, st)
	}
	w.Start()
	waitSignal(t, changes, "onChange: the first set")
	first, st := w.Current()
	if st.Status != discover.OK || st.Hash != discover.Hash(first) || st.Fetched.IsZero() || st.Err != nil {
		t.Fatalf("after the first fetch: %+v", st)
	}
	if got := services(first); !slices.Equal(got, []string{echoService}) {
		t.Errorf("services = %v, want the echo service", got)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_up", "shop"); got != 1 {
		t.Errorf("up = %v, want 1", got)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_changes_total", "shop"); got != 0 {
		t.Errorf("changes = %v, want 0 for the first set", got)
	}
	if got := logs.with(t, "schema from reflection fetched"); len(got) != 1 || got[0]["hash"] != st.Hash || got[0]["cluster"] != "shop" {
		t.Errorf("fetched lines = %v, want one with the hash", got)
	}

	// Down: the last good set is kept, Stale, with one warning over
	// several failed fetches.
	u.stop()
	eventually(t, "Stale", func() bool { return statusOf(w) == discover.Stale })
	eventually(t, "more failed fetches", func() bool { return len(logs.with(t, "schema from reflection still unavailable")) >= 3 })
	kept, stale := w.Current()
	if kept != first || stale.Hash != st.Hash || stale.Fetched.IsZero() || stale.Err == nil || stale.Since.IsZero() {
		t.Errorf("while down: %+v; want the first set kept, with the error and since when", stale)
	}
	warns := logs.with(t, "schema from reflection unavailable, keeping the last good set")
	if len(warns) != 1 || warns[0]["level"] != "WARN" || warns[0]["hash"] != st.Hash {
		t.Errorf("warnings = %v, want exactly one, with the kept hash", warns)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_up", "shop"); got != 0 {
		t.Errorf("up while down = %v, want 0", got)
	}
	select {
	case <-changes:
		t.Error("onChange called while the upstream was down")
	default:
	}

	// Back on the same address, serving one more service.
	startUpstream(t, u.addr, withEcho, withShop, withReflection)
	waitSignal(t, changes, "onChange: the new set")
	second, now := w.Current()
	if now.Status != discover.OK || now.Hash == st.Hash || now.Hash != discover.Hash(second) || now.Err != nil {
		t.Fatalf("after the change: %+v", now)
	}
	want := []string{echoService, catalogService, ordersService, usersService}
	slices.Sort(want)
	if got := services(second); !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
	if got := logs.with(t, "schema from reflection recovered"); len(got) != 1 || got[0]["level"] != "INFO" {
		t.Errorf("recovered lines = %v, want one at INFO", got)
	}
	changed := logs.with(t, "schema from reflection changed")
	if len(changed) != 1 || changed[0]["from"] != st.Hash || changed[0]["to"] != now.Hash || changed[0]["level"] != "INFO" || changed[0]["cluster"] != "shop" {
		t.Errorf("changed lines = %v, want one at INFO from %s to %s", changed, st.Hash, now.Hash)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_up", "shop"); got != 1 {
		t.Errorf("up after recovery = %v, want 1", got)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_changes_total", "shop"); got != 1 {
		t.Errorf("changes = %v, want 1", got)
	}

	// Unchanged fetches call nothing.
	eventually(t, "another fetch", func() bool {
		_, s := w.Current()
		return s.Fetched.After(now.Fetched)
	})
	select {
	case <-changes:
		t.Error("onChange called for an unchanged set")
	default:
	}
}

// A cluster down from the start has no set: Never with the error, one
// warning, and its first set is a recovery.
func TestWatcherNeverThenUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()

	logs := &logLines{}
	m := metrics.New("test")
	onChange, changes := signals()
	w := discover.New("late", dial(t, addr), 20*time.Millisecond, 5*time.Second, logs.logger(), onChange, discover.WithMetrics(m))
	defer w.Close()
	w.Start()
	eventually(t, "a failed fetch", func() bool { _, st := w.Current(); return st.Err != nil })
	eventually(t, "more failed fetches", func() bool { return len(logs.with(t, "schema from reflection still unavailable")) >= 2 })
	set, st := w.Current()
	if set != nil || st.Status != discover.Never || st.Hash != "" || st.Since.IsZero() {
		t.Errorf("down from the start: %v, %+v", set, st)
	}
	if got := logs.with(t, "schema from reflection unavailable, no set yet"); len(got) != 1 || got[0]["level"] != "WARN" {
		t.Errorf("warnings = %v, want one", got)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_up", "late"); got != 0 {
		t.Errorf("up = %v, want 0", got)
	}

	startUpstream(t, addr, withEcho, withReflection)
	waitSignal(t, changes, "onChange: the first set")
	if _, st := w.Current(); st.Status != discover.OK {
		t.Errorf("after the upstream came up: %+v", st)
	}
	if got := logs.with(t, "schema from reflection recovered"); len(got) != 1 {
		t.Errorf("recovered lines = %v, want one", got)
	}
	if got := reflectionMetric(t, m, "edgegate_schema_reflection_up", "late"); got != 1 {
		t.Errorf("up = %v, want 1", got)
	}
}

// Refresh fetches now and returns the set, updating Current without
// calling onChange; it fails with the cluster's error, and ErrClosed once
// closed.
func TestWatcherRefresh(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withShop, withReflection)
	logs := &logLines{}
	called := false
	w := discover.New("shop", dial(t, u.addr), time.Hour, 5*time.Second, logs.logger(), func() { called = true })
	set, err := w.Refresh(t.Context())
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkComplete(t, set)
	cur, st := w.Current()
	if cur != set || st.Status != discover.OK || st.Hash != discover.Hash(set) {
		t.Errorf("Current after Refresh: %+v", st)
	}
	if called {
		t.Error("Refresh called onChange")
	}
	w.Close()
	w.Close()
	if _, err := w.Refresh(t.Context()); !errors.Is(err, discover.ErrClosed) {
		t.Errorf("Refresh after Close = %v, want ErrClosed", err)
	}
	w.Start() // after Close: nothing
	if _, st := w.Current(); st.Status != discover.OK {
		t.Errorf("Current after Close: %+v", st)
	}

	// Without reflection: Never, with the error Refresh returned.
	plain := startUpstream(t, "127.0.0.1:0", withEcho)
	w = discover.New("plain", dial(t, plain.addr), time.Hour, 5*time.Second, nil, nil)
	defer w.Close()
	if _, err := w.Refresh(t.Context()); !errors.Is(err, discover.ErrNoReflection) {
		t.Fatalf("Refresh = %v, want ErrNoReflection", err)
	}
	if set, st := w.Current(); set != nil || st.Status != discover.Never || !errors.Is(st.Err, discover.ErrNoReflection) {
		t.Errorf("Current = %v, %+v", set, st)
	}
}

// A Refresh whose caller gives up is no failure of the cluster; Close
// ends a fetch in flight.
func TestWatcherCancel(t *testing.T) {
	block := make(chan struct{})
	arrived := make(chan struct{}, 16)
	f := &fakeReflection{}
	f.answer = func(*refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		arrived <- struct{}{}
		<-block
		return listed()
	}
	defer close(block)
	u := startUpstream(t, "127.0.0.1:0", f.register)
	w := discover.New("slow", dial(t, u.addr), time.Hour, time.Hour, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := w.Refresh(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh = %v, want context.Canceled", err)
	}
	if _, st := w.Current(); st.Status != discover.Never || st.Err != nil {
		t.Errorf("after a cancelled Refresh: %+v, want untouched", st)
	}

	w.Start()
	waitSignal(t, arrived, "the background request")
	w.Close() // returns with the fetch in flight ended
	if _, st := w.Current(); st.Err != nil {
		t.Errorf("after Close: %+v, want untouched", st)
	}
}

// Start and Close in any order, at once or not, end every goroutine, and
// Close returns.
func TestWatcherStartClose(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho, withReflection)
	cc := dial(t, u.addr)
	for range 50 {
		w := discover.New("race", cc, time.Hour, 5*time.Second, nil, nil)
		started := make(chan struct{})
		go func() {
			defer close(started)
			w.Start()
		}()
		w.Close()
		<-started
		w.Start()
		w.Close()
	}
}

// A cluster down at start is read soon after it comes up, without waiting
// for the (here hour-long) interval: failed fetches are tried again after
// 1 s, doubling.
func TestWatcherRetriesSoonAfterAFailure(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	onChange, changes := signals()
	w := discover.New("late", dial(t, addr), time.Hour, 5*time.Second, nil, onChange)
	defer w.Close()
	w.Start()
	eventually(t, "a failed fetch", func() bool { _, st := w.Current(); return st.Err != nil })
	startUpstream(t, addr, withEcho, withReflection)
	waitSignal(t, changes, "onChange: the first set, read by a retry")
	if set, st := w.Current(); st.Status != discover.OK || !slices.Equal(services(set), []string{echoService}) {
		t.Errorf("after the upstream came up: %+v", st)
	}
}

// With the cluster's endpoints, every one is read: the set is the first
// endpoint's that answers, a down endpoint does not fail the fetch, and
// endpoints that serve different descriptors are logged once, with both
// hashes, until they agree again.
func TestWatcherEndpoints(t *testing.T) {
	a := startUpstream(t, "127.0.0.1:0", withEcho, withReflection)
	b := startUpstream(t, "127.0.0.1:0", withEcho, withShop, withReflection)
	logs := &logLines{}
	eps := []discover.Endpoint{{Addr: a.addr, CC: dial(t, a.addr)}, {Addr: b.addr, CC: dial(t, b.addr)}}
	w := discover.New("split", nil, 0, 5*time.Second, logs.logger(), nil, discover.WithEndpoints(eps))
	defer w.Close()
	set, err := w.Refresh(t.Context())
	if err != nil || !slices.Equal(services(set), []string{echoService}) {
		t.Fatalf("Refresh: %v, %v; want the first endpoint's set", services(set), err)
	}
	const differ = "schema from reflection: the cluster's endpoints serve different descriptors; the first endpoint's are used"
	got := logs.with(t, differ)
	if len(got) != 1 || got[0]["level"] != "WARN" {
		t.Fatalf("disagreement lines = %v, want one warning", got)
	}
	if used, _ := got[0]["used"].(string); used != a.addr+"="+discover.Hash(set) {
		t.Errorf("used = %q, want the first endpoint and its hash", used)
	}
	if d, _ := got[0]["different"].(string); !strings.HasPrefix(d, b.addr+"=") || len(d) != len(b.addr)+1+64 {
		t.Errorf("different = %q, want the second endpoint and its hash", d)
	}
	if _, err := w.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := logs.with(t, differ); len(got) != 1 {
		t.Errorf("the same disagreement logged %d times, want once", len(got))
	}
	// The first endpoint down: the second one's set is used.
	a.stop()
	set, err = w.Refresh(t.Context())
	if err != nil || !slices.Equal(services(set), []string{echoService, catalogService, ordersService, usersService}) {
		t.Fatalf("first endpoint down: %v, %v; want the second's set", services(set), err)
	}
	if got := logs.with(t, "schema from reflection: the cluster's endpoints serve the same descriptors again"); len(got) != 1 {
		t.Errorf("agreement lines = %v, want one", got)
	}
	// Both down: the fetch fails, naming both endpoints; the set is kept.
	b.stop()
	if _, err := w.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), a.addr) || !strings.Contains(err.Error(), b.addr) {
		t.Errorf("both down: %v, want an error naming both endpoints", err)
	}
	if _, st := w.Current(); st.Status != discover.Stale {
		t.Errorf("both down: %v, want Stale", st.Status)
	}
}

// A failed Refresh has the background loop read again soon, not an
// interval (an hour) later: the set the upstream serves when it is back
// is reported to onChange.
func TestWatcherRetriesSoonAfterAFailedRefresh(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho, withReflection)
	onChange, changes := signals()
	w := discover.New("back", dial(t, u.addr), time.Hour, 5*time.Second, nil, onChange)
	defer w.Close()
	w.Start()
	waitSignal(t, changes, "onChange: the first set")
	u.stop()
	eventually(t, "a failed Refresh", func() bool { _, err := w.Refresh(t.Context()); return err != nil })
	startUpstream(t, u.addr, withEcho, withShop, withReflection)
	waitSignal(t, changes, "onChange: the set read after the failed Refresh")
	if set, _ := w.Current(); len(services(set)) != 4 {
		t.Errorf("services = %v, want echo and the shop's", services(set))
	}
}
