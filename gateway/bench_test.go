package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	improbable "github.com/improbable-eng/grpc-web/go/grpcweb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/router"
)

// benchGateway starts an echo upstream and a gateway with a shared-port
// listener (all doors) and a dedicated gRPC listener, access log off.
func benchGateway(b *testing.B) *Gateway { return benchGatewayConfig(b, "", "") }

// benchGatewayWith is benchGateway with more keys of the shared listener
// (a YAML flow map's, ", waf: {}").
func benchGatewayWith(b *testing.B, shared string) *Gateway {
	b.Helper()
	return benchGatewayConfig(b, shared, "")
}

// benchGatewayRoute is benchGateway with more keys of the echo route
// (YAML flow mapping entries, e.g. "cache: {ttl: 1h}").
func benchGatewayRoute(b *testing.B, route string) *Gateway {
	b.Helper()
	return benchGatewayConfig(b, "", route)
}

// benchGatewayConfig is benchGateway with more keys of the shared
// listener (", waf: {}") and of the echo route ("cache: {ttl: 1h}").
func benchGatewayConfig(b *testing.B, shared, route string) *Gateway {
	b.Helper()
	if route != "" {
		route = ", " + route
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(up, &echo.Server{Name: "bench"})
	go func() { _ = up.Serve(ln) }()
	b.Cleanup(up.Stop)
	cfg, err := config.Load("bench.yaml", fmt.Appendf(nil, `
listeners:
  - {name: shared, address: 127.0.0.1:0%s}
  - {name: dedicated, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}
  - {name: shared-grpc-go, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_GRPC_GO}
  - {name: dedicated-grpc-go, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC], native_engine: NATIVE_ENGINE_GRPC_GO}
clusters:
  - {name: echo, endpoints: [%q]}
routes:
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo%s}
logging: {disable_access_log: true}
admin: {disable: true}
`, shared, ln.Addr().String(), route))
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve() }()
	b.Cleanup(g.Stop)
	return g
}

// BenchmarkNativeGRPC compares a unary call through the shared port (the
// connection sniffed once) with one through a dedicated gRPC port, each
// served by the relay (the default) and by grpc-go's server. The
// "-deadline" rows send each call with a deadline (grpc-timeout), as most
// clients do (ghz: 20 s by default), which the gateway enforces.
func BenchmarkNativeGRPC(b *testing.B) {
	g := benchGateway(b)
	addrs := g.Addrs()
	for _, r := range []struct {
		name     string
		listener int // in benchGateway's order
		deadline bool
	}{
		{"shared-port", 0, false},
		{"dedicated-port", 1, false},
		{"shared-port-grpc-go", 2, false},
		{"dedicated-port-grpc-go", 3, false},
		{"shared-port-deadline", 0, true},
		{"shared-port-grpc-go-deadline", 2, true},
	} {
		b.Run(r.name, func(b *testing.B) {
			call := func(c testingv1.EchoServiceClient, req *testingv1.EchoRequest) error {
				ctx := context.Background()
				if r.deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
					defer cancel()
				}
				_, err := c.Unary(ctx, req)
				return err
			}
			conn, err := grpc.NewClient(addrs[r.listener].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			c := testingv1.NewEchoServiceClient(conn)
			req := &testingv1.EchoRequest{Payload: make([]byte, 100)}
			if err := call(c, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(c, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRESTToCore compares the two ways the REST door can reach the
// core: the in-process connection (chain and proxy called directly, no
// socket, no second marshal) and a bufconn loopback to the core
// grpc.Server (a full HTTP/2 hop in memory). The gateway uses the first.
func BenchmarkRESTToCore(b *testing.B) {
	g := benchGateway(b)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = g.server.Serve(lis) }()
	loop, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = loop.Close() }()
	_, stream := chain(deps{log: g.log, proxy: g.proxy, metrics: g.metrics, policies: g.policies}, &options{})
	for _, c := range []struct {
		name string
		conn grpc.ClientConnInterface
	}{
		{"in-process", router.NewInProcess(chainStream(stream), g.proxy.Handler())},
		{"bufconn", loop},
	} {
		b.Run(c.name, func(b *testing.B) {
			rest, err := frontdoor.NewREST(g.cfg.GetHttp().GetRest(), c.conn, g.proxy.Snapshot().Schema)
			if err != nil {
				b.Fatal(err)
			}
			h := frontdoor.NewHTTPHandler(frontdoor.HTTPOptions{REST: rest, MaxBodyBytes: 1 << 20})
			body := `{"message":"` + strings.Repeat("x", 100) + `"}`
			do := func() {
				req := httptest.NewRequest("POST", "/v1/echo:unary", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			do()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				do()
			}
		})
	}
}

// BenchmarkGRPCWebToCore compares the ways a gRPC-Web call can reach the
// core: improbable-eng's translation to gRPC over HTTP in front of the core
// grpc.Server's ServeHTTP (its HTTP handler transport) or in front of the
// in-process call (chain and proxy run on the request's goroutine), and
// the gRPC-Web door (package grpcweb), whose in-process call speaks
// gRPC-Web itself. The gateway uses the last for proxied calls.
func BenchmarkGRPCWebToCore(b *testing.B) {
	g := benchGateway(b)
	_, stream := chain(deps{log: g.log, proxy: g.proxy, metrics: g.metrics, policies: g.policies}, &options{})
	frame, err := proto.Marshal(&testingv1.EchoRequest{Payload: make([]byte, 100)})
	if err != nil {
		b.Fatal(err)
	}
	body := append([]byte{0, 0, 0, 0, byte(len(frame))}, frame...)
	core := router.NewInProcess(chainStream(stream), g.proxy.Handler())
	overHTTP := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { grpcweb.ServeCore(core, 4<<20, w, r) })
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"improbable/grpc.Server.ServeHTTP", improbable.WrapServer(g.server)},
		{"improbable/in-process", improbable.WrapHandler(overHTTP)},
		{"in-process", grpcweb.New(grpcweb.Options{Core: core, Server: g.server, MaxBodyBytes: 1 << 20, MaxMessageBytes: 4 << 20})},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.h
			do := func() {
				req := httptest.NewRequest("POST", "/edgegate.testing.v1.EchoService/Unary", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/grpc-web+proto")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte("grpc-status: 0")) {
					b.Fatalf("%d %q", rec.Code, rec.Body)
				}
			}
			do()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				do()
			}
		})
	}
}
