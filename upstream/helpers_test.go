package upstream_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/examples/echo"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/upstream"
)

// eventually polls cond every 10ms until it holds, and fails t when it
// still does not after timeout.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backend is one echo server on loopback, with grpc.health.v1 beside it.
type backend struct {
	name   string
	addr   string
	health *health.Server

	mu    sync.Mutex
	calls map[string]int // by echo method
}

func (b *backend) observe(_ context.Context, method string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[method]++
}

// callsOf returns how many calls of the echo method the backend served.
func (b *backend) callsOf(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

// startBackend serves an echo server called name on 127.0.0.1, stopped
// when t ends.
func startBackend(t testing.TB, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), health: health.NewServer(), calls: map[string]int{}}
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: name, Observe: b.observe})
	healthpb.RegisterHealthServer(s, b.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return b
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// clusterConfig is a cluster as package config hands it over, its
// defaults filled in (message size limit, connect timeout).
func clusterConfig(name string, endpoints ...string) *configv1.Cluster {
	return &configv1.Cluster{Name: name, Endpoints: endpoints, MaxMessageBytes: 4 << 20, ConnectTimeout: durationpb.New(5 * time.Second)}
}

// newPool dials specs, the pool closed when t ends.
func newPool(t *testing.T, specs ...upstream.Spec) *upstream.Pool {
	t.Helper()
	p, err := upstream.New(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitState waits until conn is in state want.
func waitState(t *testing.T, conn *grpc.ClientConn, want connectivity.State) {
	t.Helper()
	c := ctx(t)
	for s := conn.GetState(); s != want; s = conn.GetState() {
		if !conn.WaitForStateChange(c, s) {
			t.Fatalf("connection still %v, want %v", s, want)
		}
	}
}

// ready waits for the cluster to have a connected endpoint.
func ready(t *testing.T, c *upstream.Cluster) {
	t.Helper()
	eventually(t, "cluster "+c.Name()+" ready", 10*time.Second, c.Ready)
}

// unary makes one echo call on the cluster and returns the server that
// answered.
func unary(t *testing.T, c *upstream.Cluster, req *testingv1.EchoRequest) (string, error) {
	t.Helper()
	c2, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := testingv1.NewEchoServiceClient(c.Conn()).Unary(c2, req)
	return resp.GetServer(), err
}
