package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/gateway"
	"google.golang.org/grpc/codes"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// seen is what the plain HTTP upstream was sent, as it answers it.
type seen struct {
	Method, Path, Query, Host, Proto string
	Header                           http.Header
	Body                             string
}

// httpUpstream is a real HTTP server on loopback: it answers every path
// with what it was sent (JSON), and has a few paths of its own.
type httpUpstream struct {
	Addr    string
	hits    atomic.Int64
	sick    atomic.Bool // /healthz answers 503
	release chan struct{}
}

func (u *httpUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if u.sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	u.hits.Add(1)
	switch r.URL.Path {
	case "/ws":
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.CloseNow() }()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	case "/slow":
		select {
		case <-r.Context().Done():
		case <-u.release:
		}
		return
	case "/events":
		// A server stream: each event flushed, the next one held until
		// the test has read the one before.
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			if i > 0 {
				select {
				case <-u.release:
				case <-r.Context().Done():
					return
				}
			}
			_, _ = fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		return
	case "/duplex":
		// Echoes each line of the request body as it arrives.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			_, _ = fmt.Fprintf(w, "got %s\n", sc.Text())
			w.(http.Flusher).Flush()
		}
		return
	case "/gzipped":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gzipped)
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "yes")
	_ = json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Proto, r.Header, string(body)})
}

var gzipped = func() []byte {
	var b bytes.Buffer
	w := encodings[0].writer(&b)
	_, _ = w.Write([]byte(`{"already":"` + strings.Repeat("gz", 1000) + `"}`))
	_ = w.Close()
	return b.Bytes()
}()

func startHTTPUpstream(t *testing.T, h2c bool) *httpUpstream {
	t.Helper()
	u := &httpUpstream{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Addr = ln.Addr().String()
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	if h2c {
		srv.Protocols = &http.Protocols{}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

func decodeSeen(t *testing.T, r httpResult) seen {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
	var s seen
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return s
}

func httpRouteConfig(upAddr string, extra string) string {
	return EchoConfig("127.0.0.1:1") + fmt.Sprintf(`
http_clusters:
  - {name: web, endpoints: [%q]}
http_routes:
  - {name: legacy, match: {path_prefix: /legacy}, cluster: web, strip_prefix: true}
  - {name: hooks, match: {path_template: "/hooks/{id}/events", methods: [POST]}, cluster: web}
  - {name: tenant, match: {path_prefix: /t, headers: {x-tenant: blue}}, cluster: web}
  - {name: host, match: {path_prefix: /h, hosts: ["*.example.test"]}, cluster: web}
  - {name: slow, match: {path_prefix: /slow}, cluster: web, timeout: 100ms}
  - {name: up, match: {path_prefix: /up}, cluster: web, strip_prefix: true}
`, upAddr) + extra
}

// TestHTTPRouteMatchAndForward: requests are matched by path prefix,
// template, method, headers and host; the upstream gets the path (prefix
// stripped when asked), the client's Host, no hop-by-hop headers, the
// gateway's forwarding headers only (a client's X-Forwarded-For and
// Forwarded are not trusted), and answers pass back with their headers,
// compressed by the gateway or passed as the upstream encoded them.
func TestHTTPRouteMatchAndForward(t *testing.T) {
	up := startHTTPUpstream(t, false)
	gw := StartGateway(t, httpRouteConfig(up.Addr, "http: {compression: {}}\n"))
	base := "http://" + gw.Addr
	s := decodeSeen(t, get(t, base+"/legacy/users/7?x=1", map[string]string{
		"Connection":      "X-Hop, Keep-Alive",
		"X-Hop":           "1",
		"X-Forwarded-For": "203.0.113.9",
		"Forwarded":       "for=203.0.113.9",
		"X-Real-Ip":       "203.0.113.9",
		"X-Custom":        "kept",
	}))
	if s.Path != "/users/7" || s.Query != "x=1" || s.Method != http.MethodGet {
		t.Errorf("upstream got %s %s?%s, want GET /users/7?x=1", s.Method, s.Path, s.Query)
	}
	if s.Host != gw.Addr {
		t.Errorf("upstream Host %q, want the client's %q", s.Host, gw.Addr)
	}
	h := s.Header
	if h.Get("X-Hop") != "" || h.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop headers forwarded: %v", h)
	}
	if h.Get("X-Custom") != "kept" {
		t.Errorf("X-Custom %q", h.Get("X-Custom"))
	}
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the peer only", got)
	}
	if h.Get("X-Real-Ip") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != gw.Addr || h.Get("Forwarded") != "" {
		t.Errorf("forwarding headers: %v", h)
	}
	if r := get(t, base+"/legacy", nil); decodeSeen(t, r).Path != "/" {
		t.Errorf("/legacy: upstream path %q, want /", decodeSeen(t, r).Path)
	}
	wantStatusJSON(t, get(t, base+"/legacyx", nil), http.StatusNotFound, codes.NotFound, "no route") // not /legacy's
	r := doHTTP(t, rawClient, http.MethodPost, base+"/hooks/42/events", `{"n":1}`, nil)
	if s := decodeSeen(t, r); s.Path != "/hooks/42/events" || s.Body != `{"n":1}` {
		t.Errorf("hooks: %+v", s)
	}
	r = doHTTP(t, rawClient, http.MethodGet, base+"/hooks/42/events", "", nil)
	wantStatusJSON(t, r, http.StatusNotFound, codes.NotFound, "no route")
	wantStatusJSON(t, get(t, base+"/hooks/42/other", nil), http.StatusNotFound, codes.NotFound, "no route")
	wantStatusJSON(t, get(t, base+"/t/x", nil), http.StatusNotFound, codes.NotFound, "no route")
	if s := decodeSeen(t, get(t, base+"/t/x", map[string]string{"X-Tenant": "blue"})); s.Path != "/t/x" {
		t.Errorf("tenant: %+v", s)
	}
	req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodGet, base+"/h/x", nil)
	req.Host = "api.example.test:8080"
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("host route: HTTP %d", resp.StatusCode)
	}
	wantStatusJSON(t, get(t, base+"/h/x", nil), http.StatusNotFound, codes.NotFound, "no route")

	// Compression: the gateway compresses an upstream's plain JSON, and
	// passes an encoded answer as it is.
	big := get(t, base+"/legacy/"+strings.Repeat("p", 2000), map[string]string{"Accept-Encoding": "br"})
	if big.header.Get("Content-Encoding") != "br" || big.header.Get("X-Upstream") != "yes" {
		t.Errorf("upstream answer: Content-Encoding %q, X-Upstream %q", big.header.Get("Content-Encoding"), big.header.Get("X-Upstream"))
	}
	gz := get(t, base+"/up/gzipped", map[string]string{"Accept-Encoding": "zstd, gzip"})
	if gz.header.Get("Content-Encoding") != "gzip" || !bytes.Equal(gz.body, gzipped) {
		t.Errorf("an encoded answer changed: Content-Encoding %q, %d bytes (want %d)", gz.header.Get("Content-Encoding"), len(gz.body), len(gzipped))
	}
}

// TestHTTPRouteStreams: the answer streams (each server-sent event reaches
// the client before the upstream writes the next), a request body streams
// to an h2c upstream while its answer streams back (full duplex), and a
// WebSocket upgrade passes through (an echo).
func TestHTTPRouteStreams(t *testing.T) {
	up := startHTTPUpstream(t, false)
	upH2 := startHTTPUpstream(t, true)
	gw := StartGateway(t, EchoConfig("127.0.0.1:1")+fmt.Sprintf(`
http:
  compression: {}
http_clusters:
  - {name: web, endpoints: [%q]}
  - {name: h2c, endpoints: [%q], protocol: HTTP_UPSTREAM_PROTOCOL_H2C}
http_routes:
  - {name: duplex, match: {path_prefix: /x}, cluster: h2c, strip_prefix: true}
  - {name: up, match: {path_prefix: /up}, cluster: web, strip_prefix: true}
`, up.Addr, upH2.Addr))
	base := "http://" + gw.Addr

	t.Run("events", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodGet, base+"/up/events", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if body, err = encodings[0].reader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		lines := bufio.NewReader(body)
		for i := range 3 {
			line, err := lines.ReadString('\n')
			if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
				t.Fatalf("event %d: %q %v", i, line, err)
			}
			_, _ = lines.ReadString('\n')
			if i < 2 {
				up.release <- struct{}{}
			}
		}
	})

	t.Run("duplex", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodPost, base+"/x/duplex", pr)
		req.Header.Set("Content-Type", "text/plain")
		resp, err := h2cClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		lines := bufio.NewReader(resp.Body)
		for i := range 3 {
			if _, err := fmt.Fprintf(pw, "line %d\n", i); err != nil {
				t.Fatal(err)
			}
			got, err := lines.ReadString('\n')
			if err != nil || got != fmt.Sprintf("got line %d\n", i) {
				t.Fatalf("echo %d: %q %v", i, got, err)
			}
		}
		_ = pw.Close()
	})

	t.Run("websocket", func(t *testing.T) {
		ctx := Ctx(t, 10*time.Second)
		c, resp, err := websocket.Dial(ctx, "ws://"+gw.Addr+"/up/ws", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		defer func() { _ = c.CloseNow() }()
		for _, m := range []string{"one", "two"} {
			if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "echo: "+m {
				t.Fatalf("read %q %v", got, err)
			}
		}
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
}

// TestHTTPRouteFailures: a route's timeout is 504 DEADLINE_EXCEEDED; a
// cluster that cannot be reached is 502 UNAVAILABLE; an idempotent
// request is tried on another endpoint, a POST with a body is not; a
// health-checked endpoint that fails is taken out (503 UNAVAILABLE) and
// brought back; a bomb body is 413, never forwarded.
func TestHTTPRouteFailures(t *testing.T) {
	up := startHTTPUpstream(t, false)
	dead := FreeAddr(t)
	gw := StartGateway(t, EchoConfig("127.0.0.1:1")+fmt.Sprintf(`
http:
  max_body_bytes: 65536
http_clusters:
  - {name: web, endpoints: [%q]}
  - {name: down, endpoints: [%q]}
  - {name: two, endpoints: [%q, %q], max_attempts: 2}
  - name: checked
    endpoints: [%q]
    health_check: {path: /healthz, interval: 20ms, threshold: 1}
http_routes:
  - {name: slow, match: {path_prefix: /slow}, cluster: web, timeout: 100ms}
  - {name: down, match: {path_prefix: /down}, cluster: down}
  - {name: two, match: {path_prefix: /two}, cluster: two}
  - {name: checked, match: {path_prefix: /checked}, cluster: checked}
  - {name: web, match: {path_prefix: /web}, cluster: web}
`, up.Addr, dead, dead, up.Addr, up.Addr))
	base := "http://" + gw.Addr
	wantStatusJSON(t, get(t, base+"/slow", nil), http.StatusGatewayTimeout, codes.DeadlineExceeded, "did not answer")
	wantStatusJSON(t, get(t, base+"/down", nil), http.StatusBadGateway, codes.Unavailable, "cannot be reached")
	for i := range 4 {
		if r := get(t, base+"/two", nil); r.code != http.StatusOK {
			t.Errorf("GET %d: HTTP %d (an idempotent request is tried again): %s", i, r.code, r.body)
		}
	}
	codesSeen := map[int]int{}
	for range 2 {
		codesSeen[doHTTP(t, rawClient, http.MethodPost, base+"/two", `{"once":true}`, nil).code]++
	}
	if codesSeen[http.StatusOK] != 1 || codesSeen[http.StatusBadGateway] != 1 {
		t.Errorf("two POSTs over a dead and a live endpoint: %v, want one 200 and one 502 (no retry)", codesSeen)
	}
	up.sick.Store(true)
	Eventually(t, Patience, func() error {
		if r := get(t, base+"/checked", nil); r.code != http.StatusServiceUnavailable {
			return fmt.Errorf("HTTP %d", r.code)
		}
		return nil
	})
	wantStatusJSON(t, get(t, base+"/checked", nil), http.StatusServiceUnavailable, codes.Unavailable, "no healthy endpoint")
	up.sick.Store(false)
	Eventually(t, Patience, func() error {
		if r := get(t, base+"/checked", nil); r.code != http.StatusOK {
			return fmt.Errorf("HTTP %d", r.code)
		}
		return nil
	})
	for _, e := range encodings {
		before := up.hits.Load()
		r := postEcho(t, base+"/web", encode(t, e.name, bytes.Repeat([]byte("0"), 4<<20)), map[string]string{"Content-Encoding": e.name})
		wantStatusJSON(t, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than 65536 bytes decoded")
		if up.hits.Load() != before {
			t.Errorf("%s bomb forwarded", e.name)
		}
		s := decodeSeen(t, postEcho(t, base+"/web", encode(t, e.name, []byte(`{"small":1}`)), map[string]string{"Content-Encoding": e.name}))
		if s.Body != `{"small":1}` || s.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s body forwarded as %q (Content-Encoding %q), want decoded", e.name, s.Body, s.Header.Get("Content-Encoding"))
		}
	}
}

// TestHTTPRouteTLS: an HTTP cluster over TLS with mutual TLS (the
// gateway's client certificate checked by the upstream), HTTP/1.1 and h2.
func TestHTTPRouteTLS(t *testing.T) {
	ca := NewCA(t, "upstream-ca")
	dir := t.TempDir()
	srvCert, srvKey := ca.Issue(t, Leaf{CN: "up", IPs: []string{"127.0.0.1"}})
	cliCert, cliKey := ca.Issue(t, Leaf{CN: "edgegate", Client: true})
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	u := &httpUpstream{release: make(chan struct{})}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	tlsYAML := fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}",
		WriteFile(t, dir, "ca.pem", ca.PEM), WriteFile(t, dir, "cli.pem", cliCert), WriteFile(t, dir, "cli.key", cliKey))
	gw := StartGateway(t, EchoConfig("127.0.0.1:1")+fmt.Sprintf(`
http_clusters:
  - {name: h1, endpoints: [%q], tls: %s}
  - {name: h2, endpoints: [%q], tls: %s, protocol: HTTP_UPSTREAM_PROTOCOL_H2}
  - {name: notrust, endpoints: [%q], tls: {}}
http_routes:
  - {name: h1, match: {path_prefix: /h1}, cluster: h1}
  - {name: h2, match: {path_prefix: /h2}, cluster: h2}
  - {name: notrust, match: {path_prefix: /notrust}, cluster: notrust}
`, ln.Addr().String(), tlsYAML, ln.Addr().String(), tlsYAML, ln.Addr().String()))
	base := "http://" + gw.Addr
	if s := decodeSeen(t, get(t, base+"/h1/x", nil)); s.Proto != "HTTP/1.1" {
		t.Errorf("h1 cluster: upstream saw %s", s.Proto)
	}
	if s := decodeSeen(t, get(t, base+"/h2/x", nil)); s.Proto != "HTTP/2.0" {
		t.Errorf("h2 cluster: upstream saw %s", s.Proto)
	}
	wantStatusJSON(t, get(t, base+"/notrust/x", nil), http.StatusBadGateway, codes.Unavailable, "cannot be reached")
}

// TestHTTPRoutePolicies: an HTTP route takes the same policies as a gRPC
// route, from the same configuration sections: API key authentication
// (401 UNAUTHENTICATED without, the upstream never reached), an IP block
// list (403 PERMISSION_DENIED), a rate limit with its headers (429
// RESOURCE_EXHAUSTED, RateLimit and Retry-After), on the same table as
// the gRPC route beside it on every door; the access log has the route's
// line, door "http".
func TestHTTPRoutePolicies(t *testing.T) {
	up := startHTTPUpstream(t, false)
	echo := StartEcho(t, "up")
	policies := `
    auth: {providers: [keys]}
    rate_limits: [%s]`
	cfg := strings.Replace(doorsConfig(echo.Addr), "    cluster: echo\n", "    cluster: echo"+fmt.Sprintf(policies, "two-grpc")+"\n", 1) + fmt.Sprintf(`
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: svc}]}
rate_limits:
  - {name: two, key: [{principal: true}], limits: [{requests: 2, period: 1h}]}
  - {name: two-grpc, key: [{principal: true}], limits: [{requests: 2, period: 1h}]}
http_clusters:
  - {name: web, endpoints: [%q]}
http_routes:
  - name: legacy
    match: {path_prefix: /legacy}
    cluster: web%s
  - name: readonly
    match: {path_prefix: /readonly}
    cluster: web
    auth: {providers: [keys], cel: 'headers[":method"] == "GET" && headers[":path"].startsWith("/readonly/")'}
  - name: blocked
    match: {path_prefix: /blocked}
    cluster: web
    ip_filter: {block: [127.0.0.0/8]}
`, authint.HashKey("k"), up.Addr, fmt.Sprintf(policies, "two"))
	gw := StartGateway(t, cfg)
	base := "http://" + gw.Addr
	withKey := map[string]string{"x-api-key": "k"}

	// The HTTP route.
	wantStatusJSON(t, get(t, base+"/legacy/a", nil), http.StatusUnauthorized, codes.Unauthenticated, "")
	if up.hits.Load() != 0 {
		t.Fatalf("an unauthenticated request reached the upstream")
	}
	for i := range 2 {
		// A client's own identity header is replaced by the gateway's.
		r := get(t, base+"/legacy/a", map[string]string{"x-api-key": "k", "X-Edgegate-Principal": "admin"})
		if got := decodeSeen(t, r).Header.Values("X-Edgegate-Principal"); len(got) != 1 || got[0] != "svc" {
			t.Errorf("upstream X-Edgegate-Principal %q, want the gateway's [svc]", got)
		}
		if r.header.Get("Ratelimit") == "" || r.header.Get("Ratelimit-Policy") == "" {
			t.Errorf("request %d: no RateLimit headers: %v", i, r.header)
		}
	}
	r := get(t, base+"/legacy/a", withKey)
	wantStatusJSON(t, r, http.StatusTooManyRequests, codes.ResourceExhausted, "")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %v", r.header)
	}
	if n := up.hits.Load(); n != 2 {
		t.Errorf("upstream reached %d times, want 2", n)
	}
	wantStatusJSON(t, get(t, base+"/blocked/a", nil), http.StatusForbidden, codes.PermissionDenied, "")
	// A CEL rule over the request line.
	decodeSeen(t, get(t, base+"/readonly/a", withKey))
	wantStatusJSON(t, doHTTP(t, rawClient, http.MethodPost, base+"/readonly/a", `{}`, withKey), http.StatusForbidden, codes.PermissionDenied, "")
	wantStatusJSON(t, get(t, base+"/readonly", withKey), http.StatusForbidden, codes.PermissionDenied, "")

	// The gRPC route with the same sections, on every door: the same
	// outcomes.
	doors := []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}}
	for _, d := range doors {
		if res := d.unary(t, &testingv1.EchoRequest{Message: "x"}, nil, 0); res.st.Code() != codes.Unauthenticated {
			t.Errorf("%s without a key: %v", d.name(), res.st)
		}
	}
	// The principal's budget (2) is shared by the route's calls, whatever
	// the door; the first two pass, the third is refused.
	var got []codes.Code
	for _, d := range doors {
		got = append(got, d.unary(t, &testingv1.EchoRequest{Message: "x"}, map[string]string{"x-api-key": "k"}, 0).st.Code())
	}
	if got[0] != codes.OK || got[1] != codes.OK || got[2] != codes.ResourceExhausted {
		t.Errorf("gRPC route over the doors: %v, want OK, OK, RESOURCE_EXHAUSTED", got)
	}
	mfs := scrape(t, gw)
	for code, want := range map[string]float64{"OK": 2, "Unauthenticated": 1, "ResourceExhausted": 1} {
		if got := counter(t, mfs, "edgegate_calls_handled_total", map[string]string{"door": "http", "method": "/edgegate.http/legacy", "route": "legacy", "code": code}); got != want {
			t.Errorf("edgegate_calls_handled_total{door=http,route=legacy,code=%s} = %v, want %v", code, got, want)
		}
	}
	line := gw.Logs.AccessLine(t, `"route":"legacy"`)
	if !strings.Contains(line, `"door":"http"`) {
		t.Errorf("access log line: %s", line)
	}
}

// TestHTTPRouteReload: HTTP routes, HTTP clusters and static mounts change
// with a reload; a reload to an ambiguous configuration is refused and
// the one in force stays.
func TestHTTPRouteReload(t *testing.T) {
	a, b := startHTTPUpstream(t, false), startHTTPUpstream(t, false)
	mk := func(addr, extra string) string {
		return EchoConfig("127.0.0.1:1") + fmt.Sprintf(`
http_clusters:
  - {name: web, endpoints: [%q]}
http_routes:
  - {name: legacy, match: {path_prefix: /legacy}, cluster: web}
`, addr) + extra
	}
	gw := StartGateway(t, mk(a.Addr, ""))
	base := "http://" + gw.Addr
	decodeSeen(t, get(t, base+"/legacy/x", nil))
	if a.hits.Load() != 1 {
		t.Fatalf("upstream a: %d requests", a.hits.Load())
	}
	load := func(yaml string) error {
		cfg, err := config.Load("test.yaml", []byte(yaml+"\nadmin: {address: 127.0.0.1:0}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return gw.Reload(cfg)
	}
	if err := load(mk(b.Addr, "http:\n  static: [{path_prefix: /welcome/, embedded: welcome}]\n")); err != nil {
		t.Fatal(err)
	}
	decodeSeen(t, get(t, base+"/legacy/x", nil))
	if b.hits.Load() != 1 || a.hits.Load() != 1 {
		t.Errorf("after the reload: a %d, b %d requests; want 1 and 1", a.hits.Load(), b.hits.Load())
	}
	if r := get(t, base+"/welcome/", nil); r.code != http.StatusOK {
		t.Errorf("the mount added by the reload: HTTP %d", r.code)
	}
	if err := load(mk(a.Addr, "http:\n  static: [{path_prefix: /legacy/, embedded: welcome}]\n")); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("reload to an ambiguous config: %v", err)
	}
	decodeSeen(t, get(t, base+"/legacy/x", nil))
	if b.hits.Load() != 2 {
		t.Errorf("after the refused reload: b %d requests, want 2", b.hits.Load())
	}
}

// TestHTTPRouteTracing: an HTTP route's request gets the gateway's server
// span (parent: the client's traceparent; attributes door http and the
// route), and the upstream is sent traceparent with the gateway span as
// parent.
func TestHTTPRouteTracing(t *testing.T) {
	spans, tp := newSpanRecorder()
	up := startHTTPUpstream(t, false)
	gw := StartGateway(t, httpRouteConfig(up.Addr, ""), gateway.WithTracerProvider(tp))
	traceID, clientSpan := fmt.Sprintf("%032x", 0xfeed), fmt.Sprintf("%016x", 0xbeef)
	s := decodeSeen(t, get(t, "http://"+gw.Addr+"/legacy/x", map[string]string{"traceparent": "00-" + traceID + "-" + clientSpan + "-01"}))
	parts := strings.Split(s.Header.Get("Traceparent"), "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("upstream traceparent %q, want trace %s", s.Header.Get("Traceparent"), traceID)
	}
	ended := spans.trace(t, traceID, 1)
	span := &ended[len(ended)-1]
	if span.Parent.SpanID().String() != clientSpan || parts[2] != span.SpanContext.SpanID().String() {
		t.Errorf("span parent %s (want %s), upstream parent %s (want %s)", span.Parent.SpanID(), clientSpan, parts[2], span.SpanContext.SpanID())
	}
	attrs := map[string]string{}
	for _, a := range span.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["edgegate.door"] != "http" || attrs["edgegate.route"] != "legacy" {
		t.Errorf("span %q attributes %v", span.Name, attrs)
	}
}
