// Package test holds edgegate's end-to-end tests and their harness: real
// upstream gRPC servers, the real gateway (in-process, or the built binary),
// real clients, all on loopback.
package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/gateway"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// Call is what an upstream echo server saw of one call when it ended.
type Call struct {
	Method   string
	MD       metadata.MD
	CtxErr   error
	Deadline time.Time // zero when the call had none
}

// Upstream is a real gRPC server on loopback running the echo service.
type Upstream struct {
	Addr   string
	Server *grpc.Server
	Health *health.Server
	calls  chan Call
	count  atomic.Int64
}

// Count is how many calls the upstream has finished.
func (u *Upstream) Count() int64 { return u.count.Load() }

// StartEcho starts an echo upstream whose responses carry name; it is
// stopped when the test ends.
func StartEcho(t testing.TB, name string, opts ...grpc.ServerOption) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{Addr: ln.Addr().String(), calls: make(chan Call, 1024)}
	u.Server = grpc.NewServer(opts...)
	testingv1.RegisterEchoServiceServer(u.Server, &echo.Server{Name: name, Observe: func(ctx context.Context, m string) {
		u.count.Add(1)
		md, _ := metadata.FromIncomingContext(ctx)
		dl, _ := ctx.Deadline()
		select {
		case u.calls <- Call{Method: m, MD: md, CtxErr: ctx.Err(), Deadline: dl}:
		default:
		}
	}})
	u.Health = health.NewServer()
	healthpb.RegisterHealthServer(u.Server, u.Health)
	go func() { _ = u.Server.Serve(ln) }()
	t.Cleanup(u.Server.Stop)
	return u
}

// StartServer starts a gRPC server on loopback with the services register
// adds; it is stopped when the test ends.
func StartServer(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	return StartServerOpts(t, register)
}

// StartServerOpts is StartServer with server options.
func StartServerOpts(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// NextCall waits up to 5s for the next call the upstream finished.
func (u *Upstream) NextCall(t testing.TB) Call {
	t.Helper()
	select {
	case c := <-u.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw no call within 5s")
		return Call{}
	}
}

// NoCall fails the test when the upstream finishes a call within d.
func (u *Upstream) NoCall(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-u.calls:
		t.Fatalf("upstream saw a call to %s; want none", c.Method)
	case <-time.After(d):
	}
}

// FreeAddr returns a loopback address that nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Gateway is an in-process edgegate serving on loopback.
type Gateway struct {
	*gateway.Gateway
	Addr string
	Logs *LogBuffer
}

// StartGateway loads yaml (whose listener addresses should be
// 127.0.0.1:0), starts the gateway and stops it when the test ends. Its log
// lines (access log included) are kept in Logs.
func StartGateway(t testing.TB, yaml string, opts ...gateway.Option) *Gateway {
	t.Helper()
	if !strings.Contains(yaml, "\nadmin:") {
		yaml += "\nadmin: {address: 127.0.0.1:0}\n"
	}
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := gateway.New(cfg, append([]gateway.Option{gateway.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := gw.Serve(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		gw.Stop()
		<-done
	})
	return &Gateway{Gateway: gw, Addr: gw.Addrs()[0].String(), Logs: logs}
}

// Dial returns a grpc-go client connection to addr, closed when the test
// ends.
func Dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Ctx returns a context that ends after d or when the test ends.
func Ctx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// EchoConfig is a gateway config with one listener on a free loopback port
// and one cluster "echo" at addr, routed for the echo service.
func EchoConfig(addr string) string {
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: echo
    endpoints: [%q]
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
`, addr)
}

// LogBuffer is a concurrency-safe log sink.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

var _ io.Writer = (*LogBuffer)(nil)

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gatewayInterceptors adds stream interceptors at the inner end of the
// gateway's chain.
func gatewayInterceptors(stream ...grpc.StreamServerInterceptor) gateway.Option {
	return gateway.WithInterceptors(nil, stream)
}

// validate checks yaml as `edgegate validate` does: config.Load, then the
// gateway's build in a dry run, its errors placed in the file.
func validate(name, yaml string) error {
	cfg, err := config.Load(name, []byte(yaml))
	if err != nil {
		return err
	}
	return config.Place(name, []byte(yaml), gateway.Check(cfg, gateway.WithLogger(slog.New(slog.DiscardHandler))))
}
