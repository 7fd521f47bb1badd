package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/shop"
	"github.com/edgegate/edgegate/gateway"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	storefrontv1 "github.com/edgegate/edgegate/gen/shop/storefront/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// shopFaults is a real shop backend's fault switch: per method, what the
// test makes it do before it answers, and the requests it saw.
type shopFaults struct {
	mu    sync.Mutex
	fault map[string]func(ctx context.Context) error
	seen  map[string][]proto.Message
}

func (f *shopFaults) set(method string, fn func(ctx context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault[method] = fn
}

func (f *shopFaults) requests(method string) []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.Message(nil), f.seen[method]...)
}

func (f *shopFaults) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	f.mu.Lock()
	fn := f.fault[info.FullMethod]
	f.seen[info.FullMethod] = append(f.seen[info.FullMethod], proto.Clone(req.(proto.Message)))
	f.mu.Unlock()
	if fn != nil {
		if err := fn(ctx); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

const (
	getBook    = "/shop.catalog.v1.CatalogService/GetBook"
	listBooks  = "/shop.catalog.v1.CatalogService/ListBooks"
	listOrders = "/shop.orders.v1.OrdersService/ListOrders"
	bookPage   = "/shop.storefront.v1.StorefrontService/GetBookPage"
	readerKey  = "reader-key"
	buyerKey   = "buyer-key"
)

// storefrontConfig routes the shop's catalog and orders backends and
// declares the storefront composite: the book, its author's books (a
// dependent leg), the caller's orders (its principal; the orders route
// needs the orders.read scope), and the books of request.also (a fan-out
// of at most 2). legTimeout bounds the optional legs.
func storefrontConfig(catalog, orders string, legTimeout time.Duration) string {
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
auth_providers:
  - name: keys
    api_key:
      keys:
        - {sha256: %q, principal: reader, scopes: [catalog.read]}
        - {sha256: %q, principal: ada, scopes: [catalog.read, orders.read]}
clusters:
  - {name: catalog, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
routes:
  - name: catalog
    match: {service: shop.catalog.v1.CatalogService}
    cluster: catalog
    auth: {providers: [keys], allow_anonymous: true}
  - name: orders
    match: {package: shop.orders}
    cluster: orders
    auth: {providers: [keys], required_scopes: [orders.read]}
composites:
  - name: book-page
    method: shop.storefront.v1.StorefrontService/GetBookPage
    http: {get: "/v1/storefront/{book=shelves/*/books/*}"}
    route: catalog
    timeout: 10s
    errors_field: errors
    legs:
      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.book}]
        response: [{field: book}]
      - name: author_books
        method: shop.catalog.v1.CatalogService/ListBooks
        request: [{field: filter.author, from: legs.book.author}]
        response: [{field: author_books, from: books}]
        optional: true
        timeout: %s
      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
        request: [{field: user_id, from: principal.id}]
        response: [{field: orders, from: orders}]
        optional: true
        timeout: %s
      - name: also
        method: shop.catalog.v1.CatalogService/GetBook
        fan_out: {over: request.also, max_items: 2, concurrency: 2}
        request: [{field: name, from: item}]
        response: [{field: also}]
        optional: true
`, authint.HashKey(readerKey), authint.HashKey(buyerKey), catalog, orders, legTimeout, legTimeout)
}

type storefront struct {
	gw      *Gateway
	cfgYAML string
	faults  *shopFaults
	orders  *shop.Orders
	grpc    storefrontv1.StorefrontServiceClient
	base    string
}

func startStorefront(t *testing.T, legTimeout time.Duration, more ...string) *storefront {
	t.Helper()
	return startStorefrontOpts(t, legTimeout, strings.Join(more, ""))
}

func startStorefrontOpts(t *testing.T, legTimeout time.Duration, more string, opts ...gateway.Option) *storefront {
	t.Helper()
	f := &shopFaults{fault: map[string]func(context.Context) error{}, seen: map[string][]proto.Message{}}
	orders := shop.NewOrders()
	catalogAddr := StartServerOpts(t, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) }, grpc.UnaryInterceptor(f.intercept))
	ordersAddr := StartServerOpts(t, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, orders) }, grpc.UnaryInterceptor(f.intercept))
	yaml := storefrontConfig(catalogAddr, ordersAddr, legTimeout) + more
	gw := StartGateway(t, yaml, opts...)
	for _, n := range []int32{1, 2} {
		if _, err := orders.CreateOrder(context.Background(), &ordersv1.CreateOrderRequest{UserId: "ada", Items: []*ordersv1.LineItem{{Book: "shelves/1/books/1", Quantity: n}}}); err != nil {
			t.Fatal(err)
		}
	}
	return &storefront{gw: gw, cfgYAML: yaml + "\nadmin: {address: 127.0.0.1:0}\n", faults: f, orders: orders, grpc: storefrontv1.NewStorefrontServiceClient(Dial(t, gw.Addr)), base: "http://" + gw.Addr}
}

// pageAnswer is a composite's answer on one door.
type pageAnswer struct {
	page    *storefrontv1.BookPage
	st      *status.Status
	partial string // the x-edgegate-partial header
	trailer string // the x-edgegate-leg-errors trailer (gRPC doors)
	reqID   string
}

// pageDoor calls the storefront composite on one door, with the API key
// key and the metadata (headers) md.
type pageDoor struct {
	name   string
	callMD func(t *testing.T, s *storefront, req *storefrontv1.GetBookPageRequest, key string, md map[string]string) pageAnswer
}

func (d pageDoor) call(t *testing.T, s *storefront, req *storefrontv1.GetBookPageRequest, key string) pageAnswer {
	return d.callMD(t, s, req, key, nil)
}

var pageDoors = []pageDoor{
	{"grpc", func(t *testing.T, s *storefront, req *storefrontv1.GetBookPageRequest, key string, md map[string]string) pageAnswer {
		ctx := Ctx(t, 10*time.Second)
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", key)
		}
		for k, v := range md {
			ctx = metadata.AppendToOutgoingContext(ctx, k, v)
		}
		var hdr, tlr metadata.MD
		page, err := s.grpc.GetBookPage(ctx, req, grpc.Header(&hdr), grpc.Trailer(&tlr))
		a := pageAnswer{page: page, st: status.Convert(err)}
		a.partial = strings.Join(hdr.Get("x-edgegate-partial"), ",")
		a.trailer = strings.Join(tlr.Get("x-edgegate-leg-errors"), "")
		a.reqID = strings.Join(hdr.Get("x-request-id"), "")
		return a
	}},
	{"grpc-web", func(t *testing.T, s *storefront, req *storefrontv1.GetBookPageRequest, key string, md map[string]string) pageAnswer {
		c := connect.NewClient[storefrontv1.GetBookPageRequest, storefrontv1.BookPage](http.DefaultClient, s.base+bookPage, connect.WithGRPCWeb())
		cr := connect.NewRequest(req)
		if key != "" {
			cr.Header().Set("x-api-key", key)
		}
		for k, v := range md {
			cr.Header().Set(k, v)
		}
		resp, err := c.CallUnary(Ctx(t, 10*time.Second), cr)
		a := pageAnswer{st: connectStatus(err)}
		if err == nil {
			a.page = resp.Msg
			a.partial = resp.Header().Get("x-edgegate-partial")
			a.trailer = resp.Trailer().Get("x-edgegate-leg-errors")
			a.reqID = resp.Header().Get("x-request-id")
		}
		return a
	}},
	{"rest", func(t *testing.T, s *storefront, req *storefrontv1.GetBookPageRequest, key string, md map[string]string) pageAnswer {
		url := s.base + "/v1/storefront/" + req.GetBook()
		for i, b := range req.GetAlso() {
			sep := "&"
			if i == 0 {
				sep = "?"
			}
			url += sep + "also=" + b
		}
		hdr := map[string]string{}
		for k, v := range md {
			hdr[k] = v
		}
		if key != "" {
			hdr["x-api-key"] = key
		}
		r := doHTTP(t, nil, http.MethodGet, url, "", hdr)
		a := pageAnswer{partial: r.header.Get("x-edgegate-partial"), reqID: r.header.Get("x-request-id")}
		if r.code != http.StatusOK {
			a.st = restStatus(t, r.body)
			return a
		}
		a.st = status.New(codes.OK, "")
		a.page = &storefrontv1.BookPage{}
		if err := protojson.Unmarshal(r.body, a.page); err != nil {
			t.Fatalf("REST answer %s: %v", r.body, err)
		}
		return a
	}},
}

// TestCompositeAllDoors: one call of the composite on each door gets the
// book, its author's books (a leg that read the book's author), the
// caller's orders (a leg that read the principal) and the fan-out's books
// (two of three: its cap), merged into the typed answer; every leg's
// access log line carries the composite's request id.
func TestCompositeAllDoors(t *testing.T) {
	s := startStorefront(t, 5*time.Second)
	for _, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			before := len(s.faults.requests(getBook))
			req := &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1", Also: []string{"shelves/1/books/2", "shelves/2/books/3", "shelves/1/books/1"}}
			a := d.call(t, s, req, buyerKey)
			if a.st.Code() != codes.OK {
				t.Fatalf("status %v", a.st.Proto())
			}
			p := a.page
			if p.GetBook().GetTitle() != "The Left Hand of Darkness" {
				t.Errorf("book %v", p.GetBook())
			}
			if len(p.GetAuthorBooks()) != 1 || p.GetAuthorBooks()[0].GetAuthor() != "Ursula K. Le Guin" {
				t.Errorf("author books %v", p.GetAuthorBooks())
			}
			if len(p.GetOrders()) != 2 || p.GetOrders()[0].GetUserId() != "ada" {
				t.Errorf("orders %v", p.GetOrders())
			}
			if len(p.GetAlso()) != 2 || p.GetAlso()[0].GetName() != "shelves/1/books/2" || p.GetAlso()[1].GetName() != "shelves/2/books/3" {
				t.Errorf("also %v, want the first two of three (max_items 2), in order", p.GetAlso())
			}
			if len(p.GetErrors()) != 0 || a.partial != "" || a.trailer != "" {
				t.Errorf("errors %v, partial %q, trailer %q: want none", p.GetErrors(), a.partial, a.trailer)
			}
			// The book leg, then two fan-out calls: never the third item.
			if n := len(s.faults.requests(getBook)) - before; n != 3 {
				t.Errorf("%d GetBook calls, want 3 (the book and 2 of the fan-out)", n)
			}
			lb := s.faults.requests(listBooks)
			if got := lb[len(lb)-1].(*catalogv1.ListBooksRequest).GetFilter().GetAuthor(); got != "Ursula K. Le Guin" {
				t.Errorf("author_books asked for author %q, want the book leg's", got)
			}
			lo := s.faults.requests(listOrders)
			if got := lo[len(lo)-1].(*ordersv1.ListOrdersRequest).GetUserId(); got != "ada" {
				t.Errorf("orders leg asked for user %q, want the principal", got)
			}
			if a.reqID == "" {
				t.Fatal("no x-request-id")
			}
			comp := s.gw.Logs.AccessLine(t, `"request_id":"`+a.reqID+`","door":"`+d.name+`"`)
			if !strings.Contains(comp, `"method":"`+bookPage+`","route":"book-page"`) {
				t.Errorf("composite line %s: want its method and route", comp)
			}
			for _, m := range []string{getBook, listBooks, listOrders} {
				found := false
				for _, l := range strings.Split(s.gw.Logs.String(), "\n") {
					if strings.Contains(l, `"method":"`+m+`"`) && strings.Contains(l, a.reqID) && strings.Contains(l, `"door":"composite"`) {
						found = true
					}
				}
				if !found {
					t.Errorf("no access log line of leg %s with door composite and request id %s", m, a.reqID)
				}
			}
		})
	}
}

// TestCompositeTraceContext: the legs' spans are children of the
// composite's, in the client's trace, on every door.
func TestCompositeTraceContext(t *testing.T) {
	rec, tp := newSpanRecorder()
	s := startStorefrontOpts(t, 5*time.Second, "", gateway.WithTracerProvider(tp))
	for i, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			traceID := fmt.Sprintf("%032x", 0xc0de00+i)
			call := func() pageAnswer {
				md := map[string]string{"traceparent": "00-" + traceID + "-00000000000000aa-01"}
				return d.callMD(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}, buyerKey, md)
			}
			if a := call(); a.st.Code() != codes.OK {
				t.Fatalf("status %v", a.st.Proto())
			}
			spans := map[string]tracetest.SpanStub{}
			for _, sp := range rec.trace(t, traceID, 4) { // the composite's and its three legs'
				spans[sp.Name] = sp
			}
			comp, ok := spans["shop.storefront.v1.StorefrontService/GetBookPage"]
			if !ok || comp.Parent.SpanID().String() != "00000000000000aa" {
				t.Fatalf("composite span %+v, want the client's child", comp)
			}
			for _, leg := range []string{"shop.catalog.v1.CatalogService/GetBook", "shop.catalog.v1.CatalogService/ListBooks", "shop.orders.v1.OrdersService/ListOrders"} {
				if sp, ok := spans[leg]; !ok || sp.Parent.SpanID() != comp.SpanContext.SpanID() {
					t.Errorf("leg span %s: parent %v, want the composite's %v", leg, sp.Parent.SpanID(), comp.SpanContext.SpanID())
				}
			}
		})
	}
}

// legErrors reads the x-edgegate-leg-errors trailer.
func legErrors(t *testing.T, trailer string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(trailer), &out); err != nil {
		t.Fatalf("trailer %q: %v", trailer, err)
	}
	return out
}

// checkPartial checks an answer whose optional leg failed with code: the
// rest answered, the leg's part empty, its status in errors, the header
// naming it, and on the gRPC doors the trailer with its status.
func checkPartial(t *testing.T, d pageDoor, a pageAnswer, leg string, code codes.Code) {
	t.Helper()
	if a.st.Code() != codes.OK {
		t.Fatalf("status %v, want OK with a partial answer", a.st.Proto())
	}
	if a.page.GetBook().GetName() != "shelves/1/books/1" {
		t.Errorf("book %v", a.page.GetBook())
	}
	if got := a.page.GetErrors()[leg]; codes.Code(got.GetCode()) != code {
		t.Errorf("errors[%s] = %v, want %v", leg, got, code)
	}
	if a.partial != leg {
		t.Errorf("x-edgegate-partial %q, want %q", a.partial, leg)
	}
	if d.name != "rest" {
		le := legErrors(t, a.trailer)
		if !strings.Contains(string(le[leg]), fmt.Sprintf(`"code":%d`, code)) {
			t.Errorf("trailer %s: want %s with code %d", a.trailer, leg, code)
		}
	}
}

// TestCompositeOptionalLegFails: the orders backend is down for
// ListOrders; the page comes without orders, saying so.
func TestCompositeOptionalLegFails(t *testing.T) {
	s := startStorefront(t, 5*time.Second)
	s.faults.set(listOrders, func(context.Context) error { return status.Error(codes.Unavailable, "orders database down") })
	for _, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			a := d.call(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}, buyerKey)
			checkPartial(t, d, a, "orders", codes.Unavailable)
			if len(a.page.GetOrders()) != 0 || len(a.page.GetAuthorBooks()) != 1 {
				t.Errorf("orders %v, author books %v", a.page.GetOrders(), a.page.GetAuthorBooks())
			}
			if msg := a.page.GetErrors()["orders"].GetMessage(); msg != "orders database down" {
				t.Errorf("orders error %q, want the upstream's", msg)
			}
		})
	}
}

// TestCompositeLegDeniedByAuthorization: a caller without the orders
// route's scope gets the page without orders (PERMISSION_DENIED for that
// leg); the catalog legs, which it may call, answer.
func TestCompositeLegDeniedByAuthorization(t *testing.T) {
	s := startStorefront(t, 5*time.Second)
	for _, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			before := len(s.faults.requests(listOrders))
			a := d.call(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}, readerKey)
			checkPartial(t, d, a, "orders", codes.PermissionDenied)
			if n := len(s.faults.requests(listOrders)) - before; n != 0 {
				t.Errorf("the orders backend was called %d times: the denied leg reached it", n)
			}
		})
	}
}

// TestCompositeRequiredLegFails: the book leg is required; a book that
// does not exist fails the call with its NOT_FOUND (HTTP 404).
func TestCompositeRequiredLegFails(t *testing.T) {
	s := startStorefront(t, 5*time.Second)
	for _, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			a := d.call(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/9/books/9"}, buyerKey)
			if a.st.Code() != codes.NotFound {
				t.Fatalf("status %v, want NOT_FOUND from the book leg", a.st.Proto())
			}
		})
	}
	// A required leg refused by its own route's policy fails the call too.
	s.faults.set(getBook, func(context.Context) error { return status.Error(codes.ResourceExhausted, "slow down") })
	a := pageDoors[0].call(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}, buyerKey)
	if a.st.Code() != codes.ResourceExhausted || a.st.Message() != "slow down" {
		t.Errorf("status %v, want the book leg's", a.st.Proto())
	}
}

// TestCompositeLegTimesOut: the orders backend does not answer; its leg
// ends at its timeout (DEADLINE_EXCEEDED, reported) while the others
// answer, and the backend's call is cancelled.
func TestCompositeLegTimesOut(t *testing.T) {
	s := startStorefront(t, 300*time.Millisecond)
	cancelled := make(chan struct{}, 8)
	s.faults.set(listOrders, func(ctx context.Context) error {
		<-ctx.Done()
		cancelled <- struct{}{}
		return status.FromContextError(ctx.Err()).Err()
	})
	for _, d := range pageDoors {
		t.Run(d.name, func(t *testing.T) {
			a := d.call(t, s, &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}, buyerKey)
			checkPartial(t, d, a, "orders", codes.DeadlineExceeded)
			if len(a.page.GetAuthorBooks()) != 1 {
				t.Errorf("author books %v: the other legs should answer", a.page.GetAuthorBooks())
			}
			select {
			case <-cancelled:
			case <-time.After(Patience):
				t.Fatal("the timed-out leg's upstream call was not cancelled")
			}
		})
	}
}

// restOnlyComposite is a composite without a method: served on REST
// alone, each leg's answer under its name.
const restOnlyComposite = `  - name: page-json
    http: {get: "/v1/pages/{book=shelves/*/books/*}"}
    route: catalog
    legs:
      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.book}]
      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
        request: [{field: user_id, from: request.user_id}, {field: page_size, from: request.size}]
        optional: true
      - name: also
        method: shop.catalog.v1.CatalogService/GetBook
        fan_out: {over: request.also}
        request: [{field: name, from: item}]
        optional: true
`

// TestCompositeRESTOnly: a composite without a method answers on its REST
// binding with each leg's answer under the leg's name (a fan-out's as a
// list), its request read from the path and the query; a failed optional
// leg is under "errors".
func TestCompositeRESTOnly(t *testing.T) {
	s := startStorefront(t, 5*time.Second, restOnlyComposite)
	url := s.base + "/v1/pages/shelves/1/books/1?user_id=ada&size=1&also=shelves/1/books/2&also=shelves/2/books/3"
	r := doHTTP(t, nil, http.MethodGet, url, "", map[string]string{"x-api-key": buyerKey})
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
	var got struct {
		Book   *json.RawMessage           `json:"book"`
		Orders struct{ Orders []any }     `json:"orders"`
		Also   []map[string]any           `json:"also"`
		Errors map[string]json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	book := &catalogv1.Book{}
	if got.Book == nil || protojson.Unmarshal(*got.Book, book) != nil || book.GetTitle() != "The Left Hand of Darkness" {
		t.Errorf("book %s", r.body)
	}
	if len(got.Orders.Orders) != 1 {
		t.Errorf("orders %v, want 1 (size=1 from the query)", got.Orders)
	}
	if len(got.Also) != 2 || got.Also[1]["name"] != "shelves/2/books/3" || len(got.Errors) != 0 {
		t.Errorf("also %v errors %v", got.Also, got.Errors)
	}
	s.faults.set(listOrders, func(context.Context) error { return status.Error(codes.Unavailable, "down") })
	r = doHTTP(t, nil, http.MethodGet, url, "", map[string]string{"x-api-key": buyerKey})
	var partial struct {
		Orders map[string]any            `json:"orders"`
		Errors map[string]map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &partial); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	if r.code != http.StatusOK || r.header.Get("x-edgegate-partial") != "orders" || partial.Orders != nil ||
		partial.Errors["orders"]["code"] != float64(codes.Unavailable) || partial.Errors["orders"]["message"] != "down" {
		t.Errorf("HTTP %d %v: %s", r.code, r.header, r.body)
	}
}

// TestCompositeRebuiltOnReload: a reload that makes the orders leg
// required serves the new composite to the next call; a reload with a
// broken composite is refused and the one in force keeps serving.
func TestCompositeRebuiltOnReload(t *testing.T) {
	s := startStorefront(t, 5*time.Second)
	s.faults.set(listOrders, func(context.Context) error { return status.Error(codes.Unavailable, "down") })
	req := &storefrontv1.GetBookPageRequest{Book: "shelves/1/books/1"}
	if a := pageDoors[0].call(t, s, req, buyerKey); a.st.Code() != codes.OK || a.partial != "orders" {
		t.Fatalf("before: %v %q", a.st.Proto(), a.partial)
	}
	yaml := s.cfgYAML
	load := func(y string) error {
		cfg, err := config.Load("test.yaml", []byte(y))
		if err != nil {
			return err
		}
		return s.gw.Reload(cfg)
	}
	bad := strings.Replace(yaml, "from: legs.book.author", "from: legs.book.autor", 1)
	if err := load(bad); err == nil || !strings.Contains(err.Error(), `unknown field path "autor"`) {
		t.Fatalf("broken reload: %v", err)
	}
	if a := pageDoors[0].call(t, s, req, buyerKey); a.st.Code() != codes.OK || a.partial != "orders" {
		t.Fatalf("after a refused reload: %v %q", a.st.Proto(), a.partial)
	}
	required := strings.Replace(yaml, "response: [{field: orders, from: orders}]\n        optional: true", "response: [{field: orders, from: orders}]", 1)
	if required == yaml {
		t.Fatal("the config has no optional orders leg")
	}
	if err := load(required); err != nil {
		t.Fatal(err)
	}
	if a := pageDoors[0].call(t, s, req, buyerKey); a.st.Code() != codes.Unavailable {
		t.Fatalf("after the reload: %v, want the now required orders leg's UNAVAILABLE", a.st.Proto())
	}
}

// TestCompositeConfigErrors: a composite that cannot work is a validate
// error at its line and column.
func TestCompositeConfigErrors(t *testing.T) {
	base := `listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: catalog, endpoints: [127.0.0.1:1]}
routes:
  - {name: catalog, match: {service: shop.catalog.v1.CatalogService}, cluster: catalog}
composites:
  - name: page
    method: shop.storefront.v1.StorefrontService/GetBookPage
    legs:
`
	cases := []struct {
		name, legs, want string
	}{
		{"unknown method", `      - name: book
        method: shop.catalog.v1.CatalogService/GetBok
`, "test.yaml:12:17: composites[0].legs[0].method: unknown method shop.catalog.v1.CatalogService/GetBok"},
		{"unrouted method", `      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
`, "test.yaml:12:17: composites[0].legs[0].method: shop.orders.v1.OrdersService/ListOrders has no route"},
		{"unknown field path", `      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.bok}]
`, `test.yaml:13:39: composites[0].legs[0].request[0].from: unknown field path "bok": shop.storefront.v1.GetBookPageRequest has no field "bok"`},
		{"unknown response field", `      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        response: [{field: book.titel, from: title}]
`, `test.yaml:13:28: composites[0].legs[0].response[0].field: unknown field path "book.titel"`},
		{"wrong type", `      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        response: [{field: book, from: title}]
`, "test.yaml:13:20: composites[0].legs[0].response[0]: cannot set book (shop.catalog.v1.Book) from a scalar"},
		{"cycle", `      - name: a
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: legs.b.name}]
      - name: b
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: legs.a.name}]
`, "test.yaml:11:9: composites[0].legs[0]: legs depend on each other in a cycle: a → b → a"},
		{"conflicting mappings", `      - name: a
        method: shop.catalog.v1.CatalogService/GetBook
        response: [{field: book}]
      - name: b
        method: shop.catalog.v1.CatalogService/GetBook
        response: [{field: book.title, from: title}]
`, `test.yaml:16:28: composites[0].legs[1].response[0].field: "book.title" is written by leg "a" (composites[0].legs[0].response[0]) already: two legs may not write one field`},
		{"fan-out over a scalar", `      - name: a
        method: shop.catalog.v1.CatalogService/GetBook
        fan_out: {over: request.book}
`, `test.yaml:13:25: composites[0].legs[0].fan_out.over: "request.book" is not a repeated field`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(base + c.legs)
			cfg, err := config.Load("test.yaml", data)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			err = config.Place("test.yaml", data, gateway.Check(cfg))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n%v\nwant it to contain\n%s", err, c.want)
			}
		})
	}
}

// TestCompositeDefaultConfigValidates: the embedded default config's
// storefront composite compiles against the compiled-in schema.
func TestCompositeDefaultConfigValidates(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if err := gateway.Check(cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.GetComposites()) == 0 {
		t.Fatal("the default config has no composite")
	}
}

// TestCompositeBodyAndClaims: legs read the request body's fields and the
// principal's JWT claims.
func TestCompositeBodyAndClaims(t *testing.T) {
	je := newJWTEnv(t)
	orders := shop.NewOrders()
	for range 3 {
		if _, err := orders.CreateOrder(context.Background(), &ordersv1.CreateOrderRequest{UserId: "cust-7", Items: []*ordersv1.LineItem{{Book: "shelves/1/books/1", Quantity: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	catalogAddr := StartServer(t, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) })
	ordersAddr := StartServer(t, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, orders) })
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
auth_providers:
  - name: users
    jwt: {jwks_file: %q, issuer: "https://issuer.test", audiences: [edgegate]}
clusters:
  - {name: catalog, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
routes:
  - {name: catalog, match: {service: shop.catalog.v1.CatalogService}, cluster: catalog, auth: {providers: [users]}}
  - {name: orders, match: {package: shop.orders}, cluster: orders, auth: {providers: [users]}}
composites:
  - name: page
    http: {post: "/v1/pages", body: "*"}
    route: catalog
    legs:
      - name: book
        method: shop.catalog.v1.CatalogService/GetBook
        request: [{field: name, from: request.book}]
      - name: orders
        method: shop.orders.v1.OrdersService/ListOrders
        request: [{field: user_id, from: principal.claims.customer}, {field: page_size, from: request.size}]
`, je.jwksFile, catalogAddr, ordersAddr))
	tok := je.token(t, "ada", "", time.Now().Add(time.Hour), map[string]any{"customer": "cust-7"})
	r := doHTTP(t, nil, http.MethodPost, "http://"+gw.Addr+"/v1/pages", `{"book":"shelves/1/books/2","size":"2"}`, map[string]string{"authorization": "Bearer " + tok})
	var got struct {
		Book   map[string]any `json:"book"`
		Orders struct {
			Orders []map[string]any `json:"orders"`
		} `json:"orders"`
	}
	if err := json.Unmarshal(r.body, &got); r.code != http.StatusOK || err != nil {
		t.Fatalf("HTTP %d %v: %s", r.code, err, r.body)
	}
	if got.Book["name"] != "shelves/1/books/2" || len(got.Orders.Orders) != 2 || got.Orders.Orders[0]["userId"] != "cust-7" {
		t.Errorf("answer %s: want book 2 from the body and 2 (size) orders of the customer claim", r.body)
	}
	// Without a token the composite's own route refuses the call before
	// any leg runs.
	r = doHTTP(t, nil, http.MethodPost, "http://"+gw.Addr+"/v1/pages", `{"book":"shelves/1/books/2"}`, nil)
	wantStatusJSON(t, r, http.StatusUnauthorized, codes.Unauthenticated, "authentication required")
}
