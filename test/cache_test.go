package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/internal/testredis"
)

// cacheUpstream is an echo upstream whose answers a test steers: the
// request metadata x-set-cache-control and x-set-cookie become response
// headers, failing makes every Unary call fail UNAVAILABLE, and a gate,
// while set, holds every Unary call until it is closed. calls counts the
// Unary calls that reached it.
type cacheUpstream struct {
	*Upstream
	calls   atomic.Int64
	failing atomic.Bool
	gate    atomic.Pointer[chan struct{}]
}

func startCacheEcho(t *testing.T) *cacheUpstream {
	t.Helper()
	cu := &cacheUpstream{}
	cu.Upstream = StartEcho(t, "up", grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		cu.calls.Add(1)
		md, _ := metadata.FromIncomingContext(ctx)
		for in, out := range map[string]string{"x-set-cache-control": "cache-control", "x-set-cookie": "set-cookie"} {
			if v := md.Get(in); len(v) > 0 {
				_ = grpc.SetHeader(ctx, metadata.Pairs(out, v[0]))
			}
		}
		if g := cu.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if cu.failing.Load() {
			return nil, grpcstatus.Error(codes.Unavailable, "the upstream fails")
		}
		return handler(ctx, req)
	}))
	return cu
}

const (
	aliceKey = "alice-key"
	bobKey   = "bob-key"
)

// cacheConfig routes the echo service to addr with cache (the route's
// cache section, YAML), API keys of two principals (anonymous calls
// allowed), and the REST and gRPC-Web doors forwarding the headers the
// upstream steers by.
func cacheConfig(addr, cache string) string {
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
    auth: {providers: [keys], allow_anonymous: true}
    cache: %s
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: alice}, {sha256: %q, principal: bob}]}
http:
  rest:
    forward_request_headers: [x-set-cache-control, x-set-cookie, x-tenant]
  grpc_web:
    forward_request_headers: [x-set-cache-control, x-set-cookie, x-tenant]
`, addr, cache, authint.HashKey(aliceKey), authint.HashKey(bobKey))
}

const echoCache = `{ttl: 1h, methods: [/edgegate.testing.v1.EchoService/Unary, /edgegate.testing.v1.EchoService/ServerStream], vary: [x-tenant], negative: [{code: NOT_FOUND, ttl: 1h}]}`

func cacheDoors(t *testing.T, gw *Gateway) []door {
	base := "http://" + gw.Addr
	return []door{
		grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))},
		webDoor{base: base},
		restDoor{base: base},
	}
}

// cacheState is how the cache answered, as the door's header says it:
// x-cache-status on native gRPC, Cache-Status (RFC 9211) on HTTP.
func cacheState(d door, r result) string {
	if d.name() == "grpc" {
		return r.header["x-cache-status"]
	}
	cs := r.header["cache-status"]
	switch {
	case cs == "":
		return ""
	case strings.Contains(cs, "; hit") && strings.Contains(cs, "detail=stale"):
		return "stale"
	case strings.Contains(cs, "; hit"):
		return "hit"
	case strings.Contains(cs, "collapsed"):
		return "coalesced"
	case strings.HasPrefix(cs, "edgegate; fwd="):
		return "miss"
	}
	return "unknown: " + cs
}

// call makes one Unary call through d and checks its code and how the
// cache answered; it returns the result.
func cacheCall(t *testing.T, d door, req *testingv1.EchoRequest, md map[string]string, code codes.Code, state string) result {
	t.Helper()
	r := d.unary(t, req, md, 0)
	if r.st.Code() != code {
		t.Fatalf("%s: code %v (%s), want %v", req.GetMessage(), r.st.Code(), r.st.Message(), code)
	}
	if got := cacheState(d, r); got != state {
		t.Fatalf("%s: cache %q (headers %v), want %q", req.GetMessage(), got, r.header, state)
	}
	return r
}

// wantCalls checks how many Unary calls reached the upstream.
func (cu *cacheUpstream) wantCalls(t *testing.T, n int64) {
	t.Helper()
	if got := cu.calls.Load(); got != n {
		t.Fatalf("upstream calls: %d, want %d", got, n)
	}
}

// TestCacheDoors runs the cache's cases through every door: a miss then
// hits counted at the upstream, two principals (and anonymous callers)
// never sharing answers, vary, no-store, private, no-cache and Set-Cookie
// answers never stored, negative caching of a listed code only, streams
// never cached, and the
// upstream's max-age expiring an answer, which is then fetched again.
func TestCacheDoors(t *testing.T) {
	cu := startCacheEcho(t)
	gw := StartGateway(t, cacheConfig(cu.Addr, echoCache))
	for _, d := range cacheDoors(t, gw) {
		t.Run(d.name(), func(t *testing.T) {
			msg := func(s string) *testingv1.EchoRequest { return &testingv1.EchoRequest{Message: d.name() + " " + s} }
			n := cu.calls.Load()

			r := cacheCall(t, d, msg("a"), nil, codes.OK, "miss")
			cu.wantCalls(t, n+1)
			for range 3 {
				h := cacheCall(t, d, msg("a"), nil, codes.OK, "hit")
				if h.resps[0].GetMessage() != r.resps[0].GetMessage() || h.resps[0].GetServer() != "up" {
					t.Fatalf("hit answered %v, the miss %v", h.resps[0], r.resps[0])
				}
			}
			cu.wantCalls(t, n+1)
			cacheCall(t, d, msg("b"), nil, codes.OK, "miss")
			cu.wantCalls(t, n+2)

			// Principals: alice, bob and anonymous callers each miss
			// once, then hit their own.
			alice, bob := map[string]string{"x-api-key": aliceKey}, map[string]string{"x-api-key": bobKey}
			cacheCall(t, d, msg("who"), alice, codes.OK, "miss")
			cacheCall(t, d, msg("who"), bob, codes.OK, "miss")
			cacheCall(t, d, msg("who"), nil, codes.OK, "miss")
			cu.wantCalls(t, n+5)
			cacheCall(t, d, msg("who"), alice, codes.OK, "hit")
			cacheCall(t, d, msg("who"), bob, codes.OK, "hit")
			cacheCall(t, d, msg("who"), nil, codes.OK, "hit")
			cu.wantCalls(t, n+5)

			// Vary: x-tenant is part of the key.
			cacheCall(t, d, msg("vary"), map[string]string{"x-tenant": "t1"}, codes.OK, "miss")
			cacheCall(t, d, msg("vary"), map[string]string{"x-tenant": "t2"}, codes.OK, "miss")
			cacheCall(t, d, msg("vary"), map[string]string{"x-tenant": "t1"}, codes.OK, "hit")
			cu.wantCalls(t, n+7)

			// Answers that must not be stored.
			for i, hdr := range []map[string]string{
				{"x-set-cache-control": "no-store"},
				{"x-set-cache-control": "private, max-age=60"},
				{"x-set-cache-control": "no-cache"},
				{"x-set-cookie": "session=s3cr3t"},
			} {
				before := cu.calls.Load()
				req := msg(fmt.Sprintf("uncacheable %d", i))
				cacheCall(t, d, req, hdr, codes.OK, "miss")
				cacheCall(t, d, req, hdr, codes.OK, "miss")
				cu.wantCalls(t, before+2)
			}

			// Negative caching: NOT_FOUND is listed, INTERNAL is not.
			fail := func(c codes.Code) *testingv1.EchoRequest {
				req := msg("fail " + c.String())
				req.FailWith = &status.Status{Code: int32(c), Message: "no such thing"}
				return req
			}
			before := cu.calls.Load()
			cacheCall(t, d, fail(codes.NotFound), nil, codes.NotFound, "miss")
			if r := cacheCall(t, d, fail(codes.NotFound), nil, codes.NotFound, "hit"); r.st.Message() != "no such thing" {
				t.Fatalf("cached error message %q", r.st.Message())
			}
			cacheCall(t, d, fail(codes.Internal), nil, codes.Internal, "miss")
			cacheCall(t, d, fail(codes.Internal), nil, codes.Internal, "miss")
			cu.wantCalls(t, before+3)

			// Streams are never cached, even when the route lists them.
			ended := cu.Count()
			for range 2 {
				if r := d.stream(t, msg("stream"), nil); r.st.Code() != codes.OK || len(r.resps) != 1 || cacheState(d, r) != "" {
					t.Fatalf("stream: %v %d %v", r.st.Err(), len(r.resps), r.header)
				}
			}
			if got := cu.Count(); got != ended+2 {
				t.Fatalf("upstream ended %d calls for 2 streams", got-ended)
			}

			// The upstream's max-age=1 wins over the route's ttl: the
			// answer expires and is fetched again.
			short := map[string]string{"x-set-cache-control": "max-age=1"}
			before = cu.calls.Load()
			cacheCall(t, d, msg("short"), short, codes.OK, "miss")
			Eventually(t, 10*time.Second, func() error {
				if s := cacheState(d, d.unary(t, msg("short"), short, 0)); s != "miss" {
					return fmt.Errorf("still %q", s)
				}
				return nil
			})
			if got := cu.calls.Load(); got != before+2 {
				t.Fatalf("upstream calls after expiry: %d, want %d", got, before+2)
			}
		})
	}

	// Metrics and the access log say how the cache answered.
	mfs := scrape(t, gw)
	for _, door := range []string{"grpc", "grpc-web", "rest"} {
		for _, res := range []string{"hit", "miss"} {
			if counter(t, mfs, "edgegate_cache_requests_total", map[string]string{"route": "echo", "door": door, "result": res}) == 0 {
				t.Errorf("no %s %s counted", door, res)
			}
		}
	}
	if sample(mfs, "edgegate_cache_bytes", nil).GetGauge().GetValue() <= 0 {
		t.Error("edgegate_cache_bytes is 0")
	}
	for _, state := range []string{"hit", "miss"} {
		gw.Logs.AccessLine(t, `"cache":"`+state+`"`)
	}
}

// TestCacheCoalescesMisses: 100 concurrent identical misses make one
// upstream call; the other 99 are served its answer.
func TestCacheCoalescesMisses(t *testing.T) {
	cu := startCacheEcho(t)
	gw := StartGateway(t, cacheConfig(cu.Addr, echoCache))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	gate := make(chan struct{})
	cu.gate.Store(&gate)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	states := make(chan string, n)
	for range n {
		wg.Go(func() {
			var hdr metadata.MD
			_, err := c.Unary(Ctx(t, 30*time.Second), &testingv1.EchoRequest{Message: "together"}, grpc.Header(&hdr))
			errs <- err
			states <- strings.Join(hdr.Get("x-cache-status"), ",")
		})
	}
	// Every call is in the gateway (one at the upstream, 99 waiting for
	// it) before the upstream answers.
	cu.WaitStarted(t, 0)
	Eventually(t, 20*time.Second, func() error {
		m := sample(scrape(t, gw), "edgegate_calls_in_flight", nil)
		if got := m.GetGauge().GetValue(); got < n {
			return fmt.Errorf("%v calls in flight", got)
		}
		return nil
	})
	close(gate)
	wg.Wait()
	close(errs)
	close(states)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]int{}
	for s := range states {
		count[s]++
	}
	cu.wantCalls(t, 1)
	if count["miss"] != 1 || count["coalesced"] != n-1 {
		t.Fatalf("cache states %v, want 1 miss and %d coalesced", count, n-1)
	}
	if got := counter(t, scrape(t, gw), "edgegate_cache_requests_total", map[string]string{"route": "echo", "result": "coalesced"}); got != n-1 {
		t.Fatalf("coalesced counted %v", got)
	}
}

// TestCacheStale: stale-while-revalidate serves a stale answer while one
// background call refreshes it; stale-if-error serves it while the
// upstream fails. On every door.
func TestCacheStale(t *testing.T) {
	short := map[string]string{"x-set-cache-control": "max-age=1"}
	t.Run("while-revalidate", func(t *testing.T) {
		cu := startCacheEcho(t)
		gw := StartGateway(t, cacheConfig(cu.Addr, `{ttl: 1h, methods: [/edgegate.testing.v1.EchoService/Unary], stale_while_revalidate: 1h}`))
		for _, d := range cacheDoors(t, gw) {
			req := &testingv1.EchoRequest{Message: d.name() + " swr"}
			before := cu.calls.Load()
			cacheCall(t, d, req, short, codes.OK, "miss")
			// Once max-age has passed: stale, with a refresh behind it.
			Eventually(t, 10*time.Second, func() error {
				if s := cacheState(d, d.unary(t, req, short, 0)); s != "stale" {
					return fmt.Errorf("%q", s)
				}
				return nil
			})
			Eventually(t, 10*time.Second, func() error {
				if got := cu.calls.Load(); got != before+2 {
					return fmt.Errorf("upstream calls %d, want %d (the refresh)", got, before+2)
				}
				return nil
			})
			// The refresh stored a fresh answer (unless it has already
			// gone stale on a busy machine).
			if s := cacheState(d, d.unary(t, req, short, 0)); s != "hit" && s != "stale" {
				t.Fatalf("%s: after the refresh %q", d.name(), s)
			}
		}
	})
	t.Run("if-error", func(t *testing.T) {
		cu := startCacheEcho(t)
		gw := StartGateway(t, cacheConfig(cu.Addr, `{ttl: 1h, methods: [/edgegate.testing.v1.EchoService/Unary], stale_if_error: 1h}`))
		for _, d := range cacheDoors(t, gw) {
			cu.failing.Store(false)
			req := &testingv1.EchoRequest{Message: d.name() + " sie"}
			r := cacheCall(t, d, req, short, codes.OK, "miss")
			cu.failing.Store(true)
			before := cu.calls.Load()
			Eventually(t, 10*time.Second, func() error {
				got := d.unary(t, req, short, 0)
				if s := cacheState(d, got); s != "stale" || got.st.Code() != codes.OK {
					return fmt.Errorf("%q %v", s, got.st.Code())
				}
				if got.resps[0].GetMessage() != r.resps[0].GetMessage() {
					return fmt.Errorf("stale answer %v", got.resps[0])
				}
				return nil
			})
			if cu.calls.Load() == before {
				t.Fatal("the stale answer was served without asking the upstream")
			}
			// A request never stored fails as the upstream does.
			cacheCall(t, d, &testingv1.EchoRequest{Message: d.name() + " never stored"}, nil, codes.Unavailable, "miss")
		}
	})
}

// TestCacheRedisShared: two gateways share answers through a real Redis;
// with Redis stopped mid-run no call fails (memory tier only, a log line,
// a metric).
func TestCacheRedisShared(t *testing.T) {
	rs := testredis.Start(t)
	cu := startCacheEcho(t)
	cfg := cacheConfig(cu.Addr, echoCache) + fmt.Sprintf("\nredis: {address: %q, timeout: 200ms}\ncache: {redis: true}\n", rs.Addr)
	gw1, gw2 := StartGateway(t, cfg), StartGateway(t, cfg)
	d1, d2 := cacheDoors(t, gw1), cacheDoors(t, gw2)
	for i := range d1 {
		req := &testingv1.EchoRequest{Message: d1[i].name() + " shared"}
		before := cu.calls.Load()
		cacheCall(t, d1[i], req, nil, codes.OK, "miss")
		cacheCall(t, d2[i], req, nil, codes.OK, "hit")
		cu.wantCalls(t, before+1)
	}

	// Calls on both gateways, on every door, while Redis is stopped.
	const rounds = 30
	var failed atomic.Int64
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for _, ds := range [][]door{d1, d2} {
		for _, d := range ds {
			wg.Go(func() {
				for i := range rounds {
					if i == rounds/3 {
						<-killed
					}
					r := d.unary(t, &testingv1.EchoRequest{Message: fmt.Sprintf("%s run %d", d.name(), i%10)}, nil, 0)
					if r.st.Code() != codes.OK {
						failed.Add(1)
						t.Errorf("%s call %d: %v", d.name(), i, r.st.Err())
					}
				}
			})
		}
	}
	rs.Kill()
	close(killed)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d calls failed with Redis down", failed.Load())
	}
	gw1.Logs.WaitContains(t, "cache redis tier unavailable")
	Eventually(t, 10*time.Second, func() error {
		if counter(t, scrape(t, gw1), "edgegate_cache_redis_errors_total", nil) == 0 {
			return fmt.Errorf("no redis error counted")
		}
		return nil
	})
}

// TestCachePurge: POST /cache/purge by route and by key prefix deletes
// stored answers; the next call misses.
func TestCachePurge(t *testing.T) {
	cu := startCacheEcho(t)
	gw := StartGateway(t, cacheConfig(cu.Addr, echoCache))
	d := cacheDoors(t, gw)[0]
	req := &testingv1.EchoRequest{Message: "purge me"}
	cacheCall(t, d, req, nil, codes.OK, "miss")
	cacheCall(t, d, req, nil, codes.OK, "hit")
	admin := "http://" + gw.AdminAddr().String()
	purge := func(query string) {
		t.Helper()
		r := doHTTP(t, nil, "POST", admin+"/cache/purge?"+query, "", nil)
		var out struct {
			Purged int `json:"purged"`
		}
		if err := json.Unmarshal(r.body, &out); r.code != http.StatusOK || err != nil || out.Purged != 1 {
			t.Fatalf("purge %s: %d %s", query, r.code, r.body)
		}
	}
	purge("route=echo")
	cacheCall(t, d, req, nil, codes.OK, "miss")
	cacheCall(t, d, req, nil, codes.OK, "hit")
	purge("prefix=" + url.QueryEscape("echo /edgegate.testing.v1.EchoService/Unary"))
	cacheCall(t, d, req, nil, codes.OK, "miss")
	if r := doHTTP(t, nil, "POST", admin+"/cache/purge", "", nil); r.code != http.StatusBadRequest {
		t.Fatalf("purge of nothing named: %d %s", r.code, r.body)
	}
}

// TestCacheReload: a reload that turns a route's cache off, or changes
// it, takes effect for new calls.
func TestCacheReload(t *testing.T) {
	cu := startCacheEcho(t)
	gw := StartGateway(t, cacheConfig(cu.Addr, echoCache))
	d := cacheDoors(t, gw)[0]
	req := &testingv1.EchoRequest{Message: "reload"}
	cacheCall(t, d, req, nil, codes.OK, "miss")
	cacheCall(t, d, req, nil, codes.OK, "hit")
	reload := func(cache string) {
		t.Helper()
		cfg, err := config.Load("next.yaml", []byte(cacheConfig(cu.Addr, cache)+"\nadmin: {address: 127.0.0.1:0}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	// Off: every call reaches the upstream, with no cache header.
	reload(`null`)
	before := cu.calls.Load()
	cacheCall(t, d, req, nil, codes.OK, "")
	cacheCall(t, d, req, nil, codes.OK, "")
	cu.wantCalls(t, before+2)
	// On again with other settings: new keys, a miss first.
	reload(`{ttl: 30s, methods: [/edgegate.testing.v1.EchoService/Unary], scope: shared}`)
	cacheCall(t, d, req, nil, codes.OK, "miss")
	cacheCall(t, d, req, map[string]string{"x-api-key": aliceKey}, codes.OK, "hit") // shared scope
	cu.wantCalls(t, before+3)
}

// TestCacheSchemaAndETag: a method marked NO_SIDE_EFFECTS (the catalog's
// GetBook) is cached without being listed, and one entry serves every
// door (the key is the request message); REST answers carry an ETag, and
// If-None-Match gets 304 with no body. A write (CreateBook) is not cached.
func TestCacheSchemaAndETag(t *testing.T) {
	var calls atomic.Int64
	catalog := StartServerOpts(t, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) },
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			return h(ctx, req)
		}))
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: catalog, endpoints: [%q]}
routes:
  - {name: catalog, match: {service: shop.catalog.v1.CatalogService}, cluster: catalog, cache: {ttl: 1h}}
`, catalog))
	book1 := "http://" + gw.Addr + "/v1/shelves/1/books/1"
	first := doHTTP(t, nil, "GET", book1, "", nil)
	etag := first.header.Get("Etag")
	if first.code != http.StatusOK || etag == "" || !strings.Contains(first.header.Get("Cache-Status"), "fwd=uri-miss; stored") {
		t.Fatalf("first GET: %d %v %s", first.code, first.header, first.body)
	}
	second := doHTTP(t, nil, "GET", book1, "", nil)
	if second.code != http.StatusOK || string(second.body) != string(first.body) || !strings.HasPrefix(second.header.Get("Cache-Status"), "edgegate; hit; ttl=") || second.header.Get("Etag") != etag {
		t.Fatalf("second GET: %d %v %s", second.code, second.header, second.body)
	}
	nm := doHTTP(t, nil, "GET", book1, "", map[string]string{"If-None-Match": etag})
	if nm.code != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("Etag") != etag {
		t.Fatalf("If-None-Match: %d %v %q", nm.code, nm.header, nm.body)
	}
	if other := doHTTP(t, nil, "GET", book1, "", map[string]string{"If-None-Match": `"other"`}); other.code != http.StatusOK || len(other.body) == 0 {
		t.Fatalf("If-None-Match of another tag: %d", other.code)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("upstream calls %d, want 1", got)
	}

	// Native gRPC and gRPC-Web: the same request message, the same entry.
	var hdr metadata.MD
	book, err := catalogv1.NewCatalogServiceClient(Dial(t, gw.Addr)).GetBook(Ctx(t, 5*time.Second), &catalogv1.GetBookRequest{Name: "shelves/1/books/1"}, grpc.Header(&hdr))
	if err != nil || book.GetName() != "shelves/1/books/1" {
		t.Fatal(book, err)
	}
	if got := hdr.Get("x-cache-status"); len(got) != 1 || got[0] != "hit" {
		t.Fatalf("gRPC GetBook: x-cache-status %v", got)
	}
	web := postWeb(t, nil, "http://"+gw.Addr+"/shop.catalog.v1.CatalogService/GetBook", "application/grpc-web+proto", webFrame(t, &catalogv1.GetBookRequest{Name: "shelves/1/books/1"}), nil)
	if web.grpcStatus() != "0" || len(web.messages) != 1 || !strings.HasPrefix(web.header.Get("Cache-Status"), "edgegate; hit") {
		t.Fatalf("gRPC-Web GetBook: %s %v", web.grpcStatus(), web.header)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("upstream calls %d, want 1", got)
	}

	// A write is never cached.
	for range 2 {
		r := doHTTP(t, nil, "POST", "http://"+gw.Addr+"/v1/shelves/1/books", `{"title":"Dune"}`, map[string]string{"Content-Type": "application/json"})
		if r.header.Get("Cache-Status") != "" || r.header.Get("Etag") != "" {
			t.Fatalf("CreateBook: %d %v", r.code, r.header)
		}
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("upstream calls %d, want 3", got)
	}
}

// TestCacheStatusHeadersOff: with x-cache-status and Cache-Status turned
// off the answers carry neither, and the cache still answers.
func TestCacheStatusHeadersOff(t *testing.T) {
	cu := startCacheEcho(t)
	cfg := strings.Replace(cacheConfig(cu.Addr, echoCache), "\nhttp:\n", "\nhttp:\n  disable_cache_status: true\n", 1) +
		"\ncache: {disable_status_header: true}\n"
	gw := StartGateway(t, cfg)
	for _, d := range cacheDoors(t, gw) {
		before := cu.calls.Load()
		req := &testingv1.EchoRequest{Message: d.name() + " quiet"}
		cacheCall(t, d, req, nil, codes.OK, "")
		cacheCall(t, d, req, nil, codes.OK, "")
		cu.wantCalls(t, before+1)
	}
	gw.Logs.AccessLine(t, `"cache":"hit"`)
}
