package discover_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	refv1alphagrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

// The services of the repository's examples, by full name.
const (
	echoService    = "edgegate.testing.v1.EchoService"
	catalogService = "shop.catalog.v1.CatalogService"
	ordersService  = "shop.orders.v1.OrdersService"
	usersService   = "shop.users.v1.UsersService"
	healthService  = "grpc.health.v1.Health"
)

// Ways to register services on an upstream.
func withEcho(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: "echo"}) }

func withShop(s *grpc.Server) {
	catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog())
	ordersv1.RegisterOrdersServiceServer(s, shop.NewOrders())
	usersv1.RegisterUsersServiceServer(s, shop.NewUsers())
}

func withHealth(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) }

// withReflection registers grpc.reflection.v1 and v1alpha.
func withReflection(s *grpc.Server) { reflection.Register(s) }

// withV1AlphaOnly registers grpc.reflection.v1alpha alone, as older
// servers do.
func withV1AlphaOnly(s *grpc.Server) {
	refv1alphagrpc.RegisterServerReflectionServer(s, reflection.NewServer(reflection.ServerOptions{Services: s}))
}

// upstream is a real gRPC server on loopback. streams records the methods
// of the streams clients opened, the ones of services it does not serve
// included.
type upstream struct {
	addr string
	srv  *grpc.Server

	mu      sync.Mutex
	streams []string
}

// startUpstream serves the services of register on addr ("127.0.0.1:0":
// a new port) until the test ends or stop.
func startUpstream(t *testing.T, addr string, register ...func(*grpc.Server)) *upstream {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	u := &upstream{addr: lis.Addr().String()}
	u.srv = grpc.NewServer(grpc.InTapHandle(func(ctx context.Context, info *tap.Info) (context.Context, error) {
		u.mu.Lock()
		u.streams = append(u.streams, info.FullMethodName)
		u.mu.Unlock()
		return ctx, nil
	}))
	for _, r := range register {
		r(u.srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = u.srv.Serve(lis)
	}()
	t.Cleanup(func() {
		u.srv.Stop()
		<-done
	})
	return u
}

// stop ends the server and its connections now.
func (u *upstream) stop() { u.srv.Stop() }

func (u *upstream) methods() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.streams)
}

// dial connects to addr, reconnecting quickly when the server comes back.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.2, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// services returns the full names of the services declared in set.
func services(set *descriptorpb.FileDescriptorSet) []string {
	var out []string
	for _, fd := range set.GetFile() {
		for _, sd := range fd.GetService() {
			out = append(out, fd.GetPackage()+"."+sd.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// checkComplete fails t unless set links on its own (every import present)
// with each file after its imports, each file once.
func checkComplete(t *testing.T, set *descriptorpb.FileDescriptorSet) *protoregistry.Files {
	t.Helper()
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("protodesc.NewFiles: %v", err)
	}
	seen := map[string]bool{}
	for _, fd := range set.GetFile() {
		if seen[fd.GetName()] {
			t.Errorf("%s is in the set twice", fd.GetName())
		}
		for _, dep := range fd.GetDependency() {
			if !seen[dep] {
				t.Errorf("%s comes before its import %s", fd.GetName(), dep)
			}
		}
		seen[fd.GetName()] = true
	}
	return files
}

// eventually polls cond every few milliseconds until it holds, failing t
// after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
