package main

import (
	"strings"
	"testing"
)

// A budget never reads as holding on rows that measured nothing: a run
// whose calls all failed (CPU per call 0 or NaN, no peak) says "not
// measured" for every budget it touches, and a measured run is judged.
func TestBudgetsWithoutCalls(t *testing.T) {
	rows := func(cpu, rps, p50 float64) []Result {
		var all []Result
		for _, r := range []struct{ door, peer string }{
			{"grpc", "edgegate+chain"}, {"grpc", "edgegate"}, {"grpc", "haproxy"}, {"grpc", "direct"},
		} {
			all = append(all, Result{Door: r.door, Workload: "unary 100 B", Peer: r.peer, CPUPerCall: cpu, PeakRPS: rps, P50: p50, IdleRSSKiB: 30 << 10})
		}
		return all
	}
	nan := 0.0
	nan /= nan
	for _, failed := range [][]Result{rows(0, 0, 0), rows(nan, 0, nan)} {
		out := budgets(failed)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(line, "holds") && !strings.Contains(line, "not measured") {
				t.Errorf("a budget holds on rows without calls: %s", line)
			}
		}
		if !strings.Contains(out, "native gRPC CPU/call ≤ HAProxy's (default chain): not measured (grpc edgegate+chain made no calls)") {
			t.Errorf("budgets:\n%s", out)
		}
	}
	out := budgets(rows(10, 1000, 0.2))
	if !strings.Contains(out, "native gRPC CPU/call ≤ HAProxy's (default chain): holds") {
		t.Errorf("measured rows not judged:\n%s", out)
	}
}
