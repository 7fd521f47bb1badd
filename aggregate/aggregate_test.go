package aggregate_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/aggregate"
	"github.com/edgegate/edgegate/config"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	storefrontv1 "github.com/edgegate/edgegate/gen/shop/storefront/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// TestMain fails the package's tests when they leave goroutines running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// allRouted routes every method and knows every route name.
type allRouted struct{}

func (allRouted) Routed(m string) bool { return !strings.Contains(m, "Storefront") }
func (allRouted) HasRoute(string) bool { return true }
func (allRouted) Pending(string) bool  { return false }

func compile(t *testing.T, yaml string) *aggregate.Composite {
	t.Helper()
	cfg, err := config.Load("t.yaml", []byte("listeners: [{address: 127.0.0.1:0}]\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schema.Build(schema.Input{Compiled: []schema.Compiled{
		{File: catalogv1.File_shop_catalog_v1_catalog_proto},
		{File: ordersv1.File_shop_orders_v1_orders_proto},
		{File: storefrontv1.File_shop_storefront_v1_storefront_proto},
	}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := aggregate.Compile(cfg, reg, allRouted{})
	if err != nil {
		t.Fatal(config.Place("t.yaml", []byte(yaml), err))
	}
	return set.List()[0]
}

// backend answers the legs' calls as the shop would, counting the calls
// in flight of each method.
type backend struct {
	mu    sync.Mutex
	calls []proto.Message
	fail  map[string]error
	// When tokens is set, a GetBook of a fan-out item (a name other than
	// b1) says so on started and waits for a token.
	tokens   chan struct{}
	started  chan struct{}
	inFlight atomic.Int32 // such calls
	maxIn    atomic.Int32
}

func (b *backend) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	raw, err := proto.Marshal(args.(proto.Message))
	if err != nil {
		return err
	}
	var req, resp proto.Message
	switch method {
	case "/shop.catalog.v1.CatalogService/GetBook":
		r := &catalogv1.GetBookRequest{}
		req = r
		if err := proto.Unmarshal(raw, r); err != nil {
			return err
		}
		if b.tokens != nil && r.GetName() != "b1" {
			n := b.inFlight.Add(1)
			for m := b.maxIn.Load(); n > m && !b.maxIn.CompareAndSwap(m, n); m = b.maxIn.Load() {
			}
			b.started <- struct{}{}
			select {
			case <-b.tokens:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
			b.inFlight.Add(-1)
		}
		resp = &catalogv1.Book{Name: r.GetName(), Author: "author of " + r.GetName()}
	case "/shop.catalog.v1.CatalogService/ListBooks":
		r := &catalogv1.ListBooksRequest{}
		req = r
		if err := proto.Unmarshal(raw, r); err != nil {
			return err
		}
		resp = &catalogv1.ListBooksResponse{Books: []*catalogv1.Book{{Name: "by " + r.GetFilter().GetAuthor()}}}
	case "/shop.orders.v1.OrdersService/ListOrders":
		r := &ordersv1.ListOrdersRequest{}
		req = r
		if err := proto.Unmarshal(raw, r); err != nil {
			return err
		}
		resp = &ordersv1.ListOrdersResponse{Orders: []*ordersv1.Order{{OrderId: "o-1", UserId: r.GetUserId()}}}
	}
	b.mu.Lock()
	b.calls = append(b.calls, req)
	err = b.fail[method]
	b.mu.Unlock()
	if err != nil {
		return err
	}
	out, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	return proto.Unmarshal(out, reply.(proto.Message))
}

func (b *backend) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

// stream is the composite's own call: one request in, one answer out.
type stream struct {
	grpc.ServerStream
	ctx     context.Context
	req     []byte
	resp    []byte
	header  metadata.MD
	trailer metadata.MD
}

func (s *stream) Context() context.Context { return s.ctx }
func (s *stream) RecvMsg(m any) error {
	m.(*router.Frame).SetBytes(s.req)
	return nil
}
func (s *stream) SendMsg(m any) error            { s.resp = m.(*router.Frame).Bytes(); return nil }
func (s *stream) SetHeader(md metadata.MD) error { s.header = metadata.Join(s.header, md); return nil }
func (s *stream) SetTrailer(md metadata.MD)      { s.trailer = metadata.Join(s.trailer, md) }

func serve(t *testing.T, c *aggregate.Composite, b *backend, req *storefrontv1.GetBookPageRequest) (*storefrontv1.BookPage, *stream, error) {
	t.Helper()
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{ctx: context.Background(), req: raw}
	if err := c.Serve(s, aggregate.Options{Conn: b}); err != nil {
		return nil, s, err
	}
	page := &storefrontv1.BookPage{}
	if err := proto.Unmarshal(s.resp, page); err != nil {
		t.Fatal(err)
	}
	return page, s, nil
}

const pageYAML = `composites:
  - name: page
    method: shop.storefront.v1.StorefrontService/GetBookPage
    errors_field: errors
    legs:
      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.book}]
        response: [{field: book}]
      - name: by_author
        method: shop.catalog.v1.CatalogService/ListBooks
        request: [{field: filter.author, from: legs.book.author}, {field: page_size, value: "5"}]
        response: [{field: author_books, from: books}]
        optional: true
      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
        request: [{field: user_id, from: request.user_id}, {field: page_size, from: legs.book.stock}]
        response: [{field: orders, from: orders}]
        optional: true
      - name: also
        method: shop.catalog.v1.CatalogService/GetBook
        fan_out: {over: request.also, max_items: 3, concurrency: 2}
        request: [{field: name, from: item}]
        response: [{field: also}]
        optional: true
`

// A dependent leg reads the answer of the leg it waits for; a constant
// "5" sets an int32; the fan-out calls at most max_items, at most
// concurrency at once, and keeps item order.
func TestServeMergesInOrder(t *testing.T) {
	c := compile(t, pageYAML)
	if got := strings.Join(c.Legs[1].After, ","); got != "book" {
		t.Errorf("by_author after %q", got)
	}
	b := &backend{}
	page, s, err := serve(t, c, b, &storefrontv1.GetBookPageRequest{Book: "b1", UserId: "ada", Also: []string{"x", "y", "z", "w"}})
	if err != nil {
		t.Fatal(err)
	}
	if page.GetBook().GetName() != "b1" || page.GetAuthorBooks()[0].GetName() != "by author of b1" || page.GetOrders()[0].GetUserId() != "ada" {
		t.Errorf("page %v", page)
	}
	var names []string
	for _, a := range page.GetAlso() {
		names = append(names, a.GetName())
	}
	if strings.Join(names, ",") != "x,y,z" {
		t.Errorf("fan-out answers %v, want x,y,z (max_items 3, in order)", names)
	}
	for _, m := range b.calls {
		if r, ok := m.(*catalogv1.ListBooksRequest); ok && r.GetPageSize() != 5 {
			t.Errorf("page_size %d, want the constant 5", r.GetPageSize())
		}
	}
	if len(s.header) != 0 || len(s.trailer) != 0 {
		t.Errorf("header %v trailer %v for a whole answer", s.header, s.trailer)
	}
}

// The fan-out has at most concurrency calls in flight: the third item
// starts only when one of the first two has answered.
func TestFanOutConcurrency(t *testing.T) {
	c := compile(t, pageYAML)
	b := &backend{tokens: make(chan struct{}), started: make(chan struct{}, 3)}
	done := make(chan error, 1)
	go func() {
		_, _, err := serve(t, c, b, &storefrontv1.GetBookPageRequest{Book: "b1", Also: []string{"x", "y", "z"}})
		done <- err
	}()
	for range 2 {
		<-b.started
	}
	b.tokens <- struct{}{} // one of the two answers: the third starts
	<-b.started
	b.tokens <- struct{}{}
	b.tokens <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := b.maxIn.Load(); m != 2 {
		t.Errorf("%d fan-out calls in flight at once, want 2 (its concurrency)", m)
	}
}

// A failed required leg fails the call with its status; an optional leg
// that waits for it is not called.
func TestRequiredLegFails(t *testing.T) {
	c := compile(t, pageYAML)
	b := &backend{fail: map[string]error{"/shop.catalog.v1.CatalogService/GetBook": status.Error(codes.NotFound, "no such book")}}
	_, _, err := serve(t, c, b, &storefrontv1.GetBookPageRequest{Book: "b1"})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such book" {
		t.Fatalf("status %v", st)
	}
	for _, m := range b.calls {
		if _, ok := m.(*catalogv1.ListBooksRequest); ok {
			t.Error("by_author was called after book failed")
		}
	}
}

// A failed optional leg is reported in errors_field, the header and the
// trailer.
func TestOptionalLegFails(t *testing.T) {
	c := compile(t, pageYAML)
	b := &backend{fail: map[string]error{"/shop.orders.v1.OrdersService/ListOrders": status.Error(codes.Unavailable, "down: é")}}
	page, s, err := serve(t, c, b, &storefrontv1.GetBookPageRequest{Book: "b1", UserId: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if page.GetErrors()["orders"].GetCode() != int32(codes.Unavailable) || len(page.GetOrders()) != 0 {
		t.Errorf("page %v", page)
	}
	if got := s.header.Get(aggregate.PartialHeader); len(got) != 1 || got[0] != "orders" {
		t.Errorf("header %v", s.header)
	}
	tr := s.trailer.Get(aggregate.LegErrorTrailer)
	if len(tr) != 1 || !strings.Contains(tr[0], `"orders":{"code":14`) || !strings.Contains(tr[0], `\u00e9`) {
		t.Errorf("trailer %v, want the status as printable-ASCII JSON", tr)
	}
}
