package test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/examples/shop"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	storefrontv1 "github.com/edgegate/edgegate/gen/shop/storefront/v1"
)

// benchStorefront starts the shop's catalog and orders backends, each
// call answered after delay, and a gateway with a composite of three
// independent legs (GetBook, ListBooks, ListOrders).
func benchStorefront(b *testing.B, delay time.Duration) (storefrontv1.StorefrontServiceClient, catalogv1.CatalogServiceClient, ordersv1.OrdersServiceClient) {
	b.Helper()
	slow := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return h(ctx, req)
	})
	catalog := StartServerOpts(b, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) }, slow)
	orders := StartServerOpts(b, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, shop.NewOrders()) }, slow)
	gw := StartGateway(b, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: catalog, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
routes:
  - {name: catalog, match: {service: shop.catalog.v1.CatalogService}, cluster: catalog}
  - {name: orders, match: {package: shop.orders}, cluster: orders}
logging: {disable_access_log: true}
composites:
  - name: book-page
    method: shop.storefront.v1.StorefrontService/GetBookPage
    legs:
      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.book}]
        response: [{field: book}]
      - name: author_books
        method: shop.catalog.v1.CatalogService/ListBooks
        request: [{field: filter.author, value: "Ursula K. Le Guin"}]
        response: [{field: author_books, from: books}]
      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
        request: [{field: user_id, from: request.user_id}]
        response: [{field: orders, from: orders}]
`, catalog, orders))
	conn := Dial(b, gw.Addr)
	return storefrontv1.NewStorefrontServiceClient(conn), catalogv1.NewCatalogServiceClient(conn), ordersv1.NewOrdersServiceClient(conn)
}

// sequential makes the composite's three calls one after the other, as a
// client without it would.
func sequential(ctx context.Context, c catalogv1.CatalogServiceClient, o ordersv1.OrdersServiceClient) error {
	if _, err := c.GetBook(ctx, &catalogv1.GetBookRequest{Name: "shelves/1/books/1"}); err != nil {
		return err
	}
	if _, err := c.ListBooks(ctx, &catalogv1.ListBooksRequest{Filter: &catalogv1.ListBooksRequest_Filter{Author: "Ursula K. Le Guin"}}); err != nil {
		return err
	}
	_, err := o.ListOrders(ctx, &ordersv1.ListOrdersRequest{UserId: "ada"})
	return err
}

var pageRequest = &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1", UserId: "ada"}

// BenchmarkCompositeLatency: three legs that each answer after 5 ms. It
// reports the composite's time per call, three sequential client calls'
// time, and the ratios of the composite to the slowest leg (5 ms, and a
// leg as measured) and to the sequential calls.
func BenchmarkCompositeLatency(b *testing.B) {
	const leg = 5 * time.Millisecond
	page, c, o := benchStorefront(b, leg)
	ctx := context.Background()
	var comp, seq time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := page.GetBookPage(ctx, pageRequest); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := sequential(ctx, c, o); err != nil {
			b.Fatal(err)
		}
		comp += t1.Sub(t0)
		seq += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(comp.Microseconds())/n/1000, "composite-ms/op")
	b.ReportMetric(float64(seq.Microseconds())/n/1000, "sequential-ms/op")
	b.ReportMetric(float64(comp)/n/float64(leg), "composite/slowest-leg")
	b.ReportMetric(float64(comp)/float64(seq), "composite/sequential")
	// A leg as measured: a third of the sequential calls (the backend's
	// timer and the hop through the gateway included).
	b.ReportMetric(float64(comp)/(float64(seq)/3), "composite/measured-leg")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompositeCPU: the CPU per call of the composite (legs without
// delay) and of the three calls it replaces, made one after the other by
// the client. Both figures are the whole process's (client, gateway,
// backends); their difference is what composing costs or saves.
func BenchmarkCompositeCPU(b *testing.B) {
	page, c, o := benchStorefront(b, 0)
	ctx := context.Background()
	b.Run("composite", func(b *testing.B) {
		start := cpuTime(b)
		for b.Loop() {
			if _, err := page.GetBookPage(ctx, pageRequest); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
	})
	b.Run("sequential", func(b *testing.B) {
		start := cpuTime(b)
		for b.Loop() {
			if err := sequential(ctx, c, o); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
	})
}
