// Command shopd runs the example backends of the edgegate quickstart: the
// shop's catalog, orders and users services and the echo test service, each
// on its own address (as separate upstream clusters), each with gRPC health
// and server reflection; and a plain HTTP service (examples/legacy), the
// backend of the default config's HTTP route.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/examples/legacy"
	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

func main() {
	catalogAddr := flag.String("catalog", "127.0.0.1:9101", "address of the catalog service")
	ordersAddr := flag.String("orders", "127.0.0.1:9102", "address of the orders service")
	usersAddr := flag.String("users", "127.0.0.1:9103", "address of the users service")
	echoAddr := flag.String("echo", "127.0.0.1:9104", "address of the echo test service")
	httpAddr := flag.String("http", "127.0.0.1:9105", "address of the plain HTTP service")
	flag.Parse()

	backends := []struct {
		name, addr string
		register   func(*grpc.Server)
	}{
		{"catalog", *catalogAddr, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) }},
		{"orders", *ordersAddr, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, shop.NewOrders()) }},
		{"users", *usersAddr, func(s *grpc.Server) { usersv1.RegisterUsersServiceServer(s, shop.NewUsers()) }},
		{"echo", *echoAddr, func(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: "shopd-echo"}) }},
	}
	errc := make(chan error, len(backends)+1)
	var servers []*grpc.Server
	for _, b := range backends {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "shopd: %s: %v\n", b.name, err)
			os.Exit(1)
		}
		s := grpc.NewServer()
		b.register(s)
		healthpb.RegisterHealthServer(s, health.NewServer())
		reflection.Register(s)
		servers = append(servers, s)
		slog.Info("backend listening", "service", b.name, "address", ln.Addr().String())
		go func() { errc <- s.Serve(ln) }()
	}
	hln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shopd: http: %v\n", err)
		os.Exit(1)
	}
	hs := &http.Server{Handler: legacy.Handler(), ReadHeaderTimeout: 10 * time.Second}
	slog.Info("backend listening", "service", "legacy (HTTP)", "address", hln.Addr().String())
	go func() { errc <- hs.Serve(hln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errc:
		slog.Error("backend failed", "error", err)
	}
	for _, s := range servers {
		s.GracefulStop()
	}
	_ = hs.Shutdown(context.Background())
}
