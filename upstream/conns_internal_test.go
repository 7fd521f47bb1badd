package upstream

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/examples/echo"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// countingListener counts the connections it accepted that are still open.
type countingListener struct {
	net.Listener
	open atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l      *countingListener
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}

func echoServer(t *testing.T, name string) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: name})
	go func() { _ = s.Serve(cl) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String(), cl
}

// An endpoint the balancer lets go of (here: ejected) has its call
// connection closed too, not only grpc-go's, and the calls go on to the
// others.
func TestDroppedEndpointClosesItsConnection(t *testing.T) {
	a, la := echoServer(t, "a")
	b, _ := echoServer(t, "b")
	c, err := dial(Spec{Config: &configv1.Cluster{
		Name: "drop", Endpoints: []string{a, b}, MaxMessageBytes: 4 << 20,
		OutlierDetection: &configv1.OutlierDetection{ConsecutiveFailures: 1, EjectionTime: durationpb.New(time.Hour), MaxEjectionPercent: 50},
	}, Log: slog.New(slog.DiscardHandler)}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.close() }()
	req, _ := proto.Marshal(&testingv1.EchoRequest{})
	call := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := c.Invoke(ctx, "/edgegate.testing.v1.EchoService/Unary", metadata.MD{}, mem.BufferSlice{mem.SliceBuffer(req)})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Message.Free()
		resp := &testingv1.EchoResponse{}
		if err := proto.Unmarshal(res.Message.Materialize(), resp); err != nil {
			t.Fatal(err)
		}
		return resp.GetServer()
	}
	seen := map[string]bool{}
	for i := 0; len(seen) < 2; i++ {
		if i == 100 {
			t.Fatalf("100 calls reached only %v", seen)
		}
		seen[call()] = true
	}
	if n := la.open.Load(); n != 2 {
		t.Fatalf("a has %d connections, want 2 (the balancer's and the calls')", n)
	}
	c.Report(a, codes.Unavailable)
	deadline := time.Now().Add(10 * time.Second)
	for la.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a still has %d connections after its ejection", la.open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		if s := call(); s != "b" {
			t.Fatalf("a call went to %q after a's ejection", s)
		}
	}
	c.frames.mu.Lock()
	_, kept := c.frames.byAddr[a]
	c.frames.mu.Unlock()
	if kept {
		t.Error("the cluster still keeps a's address")
	}
}
