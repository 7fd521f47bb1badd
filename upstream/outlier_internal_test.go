package upstream

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// TestEjectionTimersAreNotKept: an ejection's timer is let go once the
// endpoint is back, so that a cluster whose endpoint keeps flapping does
// not hold one timer per ejection for as long as it lives.
func TestEjectionTimersAreNotKept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	a, b := ln.Addr().String(), "127.0.0.1:1"
	c, err := dial(Spec{Config: &configv1.Cluster{
		Name: "flappy", Endpoints: []string{a, b}, MaxMessageBytes: 4 << 20,
		OutlierDetection: &configv1.OutlierDetection{ConsecutiveFailures: 1, EjectionTime: durationpb.New(time.Millisecond), MaxEjectionPercent: 50},
	}, Log: slog.New(slog.DiscardHandler)}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.close() }()
	const cycles = 20
	for i := range cycles {
		c.Report(a, codes.Unavailable)
		deadline := time.Now().Add(10 * time.Second)
		for len(c.Ejected()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: %v still ejected", i+1, c.Ejected())
			}
			time.Sleep(time.Millisecond)
		}
	}
	c.outliers.mu.Lock()
	n := len(c.outliers.timers)
	c.outliers.mu.Unlock()
	if n != 0 {
		t.Errorf("%d timers held after %d ejections that all ended, want 0", n, cycles)
	}
}
