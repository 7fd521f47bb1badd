package test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/config"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// wafConfig is the echo service on every door, with the listener's WAF
// (listenerWAF, a YAML flow map) and, for the Unary method, a route of
// its own with routeWAF (none when "").
func wafConfig(addr, listenerWAF, routeWAF string) string {
	unary := ""
	if routeWAF != "" {
		unary = fmt.Sprintf(`
  - name: echo-unary
    match: {method: edgegate.testing.v1.EchoService/Unary}
    cluster: echo
    waf: %s`, routeWAF)
	}
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
    waf: %s
clusters:
  - name: echo
    endpoints: [%q]
routes:%s
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
`, listenerWAF, addr, unary)
}

// wafAttack is one request the CRS refuses at paranoia level 1: a message
// (REST JSON body and gRPC-Web text message), a query (REST only) and a
// user agent.
type wafAttack struct {
	name      string
	message   string
	query     string
	userAgent string
	rule      string // one rule id the attack matches
}

var wafAttacks = []wafAttack{
	{name: "sql-injection", message: "1' OR '1'='1' --", query: "id=1%27%20OR%20%271%27%3D%271", rule: "942100"},
	{name: "xss", message: "<script>alert(document.cookie)</script>", query: "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", rule: "941100"},
	{name: "path-traversal", message: "../../../../etc/passwd", query: "file=..%2F..%2F..%2F..%2Fetc%2Fpasswd", rule: "930120"},
	{name: "scanner", message: "hello", userAgent: "sqlmap/1.7.2#stable (https://sqlmap.org)", rule: "913100"},
}

// restEcho posts message to the REST door's Unary binding, with query
// and user agent when set.
func restEcho(t *testing.T, gw *Gateway, message, query, userAgent string) httpResult {
	t.Helper()
	u := "http://" + gw.Addr + "/v1/echo:unary"
	if query != "" {
		u += "?" + query
	}
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	if userAgent != "" {
		hdr["User-Agent"] = userAgent
	}
	return doHTTP(t, nil, http.MethodPost, u, fmt.Sprintf(`{"message":%q}`, message), hdr)
}

// webEcho calls method (Unary or ServerStream) on the gRPC-Web door in
// text mode (base64), with message and the user agent when set.
func webEcho(t *testing.T, gw *Gateway, method, message, userAgent string) webAnswer {
	t.Helper()
	body := []byte(base64.StdEncoding.EncodeToString(webFrame(t, &testingv1.EchoRequest{Message: message})))
	hdr := map[string]string{"Accept": "application/grpc-web-text"}
	if userAgent != "" {
		hdr["User-Agent"] = userAgent
	}
	return postWeb(t, nil, "http://"+gw.Addr+"/edgegate.testing.v1.EchoService/"+method, "application/grpc-web-text", body, hdr)
}

// TestWAFBlocksAttacks: at paranoia level 1, blocking, SQL injection, XSS,
// path traversal and a scanner's user agent are refused on REST (in the
// query and in the JSON body) with 403 and a google.rpc.Status
// PERMISSION_DENIED that names no rule, and on gRPC-Web text with a
// trailers-only PERMISSION_DENIED; nothing reaches the upstream. A clean
// request on the same route passes; the access log line has the rule ids
// and the anomaly score; the metrics count the rules by outcome. Native
// gRPC is not inspected.
func TestWAFBlocksAttacks(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, wafConfig(up.Addr, "{paranoia_level: 1}", ""))
	for _, a := range wafAttacks {
		t.Run(a.name, func(t *testing.T) {
			before := up.Count()
			if a.query != "" {
				r := restEcho(t, gw, "hello", a.query, a.userAgent)
				wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "edgegate: the request was refused by the web application firewall")
			}
			r := restEcho(t, gw, a.message, "", a.userAgent)
			wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "edgegate: the request was refused by the web application firewall")
			if strings.Contains(string(r.body), a.rule) {
				t.Errorf("the answer names the rule: %s", r.body)
			}
			w := webEcho(t, gw, "Unary", a.message, a.userAgent)
			if w.grpcStatus() != fmt.Sprint(int(codes.PermissionDenied)) {
				t.Errorf("gRPC-Web text: grpc-status %q (%q), want PERMISSION_DENIED", w.grpcStatus(), w.grpcMessage())
			}
			// connect-go's gRPC-Web client (binary mode).
			md := map[string]string{}
			if a.userAgent != "" {
				md["User-Agent"] = a.userAgent
			}
			if res := (webDoor{base: "http://" + gw.Addr}).unary(t, &testingv1.EchoRequest{Message: a.message}, md, 0); res.st.Code() != codes.PermissionDenied {
				t.Errorf("gRPC-Web (connect-go): %v, want PERMISSION_DENIED", res.st.Err())
			}
			if up.Count() != before {
				t.Errorf("the upstream got %d calls of refused requests", up.Count()-before)
			}
		})
	}
	t.Run("clean", func(t *testing.T) {
		before := up.Count()
		r := restEcho(t, gw, "a clean message", "page=2", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
		if r.code != http.StatusOK || !strings.Contains(string(r.body), "a clean message") {
			t.Fatalf("REST: %d %s", r.code, r.body)
		}
		w := webEcho(t, gw, "Unary", "a clean message", "")
		if w.grpcStatus() != "0" {
			t.Fatalf("gRPC-Web: grpc-status %q (%q)", w.grpcStatus(), w.grpcMessage())
		}
		if res := (webDoor{base: "http://" + gw.Addr}).unary(t, &testingv1.EchoRequest{Message: "a clean message"}, nil, 0); res.st.Code() != codes.OK {
			t.Fatalf("gRPC-Web (connect-go): %v", res.st.Err())
		}
		if got := up.Count() - before; got != 3 {
			t.Errorf("the upstream got %d calls, want 3", got)
		}
	})
	t.Run("native-grpc-not-inspected", func(t *testing.T) {
		c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
		if _, err := c.Unary(Ctx(t, Patience), &testingv1.EchoRequest{Message: wafAttacks[0].message}); err != nil {
			t.Fatalf("native gRPC: %v", err)
		}
	})
	line := gw.Logs.AccessLine(t, `"waf":"blocked"`)
	for _, want := range []string{`"waf_rules":"`, `942100`, `"waf_score":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line without %s: %s", want, line)
		}
	}
	mfs := scrape(t, gw)
	if got := counter(t, mfs, "edgegate_waf_rule_matches_total", map[string]string{"rule": "942100", "outcome": "blocked"}); got < 1 {
		t.Errorf("edgegate_waf_rule_matches_total{rule=942100,outcome=blocked} = %v", got)
	}
	// The clean requests match 920350 (the Host is an IP address: 3
	// points, under the threshold of 5).
	if got := counter(t, mfs, "edgegate_waf_requests_total", map[string]string{"outcome": "passed"}); got < 2 {
		t.Errorf("edgegate_waf_requests_total{outcome=passed} = %v, want 2 or more", got)
	}
}

// TestWAFDetectionOnly: in detection-only mode an attack is served
// (forwarded, 200) and logged: the access log line has waf "detected" and
// the rule ids.
func TestWAFDetectionOnly(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, wafConfig(up.Addr, "{mode: WAF_MODE_DETECTION_ONLY}", ""))
	r := restEcho(t, gw, "hello", wafAttacks[0].query, "")
	if r.code != http.StatusOK {
		t.Fatalf("REST: %d %s", r.code, r.body)
	}
	w := webEcho(t, gw, "Unary", wafAttacks[1].message, "")
	if w.grpcStatus() != "0" {
		t.Fatalf("gRPC-Web: grpc-status %q (%q)", w.grpcStatus(), w.grpcMessage())
	}
	up.WaitCount(t, 2)
	for _, door := range []string{`"door":"rest"`, `"door":"grpc-web"`} {
		line := gw.Logs.AccessLine(t, door)
		if !strings.Contains(line, `"waf":"detected"`) || !strings.Contains(line, `"waf_rules":"9`) {
			t.Errorf("access log line: %s", line)
		}
	}
}

// TestWAFRouteExclusion: a known false positive (an SQL-looking message,
// which a route takes by design) passes on the route that excludes its
// field from the SQL injection rules, and is refused on the other route
// of the same listener; the exclusion's route still refuses the same text
// in another field.
func TestWAFRouteExclusion(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, wafConfig(up.Addr, "{}",
		`{exclude_targets: [{rule_ids: [942100, 942180, 942200, 942260, 942340, 942370, 942390, 942430, 942431, 942432, 942460, 942520, 942521, 942522], target: "ARGS:json.message"}]}`))
	fp := "select name from users where id = 1 or 1=1"
	// Unary: its route excludes json.message.
	if r := restEcho(t, gw, fp, "", ""); r.code != http.StatusOK {
		t.Fatalf("REST Unary (excluded): %d %s", r.code, r.body)
	}
	if w := webEcho(t, gw, "Unary", fp, ""); w.grpcStatus() != "0" {
		t.Fatalf("gRPC-Web Unary (excluded): grpc-status %q (%q)", w.grpcStatus(), w.grpcMessage())
	}
	// The same text in the query is not excluded.
	if r := restEcho(t, gw, "hello", "q="+url.QueryEscape(fp), ""); r.code != http.StatusForbidden {
		t.Errorf("REST Unary, the text in the query: %d %s, want 403", r.code, r.body)
	}
	// ServerStream: the service's route, without the exclusion.
	r := doHTTP(t, nil, http.MethodPost, "http://"+gw.Addr+"/v1/echo:stream", fmt.Sprintf(`{"message":%q}`, fp), map[string]string{"Content-Type": "application/json"})
	wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "edgegate: the request was refused by the web application firewall")
	if w := webEcho(t, gw, "ServerStream", fp, ""); w.grpcStatus() != fmt.Sprint(int(codes.PermissionDenied)) {
		t.Errorf("gRPC-Web ServerStream: grpc-status %q (%q), want PERMISSION_DENIED", w.grpcStatus(), w.grpcMessage())
	}
}

// TestWAFReloadReusesRuleSets: a reload that leaves the WAF settings
// alone compiles no rule set (the compiled one is reused); one that
// changes a route's WAF compiles that route's anew, and its new settings
// are in force.
func TestWAFReloadReusesRuleSets(t *testing.T) {
	up := StartEcho(t, "up")
	yaml := wafConfig(up.Addr, "{}", "{paranoia_level: 1}")
	gw := StartGateway(t, yaml)
	compiles := func() float64 {
		return counter(t, scrape(t, gw), "edgegate_waf_rule_set_compiles_total", nil)
	}
	before := compiles()
	if before < 1 {
		t.Fatalf("edgegate_waf_rule_set_compiles_total = %v", before)
	}
	reload := func(yaml string) {
		t.Helper()
		cfg, err := config.Load("test.yaml", []byte(yaml+"\nadmin: {address: 127.0.0.1:0}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(strings.Replace(yaml, "cluster: echo\n", "cluster: echo\n    timeout: 5s\n", 1))
	if got := compiles(); got != before {
		t.Errorf("a reload without WAF changes compiled %v rule sets", got-before)
	}
	reload(strings.Replace(yaml, "{paranoia_level: 1}", `{remove_rule_tags: ["attack-sqli"]}`, 1))
	if got := compiles(); got != before+1 {
		t.Errorf("a reload changing a route's WAF compiled %v rule sets, want 1", got-before)
	}
	if r := restEcho(t, gw, "1' OR '1'='1' --", "", ""); r.code != http.StatusOK {
		t.Errorf("after the reload, SQL rules off on the route: %d %s", r.code, r.body)
	}
}

// TestWAFDefaultConfig: the embedded default configuration refuses the
// README's quickstart SQL injection on the example API's REST door with
// 403 (no backend needed: nothing is forwarded).
func TestWAFDefaultConfig(t *testing.T) {
	yaml := strings.Replace(string(config.DefaultYAML), "address: 127.0.0.1:8080", "address: 127.0.0.1:0", 1)
	gw := StartGateway(t, yaml)
	r := doHTTP(t, nil, http.MethodGet, "http://"+gw.Addr+"/v1/books?genre=1'%20OR%20'1'='1", "", nil)
	wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "edgegate: the request was refused by the web application firewall")
	line := gw.Logs.AccessLine(t, `"http_path":"/v1/books"`)
	if !strings.Contains(line, `"waf":"blocked"`) || !strings.Contains(line, `942100`) {
		t.Errorf("access log line: %s", line)
	}
	t.Log(line)
}

// TestWAFHTTPRoute: a plain HTTP route of a listener with a WAF is
// inspected too (the listener's WAF): a path traversal in its query is
// refused with 403 and never reaches the HTTP upstream; a clean request
// is proxied.
func TestWAFHTTPRoute(t *testing.T) {
	up := startHTTPUpstream(t, false)
	yaml := strings.Replace(httpRouteConfig(up.Addr, ""), "  - address: 127.0.0.1:0\n", "  - address: 127.0.0.1:0\n    waf: {}\n", 1)
	gw := StartGateway(t, yaml)
	before := up.hits.Load()
	r := get(t, "http://"+gw.Addr+"/legacy/file?name=..%2F..%2F..%2F..%2Fetc%2Fpasswd", nil)
	wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "edgegate: the request was refused by the web application firewall")
	if up.hits.Load() != before {
		t.Errorf("the refused request reached the HTTP upstream")
	}
	if s := decodeSeen(t, get(t, "http://"+gw.Addr+"/legacy/file?name=report.pdf", nil)); s.Path != "/file" {
		t.Errorf("clean request: upstream saw %+v", s)
	}
}
