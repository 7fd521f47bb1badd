package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/examples/shop"
	"github.com/edgegate/edgegate/gateway"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
)

// shopGateway starts the example shop services as three upstream clusters
// and a gateway in front of them; extra is appended to the config.
func shopGateway(t *testing.T, extra string, opts ...gateway.Option) (*Gateway, *metadataSpy) {
	t.Helper()
	spy := &metadataSpy{}
	orders := shop.NewOrders()
	orders.TrackInterval = 10 * time.Millisecond
	catalog := StartServer(t, func(s *grpc.Server) { catalogv1.RegisterCatalogServiceServer(s, shop.NewCatalog()) })
	ord := StartServer(t, func(s *grpc.Server) { ordersv1.RegisterOrdersServiceServer(s, orders) })
	users := StartServerOpts(t, func(s *grpc.Server) { usersv1.RegisterUsersServiceServer(s, shop.NewUsers()) }, grpc.UnaryInterceptor(spy.intercept))
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
`, catalog, ord, users)+extra, opts...)
	return gw, spy
}

// metadataSpy records the request metadata and request of the last unary
// call of an upstream.
type metadataSpy struct {
	md  chan metadata.MD
	req chan any
}

func (s *metadataSpy) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	select {
	case s.md <- md:
	default:
	}
	select {
	case s.req <- req:
	default:
	}
	return handler(ctx, req)
}

func jsonField(t *testing.T, b []byte, path ...string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func TestRESTMapping(t *testing.T) {
	gw, _ := shopGateway(t, "")
	base := "http://" + gw.Addr

	t.Run("nested path template", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/shelves/1/books/2", "", nil)
		if r.code != 200 || jsonField(t, r.body, "title") != "A Brief History of Time" {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
	t.Run("query parameters: enum, repeated, nested, timestamp", func(t *testing.T) {
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"genre=GENRE_SCIENCE", []string{"shelves/1/books/2"}},
			{"tags=classic&tags=sf", []string{"shelves/1/books/1"}},
			{"tags=classic", []string{"shelves/1/books/1", "shelves/2/books/3"}},
			{"filter.author=Mary%20Beard", []string{"shelves/2/books/3"}},
			{"filter.max_price_cents=1500", []string{"shelves/1/books/1"}},
			{"published_after=1980-01-01T00:00:00Z", []string{"shelves/1/books/2", "shelves/2/books/3"}},
			{"genre=2", []string{"shelves/1/books/2"}},
			{"page_size=1&page_token=1", []string{"shelves/1/books/2"}},
		} {
			r := doHTTP(t, nil, "GET", base+"/v1/books?"+c.query, "", nil)
			if r.code != 200 {
				t.Errorf("%s: %d %s", c.query, r.code, r.body)
				continue
			}
			var got []string
			books, _ := jsonField(t, r.body, "books").([]any)
			for _, b := range books {
				got = append(got, b.(map[string]any)["name"].(string))
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("%s: got %v, want %v", c.query, got, c.want)
			}
		}
	})
	t.Run("additional binding with path parameter", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/shelves/2/books", "", nil)
		if books, _ := jsonField(t, r.body, "books").([]any); r.code != 200 || len(books) != 1 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
	t.Run("response_body", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/shelves/1/books:array", "", nil)
		var arr []map[string]any
		if err := json.Unmarshal(r.body, &arr); err != nil || r.code != 200 || len(arr) != 2 {
			t.Fatalf("%d %s (%v): want a bare JSON array of 2 books", r.code, r.body, err)
		}
	})
	t.Run("POST with field body, then PATCH with FieldMask, then DELETE", func(t *testing.T) {
		r := doHTTP(t, nil, "POST", base+"/v1/shelves/9/books?book_id=b1", `{"title":"Dune","author":"Frank Herbert","stock":3,"genre":"GENRE_FICTION"}`, nil)
		if r.code != 200 || jsonField(t, r.body, "name") != "shelves/9/books/b1" {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		// PATCH: the body's fields become the update mask; author stays.
		r = doHTTP(t, nil, "PATCH", base+"/v1/shelves/9/books/b1", `{"stock":7}`, nil)
		if r.code != 200 || jsonField(t, r.body, "stock") != float64(7) || jsonField(t, r.body, "author") != "Frank Herbert" {
			t.Fatalf("patch: %d %s", r.code, r.body)
		}
		// An explicit mask in the query.
		r = doHTTP(t, nil, "PATCH", base+"/v1/shelves/9/books/b1?update_mask=title", `{"title":"Dune Messiah","stock":1}`, nil)
		if r.code != 200 || jsonField(t, r.body, "title") != "Dune Messiah" || jsonField(t, r.body, "stock") != float64(7) {
			t.Fatalf("patch with mask: %d %s", r.code, r.body)
		}
		r = doHTTP(t, nil, "DELETE", base+"/v1/shelves/9/books/b1", "", nil)
		if r.code != 200 || jsonField(t, r.body, "name") != "shelves/9/books/b1" {
			t.Fatalf("delete: %d %s", r.code, r.body)
		}
		wantStatusJSON(t, doHTTP(t, nil, "GET", base+"/v1/shelves/9/books/b1", "", nil), 404, codes.NotFound, "not found")
	})
	t.Run("POST with body *, PUT with field body", func(t *testing.T) {
		r := doHTTP(t, nil, "POST", base+"/v1/orders", `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":1}]}`, nil)
		if r.code != 200 || jsonField(t, r.body, "userId") != "ada" {
			t.Fatalf("%d %s", r.code, r.body)
		}
		r = doHTTP(t, nil, "PUT", base+"/v1/users/grace", `{"display_name":"Grace Hopper"}`, nil)
		if r.code != 200 || jsonField(t, r.body, "userId") != "grace" || jsonField(t, r.body, "displayName") != "Grace Hopper" {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
	t.Run("error with google.rpc details", func(t *testing.T) {
		r := doHTTP(t, nil, "POST", base+"/v1/orders", `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}`, nil)
		wantStatusJSON(t, r, 400, codes.FailedPrecondition, "over the limit")
		details, _ := jsonField(t, r.body, "details").([]any)
		if len(details) != 2 || details[0].(map[string]any)["@type"] != "type.googleapis.com/google.rpc.PreconditionFailure" {
			t.Fatalf("details: %s", r.body)
		}
	})
}

func TestRESTEdgeCases(t *testing.T) {
	gw, spy := shopGateway(t, "http:\n  max_body_bytes: 1024\n  rest:\n    forward_request_headers: [x-tenant]\n")
	spy.md, spy.req = make(chan metadata.MD, 1), make(chan any, 1)
	base := "http://" + gw.Addr

	lastUserID := func() string {
		select {
		case r := <-spy.req:
			if r, ok := r.(*usersv1.GetUserRequest); ok {
				return r.GetUserId()
			}
		case <-time.After(5 * time.Second):
			t.Fatal("upstream saw no call")
		}
		return ""
	}
	t.Run("percent-encoded path segment", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/users/J%C3%BCrgen%20K", "", nil)
		wantStatusJSON(t, r, 404, codes.NotFound, "not found")
		<-spy.md
		if got := lastUserID(); got != "Jürgen K" {
			t.Errorf("user_id %q, want %q", got, "Jürgen K")
		}
	})
	t.Run("%2F stays inside one path variable", func(t *testing.T) {
		// One segment of /v1/users/{user_id}, decoded as google.api.http
		// says for single-segment variables; never a path separator.
		r := doHTTP(t, nil, "GET", base+"/v1/users/a%2Fb", "", nil)
		wantStatusJSON(t, r, 404, codes.NotFound, `user "a/b" not found`)
		<-spy.md
		if got := lastUserID(); got != "a/b" {
			t.Errorf("user_id %q, want a/b", got)
		}
	})
	t.Run("headers: allowlist, X-Forwarded-*, no others", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/users/ada", "", map[string]string{"X-Tenant": "t1", "X-Secret-Internal": "no", "Authorization": "Bearer abc", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
		if r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		md := <-spy.md
		lastUserID()
		for k, want := range map[string]string{"x-tenant": "t1", "authorization": "Bearer abc", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-forwarded-host": gw.Addr} {
			if v := md.Get(k); len(v) != 1 || v[0] != want {
				t.Errorf("upstream %s = %q, want %q", k, v, want)
			}
		}
		if v := md.Get("x-forwarded-for"); len(v) != 1 || !strings.HasPrefix(v[0], "127.0.0.1") {
			t.Errorf("x-forwarded-for %q", v)
		}
		if v := md.Get("x-secret-internal"); len(v) != 0 {
			t.Errorf("a header off the allowlist was forwarded: %q", v)
		}
	})
	t.Run("Grpc-Timeout honoured", func(t *testing.T) {
		// A timeout too short for any upstream call.
		r := doHTTP(t, nil, "GET", base+"/v1/users/ada", "", map[string]string{"Grpc-Timeout": "1n"})
		wantStatusJSON(t, r, 504, codes.DeadlineExceeded, "")
	})
	t.Run("body over the limit is 413 JSON, never forwarded", func(t *testing.T) {
		big := `{"user_id":"ada","items":[{"book":"` + strings.Repeat("x", 2000) + `","quantity":1}]}`
		wantStatusJSON(t, doHTTP(t, nil, "POST", base+"/v1/orders", big, nil), 413, codes.InvalidArgument, "larger than 1024 bytes")
		// Without Content-Length (chunked) too.
		req, _ := http.NewRequestWithContext(Ctx(t, 5*time.Second), "PUT", base+"/v1/users/ada", io.MultiReader(strings.NewReader(`{"display_name":"`), strings.NewReader(strings.Repeat("y", 3000)+`"}`)))
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		wantStatusJSON(t, httpResult{resp.StatusCode, resp.Header, b}, 413, codes.InvalidArgument, "larger than")
		// Then a call to the same upstream: had the gateway forwarded the
		// refused one, it would have before answering it, so before this
		// one, and the spy (which keeps the first call it sees) would hold
		// it instead.
		wantStatusJSON(t, doHTTP(t, nil, "GET", base+"/v1/users/after-413", "", nil), 404, codes.NotFound, "not found")
		<-spy.md
		if got := lastUserID(); got != "after-413" {
			t.Fatalf("an oversized body reached the upstream: its first call since was not the one after (user %q)", got)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		wantStatusJSON(t, doHTTP(t, nil, "PUT", base+"/v1/users/ada", `{"display_name": "x"`, nil), 400, codes.InvalidArgument, "")
	})
	t.Run("unknown field rejected by default", func(t *testing.T) {
		wantStatusJSON(t, doHTTP(t, nil, "PUT", base+"/v1/users/ada", `{"display_name":"x","shoe_size":42}`, nil), 400, codes.InvalidArgument, "shoe_size")
	})
	t.Run("wrong type", func(t *testing.T) {
		wantStatusJSON(t, doHTTP(t, nil, "PUT", base+"/v1/users/ada", `{"display_name":42}`, nil), 400, codes.InvalidArgument, "invalid value for string field displayName: 42")
	})
	t.Run("unknown enum string", func(t *testing.T) {
		wantStatusJSON(t, doHTTP(t, nil, "GET", base+"/v1/books?genre=GENRE_NOPE", "", nil), 400, codes.InvalidArgument, "GENRE_NOPE")
		wantStatusJSON(t, doHTTP(t, nil, "POST", base+"/v1/shelves/1/books", `{"title":"t","genre":"GENRE_NOPE"}`, nil), 400, codes.InvalidArgument, "GENRE_NOPE")
	})
	t.Run("unknown path is 404 JSON, wrong method 405 JSON", func(t *testing.T) {
		wantStatusJSON(t, doHTTP(t, nil, "GET", base+"/v1/nothing/here", "", nil), 404, codes.NotFound, "no route for GET /v1/nothing/here")
		wantStatusJSON(t, doHTTP(t, nil, "DELETE", base+"/v1/orders", "", nil), 405, codes.Unimplemented, "not allowed")
	})
	t.Run("REST over h2c", func(t *testing.T) {
		r := doHTTP(t, h2cClient(), "GET", base+"/v1/shelves/1/books/1", "", nil)
		if r.code != 200 || jsonField(t, r.body, "name") != "shelves/1/books/1" {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
}

func TestRESTStreaming(t *testing.T) {
	gw, _ := shopGateway(t, "")
	base := "http://" + gw.Addr
	r := doHTTP(t, nil, "POST", base+"/v1/orders", `{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":1}]}`, nil)
	id, _ := jsonField(t, r.body, "orderId").(string)
	if id == "" {
		t.Fatalf("%d %s", r.code, r.body)
	}

	t.Run("newline-delimited JSON", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/orders/"+id+":track", "", nil)
		lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
		if r.code != 200 || len(lines) != 4 {
			t.Fatalf("%d %q", r.code, r.body)
		}
		for i, want := range []string{"STATE_PLACED", "STATE_PACKED", "STATE_SHIPPED", "STATE_DELIVERED"} {
			if jsonField(t, []byte(lines[i]), "result", "state") != want {
				t.Errorf("line %d: %s, want %s", i, lines[i], want)
			}
		}
	})
	t.Run("server-sent events", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), "GET", base+"/v1/orders/"+id+":track", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		var states []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				states = append(states, fmt.Sprint(jsonField(t, []byte(data), "state")))
			}
		}
		if strings.Join(states, ",") != "STATE_PLACED,STATE_PACKED,STATE_SHIPPED,STATE_DELIVERED" {
			t.Fatalf("events %v", states)
		}
	})
	t.Run("error before the first message", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/v1/orders/o-nope:track", "", nil)
		if r.code != 404 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		st := restStatus(t, mustJSONField(t, r.body, "error"))
		if st.Code() != codes.NotFound {
			t.Fatalf("%v", st)
		}
	})
}

func TestRESTStreamErrorAsSSEEvent(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr))
	req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), "POST", "http://"+gw.Addr+"/v1/echo:stream",
		strings.NewReader(`{"message":"m","repeat":2,"failWith":{"code":10,"message":"mid-stream"}}`))
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if len(events) != 3 {
		t.Fatalf("want 2 data events and an error event, got %q", b)
	}
	for _, e := range events[:2] {
		if !strings.HasPrefix(e, "data: {") || !strings.Contains(e, `"message":"m"`) {
			t.Errorf("event %q", e)
		}
	}
	last, ok := strings.CutPrefix(events[2], "event: error\ndata: ")
	if !ok {
		t.Fatalf("last event %q, want an error event", events[2])
	}
	if st := restStatus(t, []byte(last)); st.Code() != codes.Aborted || st.Message() != "mid-stream" {
		t.Fatalf("error event status %v", st)
	}
}

func mustJSONField(t *testing.T, b []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m[key] == nil {
		t.Fatalf("no %q in %s", key, b)
	}
	return m[key]
}

func TestRESTJSONOptions(t *testing.T) {
	gw, _ := shopGateway(t, "http:\n  rest:\n    use_proto_names: true\n    emit_unpopulated: true\n    enums_as_numbers: true\n    discard_unknown_fields: true\n")
	base := "http://" + gw.Addr
	r := doHTTP(t, nil, "GET", base+"/v1/shelves/1/books/1", "", nil)
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	if m["price_cents"] != "1299" || m["genre"] != float64(1) {
		t.Errorf("want proto names and enum numbers: %s", r.body)
	}
	r = doHTTP(t, nil, "PUT", base+"/v1/users/zed", `{"display_name":"Zed","shoe_size":42}`, nil)
	if r.code != 200 {
		t.Fatalf("unknown field with discard_unknown_fields: %d %s", r.code, r.body)
	}
	if v, ok := jsonField(t, r.body, "email").(string); !ok || v != "" {
		t.Errorf("emit_unpopulated: email missing in %s", r.body)
	}
}

func TestOpenAPIServed(t *testing.T) {
	gw, _ := shopGateway(t, "")
	r := doHTTP(t, nil, "GET", "http://"+gw.Addr+"/openapi.json", "", nil)
	if r.code != 200 || jsonField(t, r.body, "openapi") != "3.1.0" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %.200s", r.code, r.header.Get("Content-Type"), r.body)
	}
	paths, _ := jsonField(t, r.body, "paths").(map[string]any)
	for _, p := range []string{"/v1/{name}", "/v1/orders", "/v1/users/{user_id}"} {
		if _, ok := paths[p]; !ok {
			keys := make([]string, 0, len(paths))
			for k := range paths {
				keys = append(keys, k)
			}
			t.Errorf("spec lacks %s; has %v", p, keys)
		}
	}
	// Only what the configuration routes: the echo service is compiled
	// in, not routed here.
	if _, ok := paths["/v1/echo:unary"]; ok {
		t.Error("the spec has the unrouted echo service")
	}
	wantStatusJSON(t, doHTTP(t, nil, "POST", "http://"+gw.Addr+"/openapi.json", "{}", nil), 405, codes.Unimplemented, "not allowed")
}
