package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/examples/shop"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
)

// gatedEcho is the echo service whose server stream of message "gated"
// sends each message after the first only once the page has acknowledged
// the one before (release, fed by the origin's /ack), and whose unary
// call of message "hold" waits for unhold: a gateway that buffered a
// stream to its end would never deliver the first message, and the
// stream would fail ("no ack").
type gatedEcho struct {
	*echo.Server
	release chan struct{} // one per acknowledged message
	holding chan struct{} // a "hold" call started
	unhold  chan struct{} // closed: "hold" calls end
	started atomic.Int64  // calls started
}

func newGatedEcho() *gatedEcho {
	g := &gatedEcho{release: make(chan struct{}, 64), holding: make(chan struct{}, 8), unhold: make(chan struct{})}
	g.Server = &echo.Server{Name: "browser", Start: func(context.Context, string) { g.started.Add(1) }}
	return g
}

func (g *gatedEcho) Unary(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if req.GetMessage() == "hold" {
		g.holding <- struct{}{}
		select {
		case <-g.unhold:
		case <-ctx.Done():
		}
	}
	return g.Server.Unary(ctx, req)
}

func (g *gatedEcho) ServerStream(req *testingv1.EchoRequest, stream grpc.ServerStreamingServer[testingv1.EchoResponse]) error {
	if req.GetMessage() != "gated" {
		return g.Server.ServerStream(req, stream)
	}
	g.started.Add(1)
	for i := range max(int(req.GetRepeat()), 1) {
		if i > 0 {
			select {
			case <-g.release:
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-time.After(Patience):
				return status.Errorf(codes.DeadlineExceeded, "no ack: the page did not get message %d", i-1)
			}
		}
		if err := stream.Send(&testingv1.EchoResponse{Message: "gated", Index: int32(i), Server: "browser"}); err != nil {
			return err
		}
	}
	return nil
}

// browserEnv is a gated echo upstream, the shop's orders, a test page on
// an allowed origin and one on a denied origin, and a browser.
type browserEnv struct {
	up              *gatedEcho
	orders, echo    string // upstream addresses
	allowed, denied *Origin
	b               *Browser
}

func startBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	needBrowser(t)
	e := &browserEnv{up: newGatedEcho()}
	e.echo = StartServer(t, func(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, e.up) })
	orders := shop.NewOrders()
	orders.TrackInterval = time.Millisecond
	e.orders = StartServer(t, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, orders) })
	descs := descriptorSet(t, testingv1.File_edgegate_testing_v1_echo_proto, ordersv1.File_shop_orders_v1_orders_proto, errdetails.File_google_rpc_error_details_proto)
	ack := map[string]http.HandlerFunc{"GET /ack": func(w http.ResponseWriter, _ *http.Request) {
		select {
		case e.up.release <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}}
	e.allowed = StartOrigin(t, descs, ack)
	e.denied = StartOrigin(t, descs, nil)
	e.b = StartBrowser(t)
	return e
}

// gateway starts a gateway routing echo and orders, with CORS for the
// allowed origin; extra is added under http: (indented two spaces), top
// is added at the top level.
func (e *browserEnv) gateway(t *testing.T, extra, top string) string {
	t.Helper()
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: echo, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
routes:
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
  - {name: orders, match: {service: shop.orders.v1.OrdersService}, cluster: orders}
http:
  cors:
    allowed_origins: [%q]
    allowed_headers: [x-custom]
    exposed_headers: [echo-x-custom]
  rest:
    forward_request_headers: [x-custom]
    expose_response_headers: [echo-x-custom]
  grpc_web:
    forward_request_headers: [x-custom]
%s
%s`, e.echo, e.orders, e.allowed.URL, extra, top))
	return "http://" + gw.Addr
}

// pageError is a ConnectError as the page gives it.
type pageError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"details"`
	Metadata map[string]string `json:"metadata"`
}

type unaryResult struct {
	Message  map[string]any    `json:"message"`
	Headers  map[string]string `json:"headers"`
	Trailers map[string]string `json:"trailers"`
	Error    *pageError        `json:"error"`
}

type streamResult struct {
	Messages []map[string]any `json:"messages"`
	Arrivals []float64        `json:"arrivals"`
	Error    *pageError       `json:"error"`
}

type restResult struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	JSON       map[string]any    `json:"json"`
	Text       string            `json:"text"`
	FetchError string            `json:"fetchError"`
}

type sseResult struct {
	Messages  []map[string]any `json:"messages"`
	ErrorData map[string]any   `json:"errorData"`
	BareError bool             `json:"bareError"`
}

func TestBrowserGRPCWeb(t *testing.T) {
	e := startBrowserEnv(t)
	base := e.gateway(t, "", "")
	e.b.Goto(t, e.allowed.URL)
	for _, mode := range []struct {
		name string
		text bool
	}{{"binary", false}, {"text", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Run("unary with custom headers and trailers", func(t *testing.T) {
				var r unaryResult
				e.b.Call(t, "unary", map[string]any{"base": base, "text": mode.text, "json": map[string]any{"message": "hi " + mode.name, "echoMetadata": true}, "headers": map[string]string{"x-custom": "c1"}}, &r)
				if r.Error != nil || r.Message["message"] != "hi "+mode.name || r.Message["server"] != "browser" {
					t.Fatalf("%+v %+v", r.Message, r.Error)
				}
				if r.Headers["echo-x-custom"] != "c1" {
					t.Errorf("the page reads headers %v, want echo-x-custom: c1", r.Headers)
				}
				if r.Trailers["echo-trailer-x-custom"] != "c1" {
					t.Errorf("the page reads trailers %v, want echo-trailer-x-custom: c1", r.Trailers)
				}
			})
			t.Run("server stream arrives message by message", func(t *testing.T) {
				var r streamResult
				e.b.Call(t, "stream", map[string]any{"base": base, "text": mode.text, "json": map[string]any{"message": "gated", "repeat": 4}, "ack": e.allowed.URL + "/ack"}, &r)
				if r.Error != nil || len(r.Messages) != 4 {
					t.Fatalf("%d messages, error %+v", len(r.Messages), r.Error)
				}
				for i, m := range r.Messages {
					if idx, _ := m["index"].(float64); int(idx) != i {
						t.Errorf("message %d: %v", i, m)
					}
					if i > 0 && !(r.Arrivals[i] > r.Arrivals[i-1]) {
						t.Errorf("message %d arrived at %v, not after message %d (%v)", i, r.Arrivals[i], i-1, r.Arrivals[i-1])
					}
				}
			})
			t.Run("error with details", func(t *testing.T) {
				var r unaryResult
				e.b.Call(t, "unary", map[string]any{"base": base, "text": mode.text, "json": map[string]any{"failWith": map[string]any{
					"code": 3, "message": "bad name ✗",
					"details": []any{map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": []any{map[string]any{"field": "name", "description": "too short"}}}},
				}}}, &r)
				if r.Error == nil || r.Error.Code != int(codes.InvalidArgument) || r.Error.Message != "bad name ✗" {
					t.Fatalf("error %+v, want INVALID_ARGUMENT %q", r.Error, "bad name ✗")
				}
				if len(r.Error.Details) != 1 || r.Error.Details[0].Type != "google.rpc.BadRequest" || !strings.Contains(string(r.Error.Details[0].Value), "too short") {
					t.Errorf("details %+v", r.Error.Details)
				}
			})
			t.Run("unrouted method", func(t *testing.T) {
				var r unaryResult
				e.b.Call(t, "unary", map[string]any{"base": base, "text": mode.text, "service": "shop.orders.v1.OrdersService", "method": "GetOrder", "json": map[string]any{"orderId": "o-nope"}}, &r)
				if r.Error == nil || r.Error.Code != int(codes.NotFound) {
					t.Fatalf("error %+v, want NOT_FOUND from the orders service", r.Error)
				}
			})
		})
	}
}

func TestBrowserREST(t *testing.T) {
	e := startBrowserEnv(t)
	base := e.gateway(t, "", "")
	e.b.Goto(t, e.allowed.URL)
	t.Run("unary with fetch, preflight and exposed headers", func(t *testing.T) {
		var r restResult
		e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "rest", "echoMetadata": true}, "headers": map[string]string{"x-custom": "c1"}}, &r)
		if r.Status != 200 || r.JSON["message"] != "rest" {
			t.Fatalf("%+v", r)
		}
		if r.Headers["echo-x-custom"] != "c1" {
			t.Errorf("the page reads headers %v, want echo-x-custom: c1", r.Headers)
		}
	})
	t.Run("error as google.rpc.Status", func(t *testing.T) {
		var r restResult
		e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"failWith": map[string]any{"code": 5, "message": "gone"}}}, &r)
		if r.Status != 404 || r.JSON["code"] != float64(5) || r.JSON["message"] != "gone" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("gateway's own 404", func(t *testing.T) {
		var r restResult
		e.b.Call(t, "rest", map[string]any{"url": base + "/v1/nothing/here"}, &r)
		if r.Status != 404 || r.JSON["code"] != float64(5) {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("server stream as NDJSON", func(t *testing.T) {
		var r restResult
		e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:stream", "method": "POST", "body": map[string]any{"message": "nd", "repeat": 3}}, &r)
		if r.Status != 200 || strings.Count(r.Text, `"result"`) != 3 {
			t.Fatalf("%+v", r)
		}
	})
	order := doHTTP(t, nil, "POST", base+"/v1/orders", `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":1}]}`, nil)
	id, _ := jsonField(t, order.body, "orderId").(string)
	if id == "" {
		t.Fatalf("create order: %d %s", order.code, order.body)
	}
	t.Run("server-sent events with EventSource", func(t *testing.T) {
		var r sseResult
		e.b.Call(t, "sse", map[string]any{"url": base + "/v1/orders/" + id + ":track"}, &r)
		var states []string
		for _, m := range r.Messages {
			states = append(states, fmt.Sprint(m["state"]))
		}
		if strings.Join(states, ",") != "STATE_PLACED,STATE_PACKED,STATE_SHIPPED,STATE_DELIVERED" || r.ErrorData != nil {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("EventSource reads a failure before the first message", func(t *testing.T) {
		var r sseResult
		e.b.Call(t, "sse", map[string]any{"url": base + "/v1/orders/o-nope:track"}, &r)
		if r.ErrorData == nil || r.ErrorData["code"] != float64(codes.NotFound) {
			t.Fatalf("%+v, want an error event with NOT_FOUND", r)
		}
	})
	t.Run("EventSource reads the gateway's own 404", func(t *testing.T) {
		var r sseResult
		e.b.Call(t, "sse", map[string]any{"url": base + "/v1/nothing:track"}, &r)
		if r.ErrorData == nil || r.ErrorData["code"] != float64(codes.NotFound) {
			t.Fatalf("%+v, want an error event with NOT_FOUND", r)
		}
	})
}

func TestBrowserJWT(t *testing.T) {
	e := startBrowserEnv(t)
	je := newJWTEnv(t)
	// The echo route needs a JWT.
	gw := StartGateway(t, strings.Replace(fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: echo, endpoints: [%q]}
routes:
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
http:
  cors: {allowed_origins: [%q]}
auth_providers:
  - name: users
    jwt: {jwks_file: %q, issuer: "https://issuer.test", audiences: [edgegate]}
`, e.echo, e.allowed.URL, je.jwksFile), "cluster: echo}", "cluster: echo, auth: {providers: [users]}}", 1))
	base := "http://" + gw.Addr
	good := je.token(t, "alice", "", time.Now().Add(time.Hour), nil)
	e.b.Goto(t, e.allowed.URL)
	for _, text := range []bool{false, true} {
		var none, ok unaryResult
		e.b.Call(t, "unary", map[string]any{"base": base, "text": text, "json": map[string]any{"message": "jwt"}}, &none)
		if none.Error == nil || none.Error.Code != int(codes.Unauthenticated) {
			t.Errorf("text %v: no token: %+v, want UNAUTHENTICATED", text, none.Error)
		}
		e.b.Call(t, "unary", map[string]any{"base": base, "text": text, "json": map[string]any{"message": "jwt"}, "headers": map[string]string{"authorization": "Bearer " + good}}, &ok)
		if ok.Error != nil || ok.Message["message"] != "jwt" {
			t.Errorf("text %v: with a token: %+v %+v", text, ok.Message, ok.Error)
		}
	}
	var none, ok restResult
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "jwt"}}, &none)
	if none.Status != 401 || none.JSON["code"] != float64(codes.Unauthenticated) || !strings.Contains(none.Headers["www-authenticate"], "Bearer") {
		t.Errorf("REST without a token: %+v, want 401 UNAUTHENTICATED with WWW-Authenticate readable", none)
	}
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "jwt"}, "headers": map[string]string{"authorization": "Bearer " + good}}, &ok)
	if ok.Status != 200 || ok.JSON["message"] != "jwt" {
		t.Errorf("REST with a token: %+v", ok)
	}
}

func TestBrowserCORSDenied(t *testing.T) {
	e := startBrowserEnv(t)
	base := e.gateway(t, "", "")
	e.b.Goto(t, e.denied.URL)
	before := e.up.started.Load()
	for _, text := range []bool{false, true} {
		var r unaryResult
		e.b.Call(t, "unary", map[string]any{"base": base, "text": text, "json": map[string]any{"message": "denied"}}, &r)
		if r.Error == nil || !strings.Contains(r.Error.Message, "Failed to fetch") {
			t.Errorf("text %v: %+v, want the browser to refuse the answer (Failed to fetch)", text, r)
		}
	}
	var rr restResult
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "denied"}}, &rr)
	if !strings.Contains(rr.FetchError, "Failed to fetch") {
		t.Errorf("REST: %+v, want Failed to fetch", rr)
	}
	// Nothing was forwarded: the denied calls were refused before the next
	// (allowed) call began, and it is the only one the upstream started.
	e.b.Goto(t, e.allowed.URL)
	var r unaryResult
	e.b.Call(t, "unary", map[string]any{"base": base, "json": map[string]any{"message": "allowed"}}, &r)
	if r.Error != nil {
		t.Fatalf("allowed origin: %+v", r.Error)
	}
	if n := e.up.started.Load() - before; n != 1 {
		t.Errorf("the upstream started %d calls, want 1 (the allowed one)", n)
	}
}

// TestBrowserOverload: an answer the gateway makes itself (shedding over
// http.max_in_flight, a body over http.max_body_bytes, a header list over
// limits.max_header_list_bytes) is readable by a page on an allowed
// origin: the status and Retry-After, over gRPC-Web, fetch and
// EventSource. The page's preflights, sent while the only slot is held,
// are answered (not shed): its calls get the gateway's answers.
func TestBrowserOverload(t *testing.T) {
	e := startBrowserEnv(t)
	base := e.gateway(t, "  max_in_flight: 1\n  max_body_bytes: 256\n", "limits: {max_header_list_bytes: 4096}\n")
	// One call holds the listener's only slot.
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(base+"/v1/echo:unary", "application/json", strings.NewReader(`{"message":"hold"}`))
		if err == nil {
			err = resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-e.up.holding:
	case <-time.After(Patience):
		t.Fatal("the holding call did not reach the upstream")
	}
	e.b.Goto(t, e.allowed.URL)
	for _, text := range []bool{false, true} {
		var r unaryResult
		e.b.Call(t, "unary", map[string]any{"base": base, "text": text, "json": map[string]any{"message": "shed"}}, &r)
		if r.Error == nil || r.Error.Code != int(codes.Unavailable) || !strings.Contains(r.Error.Message, "in flight") {
			t.Errorf("gRPC-Web text %v: %+v, want UNAVAILABLE readable by the page", text, r.Error)
		} else if r.Error.Metadata["retry-after"] != "1" {
			t.Errorf("gRPC-Web text %v: the page reads %v, want retry-after: 1", text, r.Error.Metadata)
		}
	}
	var rr restResult
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "shed"}}, &rr)
	if rr.Status != 503 || rr.JSON["code"] != float64(codes.Unavailable) || rr.Headers["retry-after"] != "1" {
		t.Errorf("REST: %+v, want 503 UNAVAILABLE and Retry-After readable by the page", rr)
	}
	// Refused before a slot is taken: too large a body.
	var large restResult
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": strings.Repeat("x", 300)}}, &large)
	if large.Status != 413 || large.JSON["code"] != float64(codes.InvalidArgument) {
		t.Errorf("REST, too large: %+v, want 413 INVALID_ARGUMENT readable by the page", large)
	}
	// Refused before CORS is looked at: too large a header list (431).
	var headers restResult
	e.b.Call(t, "rest", map[string]any{"url": base + "/v1/echo:unary", "method": "POST", "body": map[string]any{"message": "big"}, "headers": map[string]string{"x-custom": strings.Repeat("h", 5000)}}, &headers)
	if headers.Status != 431 || headers.JSON["code"] != float64(codes.ResourceExhausted) {
		t.Errorf("REST, too large a header list: %+v, want 431 RESOURCE_EXHAUSTED readable by the page", headers)
	}
	var big unaryResult
	e.b.Call(t, "unary", map[string]any{"base": base, "json": map[string]any{"message": "big"}, "headers": map[string]string{"x-custom": strings.Repeat("h", 5000)}}, &big)
	if big.Error == nil || big.Error.Code != int(codes.ResourceExhausted) {
		t.Errorf("gRPC-Web, too large a header list: %+v, want RESOURCE_EXHAUSTED readable by the page", big.Error)
	}
	var sr sseResult
	e.b.Call(t, "sse", map[string]any{"url": base + "/v1/orders/o-1:track"}, &sr)
	if sr.ErrorData == nil || sr.ErrorData["code"] != float64(codes.Unavailable) {
		t.Errorf("EventSource: %+v, want an error event with UNAVAILABLE", sr)
	}
	close(e.up.unhold)
	if err := <-done; err != nil {
		t.Fatalf("holding call: %v", err)
	}
}
