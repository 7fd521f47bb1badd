package test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/test/attack"
)

// The REST door under attack: refusals of server streams, bodies and
// content types a well-behaved client would not send, cross-site requests.

// restStream calls the echo service's server-streaming binding with body,
// as newline-delimited JSON or, with sse, as Server-Sent Events.
func restStream(t *testing.T, base string, sse bool, body string, hdr map[string]string) httpResult {
	t.Helper()
	h := map[string]string{}
	if sse {
		h["Accept"] = "text/event-stream"
	}
	for k, v := range hdr {
		h[k] = v
	}
	return doHTTP(t, nil, "POST", base+"/v1/echo:stream", body, h)
}

// wantNoneForwarded fails when up started a call from the since-th on
// (a value of Started taken before the calls under test) other than a
// marker call it sends through gw's native gRPC door after them; the
// gateway's calls to up share one connection, so a forwarded call would
// have started before the marker ended.
func wantNoneForwarded(t *testing.T, gw *Gateway, up *Upstream, since int64) {
	t.Helper()
	marker := "after-" + t.Name()
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(WithMarker(Ctx(t, 10*time.Second), marker), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("the marker call: %v", err)
	}
	if calls := up.StartedUntil(t, since, marker); len(calls) != 0 {
		t.Fatalf("the upstream saw %d refused calls: %v first", len(calls), calls[0].Method)
	}
}

// wantStreamRefused checks the answer of a server stream refused before
// its first message: as newline-delimited JSON, the mapped HTTP status
// and one {"error": google.rpc.Status} record; as Server-Sent Events, 200
// (so that EventSource reads it) and one "event: error" record carrying
// the status.
func wantStreamRefused(t *testing.T, r httpResult, sse bool, httpCode int, code codes.Code, msg string) {
	t.Helper()
	if !sse {
		if r.code != httpCode {
			t.Errorf("HTTP %d, want %d: %s", r.code, httpCode, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("content type %q, want JSON", ct)
		}
		lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
		if len(lines) != 1 {
			t.Fatalf("want one error record, got %q", r.body)
		}
		st := restStatus(t, mustJSONField(t, []byte(lines[0]), "error"))
		if st.Code() != code || !strings.Contains(st.Message(), msg) {
			t.Errorf("status %v %q, want %v containing %q", st.Code(), st.Message(), code, msg)
		}
		return
	}
	if r.code != http.StatusOK {
		t.Errorf("HTTP %d, want 200 with an error event: %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q, want text/event-stream", ct)
	}
	events := strings.Split(strings.TrimSpace(string(r.body)), "\n\n")
	if len(events) != 1 {
		t.Fatalf("want one error event, got %q", r.body)
	}
	data, ok := strings.CutPrefix(events[0], "event: error\ndata: ")
	if !ok {
		t.Fatalf("event %q, want an error event", events[0])
	}
	st := restStatus(t, []byte(data))
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("status %v %q, want %v containing %q", st.Code(), st.Message(), code, msg)
	}
}

// Every refusal of the chain before a server stream's first message
// reaches the REST client as itself: the mapped status and the policy's
// headers, not 500 "EOF"; over Server-Sent Events, an error event.
func TestRESTStreamRefusals(t *testing.T) {
	for _, sse := range []bool{false, true} {
		name := map[bool]string{false: "ndjson", true: "sse"}[sse]
		t.Run(name+"/auth", func(t *testing.T) {
			je := newJWTEnv(t)
			up := StartEcho(t, "up")
			gw := StartGateway(t, authConfig(up.Addr, je.jwksFile, authint.HashKey("k"), `{providers: [users, keys]}`))
			r := restStream(t, "http://"+gw.Addr, sse, `{"message":"m"}`, nil)
			wantStreamRefused(t, r, sse, http.StatusUnauthorized, codes.Unauthenticated, "authentication required")
			if got := r.header.Values("Www-Authenticate"); len(got) != 1 || got[0] != `Bearer realm="edgegate", APIKey realm="edgegate", header="x-api-key"` {
				t.Errorf("WWW-Authenticate %q, want the providers' challenge once", got)
			}
		})
		t.Run(name+"/rate limit", func(t *testing.T) {
			up := StartEcho(t, "up")
			gw := StartGateway(t, limitedConfig(up.Addr, "  - {name: api, key: [{header: x-tenant}], limits: [{requests: 1, period: 1h}]}\n"))
			base := "http://" + gw.Addr
			tenant := map[string]string{"X-Tenant": "t"}
			if r := restStream(t, base, sse, `{"message":"m"}`, tenant); r.code != http.StatusOK {
				t.Fatalf("the call within the limit: %d %s", r.code, r.body)
			}
			r := restStream(t, base, sse, `{"message":"m"}`, tenant)
			wantStreamRefused(t, r, sse, http.StatusTooManyRequests, codes.ResourceExhausted, `rate limit "api" exceeded`)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("no Retry-After: %v", r.header)
			}
		})
		t.Run(name+"/ip filter", func(t *testing.T) {
			up := StartEcho(t, "up")
			gw := StartGateway(t, strings.Replace(doorsConfig(up.Addr), "    cluster: echo\n", "    cluster: echo\n    ip_filter: {block: [127.0.0.0/8]}\n", 1))
			wantStreamRefused(t, restStream(t, "http://"+gw.Addr, sse, `{"message":"m"}`, nil), sse, http.StatusForbidden, codes.PermissionDenied, "")
		})
		t.Run(name+"/concurrency limit", func(t *testing.T) {
			up := StartEcho(t, "up")
			gw := StartGateway(t, strings.Replace(doorsConfig(up.Addr), "    cluster: echo\n", "    cluster: echo\n    max_concurrent_calls: 1\n", 1))
			ctx, cancel := context.WithCancel(Ctx(t, 10*time.Second))
			var wg sync.WaitGroup
			wg.Go(func() {
				// Held at the upstream until cancelled.
				_, _ = testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(ctx, &testingv1.EchoRequest{Delay: durationpb.New(time.Minute)})
			})
			up.WaitStarted(t, 1)
			r := restStream(t, "http://"+gw.Addr, sse, `{"message":"m"}`, nil)
			cancel()
			wg.Wait()
			wantStreamRefused(t, r, sse, http.StatusServiceUnavailable, codes.ResourceExhausted, "calls in flight")
		})
		t.Run(name+"/upstream down", func(t *testing.T) {
			gw := StartGateway(t, doorsConfig(FreeAddr(t)))
			wantStreamRefused(t, restStream(t, "http://"+gw.Addr, sse, `{"message":"m"}`, nil), sse, http.StatusServiceUnavailable, codes.Unavailable, `upstream cluster "echo" is unavailable`)
		})
		t.Run(name+"/bad request body", func(t *testing.T) {
			// Refused by the door, before the call.
			up := StartEcho(t, "up")
			gw := StartGateway(t, doorsConfig(up.Addr))
			wantStreamRefused(t, restStream(t, "http://"+gw.Addr, sse, `{"repeat":"x"}`, nil), sse, http.StatusBadRequest, codes.InvalidArgument, "invalid value for int32 field repeat")
		})
		t.Run(name+"/upstream status", func(t *testing.T) {
			// The echo service sends a message before any failure; the
			// shop's order tracking fails first for an unknown order.
			gw, _ := shopGateway(t, "")
			hdr := map[string]string{}
			if sse {
				hdr["Accept"] = "text/event-stream"
			}
			r := doHTTP(t, nil, "GET", "http://"+gw.Addr+"/v1/orders/o-nope:track", "", hdr)
			wantStreamRefused(t, r, sse, http.StatusNotFound, codes.NotFound, "o-nope")
		})
	}
}

// A 401 carries one WWW-Authenticate: the auth policy's challenge, not
// also the status message as grpc-gateway's error handler adds it.
func TestRESTUnauthorizedHasOneChallenge(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	gw := StartGateway(t, authConfig(up.Addr, je.jwksFile, authint.HashKey("k"), `{providers: [users, keys]}`))
	for _, c := range []struct {
		name, challenge string
		hdr             map[string]string
	}{
		{"no credentials", `Bearer realm="edgegate", APIKey realm="edgegate", header="x-api-key"`, nil},
		{"a bad token", `Bearer realm="edgegate", error="invalid_token", APIKey realm="edgegate", header="x-api-key"`, map[string]string{"Authorization": "Bearer nope"}},
	} {
		r := doHTTP(t, nil, "POST", "http://"+gw.Addr+"/v1/echo:unary", `{"message":"m"}`, c.hdr)
		wantStatusJSON(t, r, http.StatusUnauthorized, codes.Unauthenticated, "edgegate: ")
		if got := r.header.Values("Www-Authenticate"); len(got) != 1 || got[0] != c.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want exactly [%q]", c.name, got, c.challenge)
		}
	}
}

// callLog records every unary call an upstream served, in order.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	l.add(info.FullMethod + " " + prototext.Format(req.(proto.Message)))
	return handler(ctx, req)
}

func (l *callLog) interceptStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	l.add(info.FullMethod)
	return handler(srv, ss)
}

func (l *callLog) add(call string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call)
}

// since returns the calls from the n-th on.
func (l *callLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[n:])
}

func (l *callLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// loggedShop starts the shop's catalog, orders and users services, which
// log every call they serve in one callLog, and a gateway in front of
// them.
// A negative check ends with a marker call through the gateway: a call
// the gateway forwarded it served before answering it, so before the
// marker, which is then not the only call logged since.
func loggedShop(t *testing.T, extra string) (*Gateway, *callLog) {
	t.Helper()
	log := &callLog{}
	catalog := StartServerOpts(t, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) }, grpc.UnaryInterceptor(log.intercept))
	orders := StartServerOpts(t, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, shop.NewOrders()) }, grpc.UnaryInterceptor(log.intercept), grpc.StreamInterceptor(log.interceptStream))
	users := StartServerOpts(t, func(s *grpc.Server) { usersv1.RegisterUsersServiceServer(s, shop.NewUsers()) }, grpc.UnaryInterceptor(log.intercept))
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: catalog, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
  - {name: users, endpoints: [%q]}
routes:
  - {match: {service: shop.catalog.v1.CatalogService}, cluster: catalog}
  - {match: {service: shop.orders.v1.OrdersService}, cluster: orders}
  - {match: {service: shop.users.v1.UsersService}, cluster: users}
`, catalog, orders, users)+extra)
	return gw, log
}

// wantOnlyMarker sends the marker call (GET /v1/users/marker, answered
// 404 by the users service) and fails unless it is the one call logged
// from the since-th.
func wantOnlyMarker(t *testing.T, gw *Gateway, log *callLog, since int) {
	t.Helper()
	wantStatusJSON(t, doHTTP(t, nil, "GET", "http://"+gw.Addr+"/v1/users/marker", "", nil), http.StatusNotFound, codes.NotFound, "marker")
	want := `/shop.users.v1.UsersService/GetUser user_id: "marker"` // as strings.Fields sees it: prototext varies its spaces
	if got := log.since(since); len(got) != 1 || strings.Join(strings.Fields(got[0]), " ") != want {
		t.Fatalf("calls served since the refused ones: %q, want the marker's alone", got)
	}
}

// A string field filled with bytes that are not UTF-8 (from the path, the
// query or the body) is INVALID_ARGUMENT, 400, naming the field, and never
// forwarded; before, proto.Marshal failed in the in-process connection
// and the client got 500.
func TestRESTInvalidUTF8IsInvalidArgument(t *testing.T) {
	gw, log := loggedShop(t, "")
	base := "http://" + gw.Addr
	since := log.len()
	for _, c := range []struct {
		name, method, path, body, msg string
	}{
		{"path variable", "GET", "/v1/users/%ff%fe", "", "string field user_id holds invalid UTF-8"},
		{"nested query parameter", "GET", "/v1/books?filter.author=%C3", "", "string field filter.author holds invalid UTF-8"},
		{"repeated query parameter", "GET", "/v1/books?tags=ok&tags=%ff", "", "string field tags[1] holds invalid UTF-8"},
		{"path variable beside a body", "PUT", "/v1/users/%ff", `{"display_name":"x"}`, "string field user.user_id holds invalid UTF-8"},
		{"body", "PUT", "/v1/users/ada", "{\"display_name\":\"\xff\"}", "invalid UTF-8"},
		{"body, a lone surrogate escaped", "PUT", "/v1/users/ada", `{"display_name":"\udcff"}`, "proto: "},
	} {
		wantStatusJSON(t, doHTTP(t, nil, c.method, base+c.path, c.body, nil), http.StatusBadRequest, codes.InvalidArgument, c.msg)
	}
	// A server stream's: refused before the call starts.
	for _, sse := range []bool{false, true} {
		hdr := map[string]string{}
		if sse {
			hdr["Accept"] = "text/event-stream"
		}
		r := doHTTP(t, nil, "GET", base+"/v1/orders/%ff:track", "", hdr)
		wantStreamRefused(t, r, sse, http.StatusBadRequest, codes.InvalidArgument, "string field order_id holds invalid UTF-8")
	}
	wantOnlyMarker(t, gw, log, since)
}

// A JSON body holds one value: trailing garbage or a second value is 400
// with protojson's message, and nothing is forwarded (before, what
// followed the first value was dropped and the call forwarded).
func TestRESTBodyHoldsOneJSONValue(t *testing.T) {
	gw, log := loggedShop(t, "http:\n  rest:\n    discard_unknown_fields: true\n")
	base := "http://" + gw.Addr
	since := log.len()
	for _, c := range []struct{ body, msg string }{
		{`{"display_name":"a"} xyz`, "syntax error (line 1:22): invalid value xyz"},
		{`{"display_name":"a"}{"display_name":"b"}`, "syntax error (line 1:21): unexpected token {"},
		{`{"a":1}{"b":2}`, "unexpected token {"},
		{`{"display_name":"a"},`, "unexpected token ,"},
		{`{"display_name":"a"}]`, "unexpected token ]"},
	} {
		wantStatusJSON(t, doHTTP(t, nil, "PUT", base+"/v1/users/ada", c.body, nil), http.StatusBadRequest, codes.InvalidArgument, c.msg)
	}
	wantOnlyMarker(t, gw, log, since)
	// The body of a server stream's binding, and of another unary one.
	up := StartEcho(t, "up")
	egw := StartGateway(t, doorsConfig(up.Addr))
	wantStreamRefused(t, doHTTP(t, nil, "POST", "http://"+egw.Addr+"/v1/echo:stream", `{"message":"a"} xyz`, nil), false, http.StatusBadRequest, codes.InvalidArgument, "invalid value xyz")
	wantStatusJSON(t, doHTTP(t, nil, "POST", "http://"+egw.Addr+"/v1/echo:unary", `{"message":"a"}{"message":"b"}`, nil), http.StatusBadRequest, codes.InvalidArgument, "unexpected token {")
	wantNoneForwarded(t, egw, up, 0)
	// White space after the value is fine.
	if r := doHTTP(t, nil, "PUT", base+"/v1/users/ada", "{\"display_name\":\"a\"} \r\n\t", nil); r.code != http.StatusOK {
		t.Fatalf("a body with trailing white space: %d %s", r.code, r.body)
	}
}

// send is one HTTP request with exactly the headers in hdr (no
// Content-Type unless there).
func send(t *testing.T, method, url, body string, hdr map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{resp.StatusCode, resp.Header, b}
}

// crossSite are the headers a browser sends with a cross-site fetch in
// no-cors mode, which it sends without a preflight: a POST with a
// text/plain body (a CORS-safelisted content type).
func crossSite(origin string) map[string]string {
	return map[string]string{
		"Origin":         origin,
		"Sec-Fetch-Site": "cross-site",
		"Sec-Fetch-Mode": "no-cors",
		"Sec-Fetch-Dest": "empty",
		"Content-Type":   "text/plain;charset=UTF-8",
	}
}

const order = `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":1}]}`

// A REST request with a body needs a JSON content type, else 415 (with
// Accept: application/json) and nothing is forwarded: a cross-site page
// can send text/plain, form and multipart bodies without a preflight, and
// the door parsed them as JSON, so any site could create an order with
// the visitor's cookies.
func TestRESTBodyMustBeJSON(t *testing.T) {
	gw, log := loggedShop(t, "")
	base := "http://" + gw.Addr
	since := log.len()
	for _, c := range []struct {
		name string
		hdr  map[string]string
		got  string
	}{
		{"a cross-site text/plain POST", crossSite("https://evil.example"), `"text/plain;charset=UTF-8"`},
		{"a form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `"application/x-www-form-urlencoded"`},
		{"multipart", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, `"multipart/form-data; boundary=x"`},
		{"no content type", nil, "none"},
		{"not a media type", map[string]string{"Content-Type": "json"}, `"json"`},
		{"JSON's name in a parameter", map[string]string{"Content-Type": "text/plain; x=application/json"}, `"text/plain; x=application/json"`},
	} {
		r := send(t, "POST", base+"/v1/orders", order, c.hdr)
		wantStatusJSON(t, r, http.StatusUnsupportedMediaType, codes.InvalidArgument, "edgegate: a REST request body must be JSON (Content-Type: application/json); its content type is "+c.got)
		if a := r.header.Get("Accept"); a != "application/json" {
			t.Errorf("%s: Accept %q, want application/json", c.name, a)
		}
	}
	// Two content types, one of them JSON: refused too.
	req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), "POST", base+"/v1/orders", strings.NewReader(order))
	req.Header["Content-Type"] = []string{"application/json", "text/plain"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("two content types: HTTP %d, want 415", resp.StatusCode)
	}
	wantOnlyMarker(t, gw, log, since)

	// JSON, with parameters or as a +json type; no content type without a
	// body.
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"} {
		if r := send(t, "POST", base+"/v1/orders", order, map[string]string{"Content-Type": ct}); r.code != http.StatusOK {
			t.Errorf("%s: HTTP %d %s", ct, r.code, r.body)
		}
	}
	for _, hdr := range []map[string]string{nil, {"Content-Type": "text/plain"}} {
		if r := send(t, "GET", base+"/v1/shelves/1/books/1", "", hdr); r.code != http.StatusOK {
			t.Errorf("GET without a body, content type %q: HTTP %d %s", hdr["Content-Type"], r.code, r.body)
		}
	}
}

// corsConfig exposes the echo upstream with CORS for one origin; extra
// is appended to its http.cors.
func corsConfig(upstream, extra string) string {
	return EchoConfig(upstream) + `
http:
  cors:
    allowed_origins: ["https://app.example"]
` + extra
}

// With http.cors, a request whose Origin is neither allowed nor its own
// is refused before it is forwarded, on the REST door (403
// PERMISSION_DENIED) and the gRPC-Web door (a trailers-only
// PERMISSION_DENIED): before, it was forwarded and only its answer was
// kept from the page, so a cross-site page could act for its visitor.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, corsConfig(up.Addr, ""))
	base := "http://" + gw.Addr
	const msg = `edgegate: origin "https://evil.example" is not allowed`
	for _, c := range []struct {
		name string
		hdr  map[string]string
		msg  string
	}{
		{"a cross-site text/plain POST", crossSite("https://evil.example"), msg},
		{"a cross-site JSON POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, msg},
		{"an allowed origin's host on another scheme", map[string]string{"Origin": "http://app.example", "Content-Type": "application/json"}, `origin "http://app.example" is not allowed`},
		{"the gateway's host on another scheme", map[string]string{"Origin": "https://" + gw.Addr, "Content-Type": "application/json"}, "is not allowed"},
		{"an opaque origin", map[string]string{"Origin": "null", "Content-Type": "application/json"}, `origin "null" is not allowed`},
	} {
		r := send(t, "POST", base+"/v1/echo:unary", `{"message":"x"}`, c.hdr)
		wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, c.msg)
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", c.name, r.header.Get("Access-Control-Allow-Origin"))
		}
	}
	r := restStream(t, base, true, `{"message":"x"}`, map[string]string{"Origin": "https://evil.example"})
	wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, msg)
	f := webFrame(t, &testingv1.EchoRequest{Message: "x"})
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
		body := f
		if ct == "application/grpc-web-text" {
			body = []byte(base64.StdEncoding.EncodeToString(f))
		}
		a := postWeb(t, nil, base+"/edgegate.testing.v1.EchoService/Unary", ct, body, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
		if a.grpcStatus() != "7" || !strings.Contains(a.grpcMessage(), "is not allowed") || len(a.messages) != 0 {
			t.Errorf("gRPC-Web %s: HTTP %d, status %q %q, %d messages; want a trailers-only PERMISSION_DENIED", ct, a.code, a.grpcStatus(), a.grpcMessage(), len(a.messages))
		}
	}
	wantNoneForwarded(t, gw, up, 0)

	// Served: an allowed origin (with CORS headers), the gateway's own
	// origin (a browser sends Origin with a same-origin POST), and no
	// Origin at all.
	for _, hdr := range []map[string]string{
		{"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://" + gw.Addr, "Sec-Fetch-Site": "same-origin"},
		{"Origin": "HTTP://" + strings.ToUpper(gw.Addr)},
		nil,
	} {
		hdr = maps.Clone(hdr)
		if hdr == nil {
			hdr = map[string]string{}
		}
		hdr["Content-Type"] = "application/json"
		if r := send(t, "POST", base+"/v1/echo:unary", `{"message":"x"}`, hdr); r.code != http.StatusOK {
			t.Errorf("Origin %q: HTTP %d %s", hdr["Origin"], r.code, r.body)
		}
		up.NextCall(t)
		a := postWeb(t, nil, base+"/edgegate.testing.v1.EchoService/Unary", "application/grpc-web+proto", f, map[string]string{"Origin": hdr["Origin"]})
		if a.grpcStatus() != "0" {
			t.Errorf("gRPC-Web, Origin %q: status %q %q", hdr["Origin"], a.grpcStatus(), a.grpcMessage())
		}
		up.NextCall(t)
	}
}

// http.cors.serve_other_origins serves requests from other origins, as
// before: without CORS headers, so that the page cannot read the answer.
func TestServeOtherOrigins(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, corsConfig(up.Addr, "    serve_other_origins: true\n"))
	r := send(t, "POST", "http://"+gw.Addr+"/v1/echo:unary", `{"message":"x"}`, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"})
	if r.code != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("HTTP %d, Access-Control-Allow-Origin %q: %s", r.code, r.header.Get("Access-Control-Allow-Origin"), r.body)
	}
	up.NextCall(t)
	// Its preflight is still refused, and a text/plain body is still not
	// JSON.
	since := up.Started()
	req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), "OPTIONS", "http://"+gw.Addr+"/v1/echo:unary", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("preflight: HTTP %d, want 403", resp.StatusCode)
	}
	wantStatusJSON(t, send(t, "POST", "http://"+gw.Addr+"/v1/echo:unary", `{"message":"x"}`, crossSite("https://evil.example")), http.StatusUnsupportedMediaType, codes.InvalidArgument, "must be JSON")
	wantNoneForwarded(t, gw, up, since)
}

// rawHTTP1Answer is an answer read from a raw HTTP/1.1 connection.
type rawHTTP1Answer struct {
	httpResult
	close bool // the answer closes the connection
}

// rawExchange writes head on a new HTTP/1.1 connection to addr and reads
// one answer; the connection and its reader are returned for what
// follows.
func rawExchange(t *testing.T, addr, head string) (rawHTTP1Answer, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := attack.Raw(addr, head)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	br := bufio.NewReader(c)
	return readAnswer(t, c, br), c, br
}

func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader) rawHTTP1Answer {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(Patience))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawHTTP1Answer{httpResult{resp.StatusCode, resp.Header, b}, resp.Close}
}

// A request with both Content-Length and Transfer-Encoding: chunked is
// refused with 400 before anything is forwarded, and the connection is
// closed (RFC 9112 §6.1). net/http accepts such a request: it reads the
// chunked body and deletes both headers, so the handler cannot see them,
// and keeps the connection, so a proxy in front that framed the request by
// its Content-Length and the gateway disagree on where the next request
// starts. The front door follows the framing of HTTP/1 connections in the
// bytes net/http reads.
func TestHTTP1ContentLengthWithChunkedIsRefused(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr))
	body := `{"message":"x"}`
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	for _, c := range []struct{ name, head string }{
		{"Content-Length first", "POST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(chunked)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding first, other cases", "POST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\ntransfer-encoding: Chunked\r\ncontent-length: 4\r\n\r\n" + chunked},
		// What a proxy that framed it by Content-Length (4 bytes: "0\r\n\r")
		// would take for one request, and the gateway for two.
		{"a smuggled request", "POST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body},
	} {
		a, conn, _ := rawExchange(t, gw.Addr, c.head)
		wantStatusJSON(t, a.httpResult, http.StatusBadRequest, codes.InvalidArgument, "a request with both Content-Length and Transfer-Encoding is refused")
		if !a.close {
			t.Errorf("%s: the answer does not close the connection: %v", c.name, a.header)
		}
		if !attack.Closed(conn, Patience) {
			t.Errorf("%s: the connection stayed open", c.name)
		}
	}
	// gRPC-Web over HTTP/1.1 too: a trailers-only INVALID_ARGUMENT.
	frame := webFrame(t, &testingv1.EchoRequest{Message: "x"})
	webChunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(frame), frame)
	a, _, _ := rawExchange(t, gw.Addr, "POST /edgegate.testing.v1.EchoService/Unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"+webChunked)
	if a.header.Get("Grpc-Status") != "3" || !strings.Contains(a.header.Get("Grpc-Message"), "Content-Length") || !a.close {
		t.Errorf("gRPC-Web: HTTP %d, grpc-status %q %q, close %v", a.code, a.header.Get("Grpc-Status"), a.header.Get("Grpc-Message"), a.close)
	}
	wantNoneForwarded(t, gw, up, 0)

	// A chunked request alone, then another on the same connection: both
	// served.
	a, conn, br := rawExchange(t, gw.Addr, "POST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked)
	if a.code != http.StatusOK || a.close {
		t.Fatalf("a chunked request: HTTP %d, close %v: %s", a.code, a.close, a.body)
	}
	if _, err := io.WriteString(conn, "POST /v1/echo:unary HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if a := readAnswer(t, conn, br); a.code != http.StatusOK {
		t.Fatalf("the next request on the connection: HTTP %d %s", a.code, a.body)
	}
}
