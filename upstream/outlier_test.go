package upstream_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/upstream"
)

// outlierCluster is a round-robin cluster of endpoints with outlier
// detection, whose events are logged to log (may be nil: dropped).
func outlierCluster(t *testing.T, log *logBuffer, failures uint32, ejectFor time.Duration, maxPercent uint32, endpoints ...string) *upstream.Cluster {
	t.Helper()
	cc := clusterConfig("orders", endpoints...)
	cc.OutlierDetection = &configv1.OutlierDetection{
		ConsecutiveFailures: failures,
		EjectionTime:        durationpb.New(ejectFor),
		MaxEjectionPercent:  maxPercent,
	}
	h := slog.DiscardHandler
	if log != nil {
		h = slog.NewJSONHandler(log, nil)
	}
	return newPool(t, upstream.Spec{Config: cc, Log: slog.New(h)}).Get("orders")
}

// logBuffer collects JSON log lines, safe for concurrent use (ejection
// timers log from their own goroutines).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the lines logged so far, decoded.
func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// servedBy makes n calls on c and counts them by the server that answered.
func servedBy(t *testing.T, c *upstream.Cluster, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		s, err := unary(t, c, &testingv1.EchoRequest{})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		out[s]++
	}
	return out
}

func report(c *upstream.Cluster, addr string, code codes.Code, n int) {
	for range n {
		c.Report(addr, code)
	}
}

func checkEjected(t *testing.T, c *upstream.Cluster, want ...string) {
	t.Helper()
	if got := sorted(c.Ejected()); !reflect.DeepEqual(got, sorted(want)) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("Ejected() = %v, want %v", got, want)
	}
}

func TestOutlierEjection(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	c := outlierCluster(t, nil, 3, time.Minute, 50, a.addr, b.addr)
	ready(t, c)
	eventually(t, "calls to both endpoints", 10*time.Second, func() bool {
		s := servedBy(t, c, 4)
		return s["a"] > 0 && s["b"] > 0
	})

	report(c, a.addr, codes.Unavailable, 2)
	checkEjected(t, c)
	report(c, a.addr, codes.Unavailable, 1)
	checkEjected(t, c, a.addr)

	// The balancer stops picking a, and it stays out.
	eventually(t, "calls to b only", 10*time.Second, func() bool { return servedBy(t, c, 10)["b"] == 10 })
	if s := servedBy(t, c, 20); s["b"] != 20 {
		t.Errorf("calls after the ejection: %v, want b only", s)
	}

	// Half the endpoints are out: b stays in however it fails.
	report(c, b.addr, codes.Unavailable, 10)
	checkEjected(t, c, a.addr)
	if s := servedBy(t, c, 4); s["b"] != 4 {
		t.Errorf("calls with b failing: %v, want b still picked", s)
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	var addrs []string
	for _, name := range []string{"a", "b", "c", "d"} {
		addrs = append(addrs, startBackend(t, name).addr)
	}
	for _, tc := range []struct {
		name      string
		endpoints int
		percent   uint32
		max       int
	}{
		{"half of four", 4, 50, 2},
		{"half of three, rounded down", 3, 50, 1},
		{"a quarter of four", 4, 25, 1},
		{"all of three", 3, 100, 3},
		{"half of one", 1, 50, 0},
		{"a tenth of two", 2, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := addrs[:tc.endpoints]
			c := outlierCluster(t, nil, 1, time.Minute, tc.percent, eps...)
			for i, ep := range eps {
				c.Report(ep, codes.Unavailable)
				want := eps[:min(i+1, tc.max)]
				checkEjected(t, c, want...)
			}
		})
	}
}

func TestOutlierComesBack(t *testing.T) {
	const ejectFor = 500 * time.Millisecond
	a, b := startBackend(t, "a"), startBackend(t, "b")
	var log logBuffer
	c := outlierCluster(t, &log, 2, ejectFor, 50, a.addr, b.addr)
	ready(t, c)
	eventually(t, "calls to both endpoints", 10*time.Second, func() bool {
		s := servedBy(t, c, 4)
		return s["a"] > 0 && s["b"] > 0
	})

	ejected := time.Now()
	report(c, a.addr, codes.Unavailable, 2)
	checkEjected(t, c, a.addr)
	// Failures reported of an ejected endpoint (calls already under way)
	// do not count against it once it is back.
	report(c, a.addr, codes.Unavailable, 5)

	eventually(t, "a back from ejection", 10*time.Second, func() bool { return len(c.Ejected()) == 0 })
	if back := time.Since(ejected); back < ejectFor {
		t.Errorf("a back after %v, before the ejection time %v", back, ejectFor)
	}
	eventually(t, "calls to a again", 10*time.Second, func() bool { return servedBy(t, c, 4)["a"] > 0 })
	recs := log.records(t)
	want := []map[string]any{
		{"level": "WARN", "msg": "upstream endpoint ejected", "cluster": "orders", "endpoint": a.addr},
		{"level": "INFO", "msg": "upstream endpoint back from ejection", "cluster": "orders", "endpoint": a.addr},
	}
	if len(recs) != len(want) {
		t.Fatalf("log %v, want an ejection and a return", recs)
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("log line %d: %s = %v, want %v (%v)", i+1, k, recs[i][k], v, recs[i])
			}
		}
	}

	report(c, a.addr, codes.Unavailable, 1)
	checkEjected(t, c)
	report(c, a.addr, codes.Unavailable, 1)
	checkEjected(t, c, a.addr)
}

func TestOutlierCountsConsecutiveFailures(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	for _, tc := range []struct {
		name string
		// reports before the last, which is UNAVAILABLE of a.
		reports []codes.Code
		ejected bool
	}{
		{"threshold reached", []codes.Code{codes.Unavailable, codes.Unavailable}, true},
		{"a success resets the count", []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK, codes.Unavailable}, false},
		{"another error resets the count", []codes.Code{codes.Unavailable, codes.Internal, codes.Unavailable}, false},
		{"a deadline is not unavailability", []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Unavailable}, false},
		{"counted again after the reset", []codes.Code{codes.Unavailable, codes.OK, codes.Unavailable, codes.Unavailable}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := outlierCluster(t, nil, 3, time.Minute, 50, a.addr, b.addr)
			for _, code := range tc.reports {
				c.Report(a.addr, code)
			}
			checkEjected(t, c)
			c.Report(a.addr, codes.Unavailable)
			if tc.ejected {
				checkEjected(t, c, a.addr)
			} else {
				checkEjected(t, c)
			}
		})
	}
}

func TestOutlierCountsPerEndpoint(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	c := outlierCluster(t, nil, 3, time.Minute, 50, a.addr, b.addr)
	for range 2 {
		c.Report(a.addr, codes.Unavailable)
		c.Report(b.addr, codes.Unavailable)
	}
	// b's success does not reset a's count.
	c.Report(b.addr, codes.OK)
	checkEjected(t, c)
	c.Report(a.addr, codes.Unavailable)
	checkEjected(t, c, a.addr)
}

func TestOutlierAddresses(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	_, portA, _ := net.SplitHostPort(a.addr)
	named := net.JoinHostPort("localhost", portA)
	c := outlierCluster(t, nil, 1, time.Minute, 100, named, b.addr)

	// Calls that reached no endpoint, or one the cluster does not have.
	report(c, "", codes.Unavailable, 3)
	report(c, "127.0.0.1:1", codes.Unavailable, 3)
	report(c, "not an address", codes.Unavailable, 3)
	checkEjected(t, c)

	// A call reaches an IP; the endpoint configured is a host name.
	c.Report(a.addr, codes.Unavailable)
	checkEjected(t, c, named)
	c.Report(b.addr, codes.Unavailable)
	checkEjected(t, c, named, b.addr)
}
