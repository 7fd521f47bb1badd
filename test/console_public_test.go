package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// publicConsoleConfig routes the echo upstream at addr behind the API
// key provider "keys" and serves the console on the public listener
// behind the same provider, for the principal console-user only.
func publicConsoleConfig(addr, key, other string) string {
	return fmt.Sprintf(`
listeners:
  - {name: public, address: 127.0.0.1:0}
clusters:
  - {name: echo, endpoints: [%q]}
routes:
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo, auth: {providers: [keys]}}
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: console-user}, {sha256: %q, principal: someone}]}
http:
  console: {auth: {providers: [keys], allowed_identities: [console-user]}}
`, addr, authint.HashKey(key), authint.HashKey(other))
}

// TestConsolePublic serves the console on the public listener behind
// http.console.auth: its page, assets and API refuse a request without
// the API key or with a wrong one (401, WWW-Authenticate, a
// google.rpc.Status body) and a key whose principal the rule does not
// allow (403); with the right key the page is served, the routes are
// listed with the listener's own doors as where calls go, and a call made
// there passes the route's own auth. The admin server's console is
// unchanged: served without a credential.
func TestConsolePublic(t *testing.T) {
	const key, other = "public-console-k3y", "other-k3y"
	up := StartEcho(t, "up")
	gw := StartGateway(t, publicConsoleConfig(up.Addr, key, other))
	base := "http://" + gw.Addr
	paths := []string{"/console/", "/console/console.js", "/console/console.css", "/console/api/methods", "/console/api/descriptors"}

	for _, p := range paths {
		t.Run("no credential "+p, func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+p, "", nil)
			wantStatusJSON(t, r, http.StatusUnauthorized, codes.Unauthenticated, "authentication required (keys)")
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, "x-api-key") {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
		t.Run("wrong key "+p, func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+p, "", map[string]string{"x-api-key": "nope"})
			wantStatusJSON(t, r, http.StatusUnauthorized, codes.Unauthenticated, "keys")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
		})
		t.Run("a principal the rule denies "+p, func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+p, "", map[string]string{"x-api-key": other})
			wantStatusJSON(t, r, http.StatusForbidden, codes.PermissionDenied, "identity is not allowed")
		})
		t.Run("the right key "+p, func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+p, "", map[string]string{"x-api-key": key})
			if r.code != http.StatusOK || len(r.body) < 100 {
				t.Errorf("HTTP %d, %d bytes: %.200s", r.code, len(r.body), r.body)
			}
		})
	}

	t.Run("routes listed, calls to the listener's doors", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/console/api/methods", "", map[string]string{"x-api-key": key})
		var got struct {
			Address  string `json:"address"`
			CallBase string `json:"call_base"`
			CanCall  bool   `json:"can_call"`
			Methods  []struct {
				Full     string `json:"full"`
				Route    string `json:"route"`
				Bindings []struct{ Verb, Path string }
			} `json:"methods"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		if got.Address != gw.Addr || got.CallBase != "/" || !got.CanCall {
			t.Errorf("address %q call_base %q can_call %v", got.Address, got.CallBase, got.CanCall)
		}
		var unary string
		for _, m := range got.Methods {
			if m.Full == "/edgegate.testing.v1.EchoService/Unary" && m.Route == "echo" && len(m.Bindings) > 0 {
				unary = m.Bindings[0].Path
			}
		}
		if unary == "" {
			t.Fatalf("no routed Unary with a REST binding in %s", r.body)
		}
		// The call the page makes: the listener's REST door, with the
		// route's own auth.
		call := doHTTP(t, nil, "POST", base+unary, `{"message": "via the public console"}`, map[string]string{"x-api-key": key})
		if call.code != 200 || !strings.Contains(string(call.body), "via the public console") {
			t.Errorf("call: %d %s", call.code, call.body)
		}
		wantStatusJSON(t, doHTTP(t, nil, "POST", base+unary, `{"message": "x"}`, nil), http.StatusUnauthorized, codes.Unauthenticated, "keys")
	})

	t.Run("no call/ mount on the public console", func(t *testing.T) {
		r := doHTTP(t, nil, "POST", base+"/console/call/v1/echo:unary", `{}`, map[string]string{"x-api-key": key})
		if r.code != http.StatusNotFound {
			t.Errorf("HTTP %d, want 404: %s", r.code, r.body)
		}
	})

	t.Run("the admin console unchanged", func(t *testing.T) {
		for _, p := range paths {
			if code, body := adminGet(t, gw, p); code != 200 || len(body) < 100 {
				t.Errorf("admin %s: %d, %d bytes", p, code, len(body))
			}
		}
	})
}

// TestConsolePublicConfig checks http.console in a dry run: auth is
// required, with providers or allow_anonymous; an unknown provider is an
// error at its field; a prefix that overlaps a static mount or a REST
// binding is an error naming both.
func TestConsolePublicConfig(t *testing.T) {
	up := StartEcho(t, "up")
	base := strings.Replace(publicConsoleConfig(up.Addr, "a", "b"),
		"  console: {auth: {providers: [keys], allowed_identities: [console-user]}}\n", "", 1)
	for _, tc := range []struct{ name, http, want string }{
		{"no auth", "  console: {path_prefix: /console/}\n", "http.console.auth"},
		{"neither providers nor allow_anonymous", "  console: {auth: {required_scopes: [x]}}\n", "http.console.auth: the public console needs providers, or allow_anonymous"},
		{"unknown provider", "  console: {auth: {providers: [nope]}}\n", `test.yaml:12:32: http.console.auth.providers[0]: unknown auth provider "nope"`},
		{"a bad prefix", "  console: {path_prefix: console, auth: {allow_anonymous: true}}\n", "http.console.path_prefix"},
		{"over a static mount", "  console: {path_prefix: /site/, auth: {allow_anonymous: true}}\n  static: [{path_prefix: /site/app/, embedded: welcome}]\n",
			"the console /site/ overlaps static mount /site/app/"},
		{"over a REST binding", "  console: {path_prefix: /v1/, auth: {allow_anonymous: true}}\n", "the console /v1/ overlaps REST binding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate("test.yaml", base+tc.http)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v\nwant %q in it", err, tc.want)
			}
		})
	}
	t.Run("open to everyone, said so", func(t *testing.T) {
		if err := validate("test.yaml", base+"  console: {auth: {allow_anonymous: true}}\n"); err != nil {
			t.Error(err)
		}
	})
}

// TestConsolePublicBrowser runs the public console in Chromium: the
// console is behind the provider "staff" (its header sent with every
// request, as an authenticating proxy in front would), the echo route
// behind "keys"; a call without the auth field is refused by the route,
// and with the route's key in the auth field it is answered, over gRPC-Web
// and REST through the listener's own doors.
func TestConsolePublicBrowser(t *testing.T) {
	const staff, key = "staff-k3y", "route-k3y"
	up := StartEcho(t, "up")
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - {name: public, address: 127.0.0.1:0}
clusters:
  - {name: echo, endpoints: [%q]}
routes:
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo, auth: {providers: [keys]}}
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: caller}]}
  - name: staff
    api_key: {header: x-staff-key, keys: [{sha256: %q, principal: staff}]}
http:
  console: {path_prefix: /ui/console/, auth: {providers: [staff]}}
`, up.Addr, authint.HashKey(key), authint.HashKey(staff)))
	b := StartBrowser(t)
	b.Do(t, "headers", map[string]any{"headers": map[string]string{"x-staff-key": staff}}, nil)
	b.Goto(t, "http://"+gw.Addr+"/ui/console/")
	b.Do(t, "waitCount", map[string]any{"sel": ".method", "n": 1}, nil)
	var listener string
	b.Do(t, "text", map[string]any{"sel": "#listener"}, &listener)
	if !strings.Contains(listener, gw.Addr) {
		t.Errorf("listener line %q, want %s in it", listener, gw.Addr)
	}
	call := func(t *testing.T, transport, want string) {
		t.Helper()
		b.Do(t, "click", map[string]any{"sel": `.method[data-full="/edgegate.testing.v1.EchoService/Unary"]`}, nil)
		b.Do(t, "select", map[string]any{"sel": "#transport", "value": transport}, nil)
		b.Do(t, "fill", map[string]any{"sel": "#request", "value": `{"message": "hi public console"}`}, nil)
		b.Do(t, "click", map[string]any{"sel": "#call"}, nil)
		b.Do(t, "waitText", map[string]any{"sel": "#status", "text": want}, nil)
	}
	call(t, "grpc-web", "UNAUTHENTICATED")
	b.Do(t, "select", map[string]any{"sel": "#auth-kind", "value": "apikey"}, nil)
	b.Do(t, "fill", map[string]any{"sel": "#auth", "value": key}, nil)
	for _, tr := range []string{"grpc-web", "rest:0"} {
		t.Run(tr, func(t *testing.T) {
			call(t, tr, "OK")
			var msgs []string
			b.Do(t, "texts", map[string]any{"sel": "#messages li"}, &msgs)
			if len(msgs) != 1 || !strings.Contains(msgs[0], "hi public console") {
				t.Errorf("messages %q", msgs)
			}
		})
	}
}

// TestConsolePublicJWT puts the public console behind the JWT provider
// (bearer token or cookie, the way a browser sends one by itself), with a
// required scope and a CEL rule over the request line: a valid token with
// the scope gets the page, one without it or a path the rule refuses is
// 403, an expired one 401.
func TestConsolePublicJWT(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	gw := StartGateway(t, strings.Replace(authConfig(up.Addr, je.jwksFile, authint.HashKey("k"), `{providers: [users]}`), "\nhttp:\n",
		"\nhttp:\n"+`  console: {auth: {providers: [users], required_scopes: [console], cel: 'headers[":path"] != "/console/api/descriptors"'}}`+"\n", 1))
	base := "http://" + gw.Addr
	good := je.token(t, "alice", "console", time.Now().Add(time.Hour), nil)
	for _, c := range []struct {
		name, path string
		hdr        map[string]string
		code       int
	}{
		{"bearer token", "/console/", map[string]string{"authorization": "Bearer " + good}, 200},
		{"token in the cookie", "/console/console.js", map[string]string{"cookie": "session=" + good}, 200},
		{"no token", "/console/api/methods", nil, 401},
		{"expired token", "/console/", map[string]string{"authorization": "Bearer " + je.token(t, "alice", "console", time.Now().Add(-time.Hour), nil)}, 401},
		{"missing scope", "/console/", map[string]string{"authorization": "Bearer " + je.token(t, "bob", "other", time.Now().Add(time.Hour), nil)}, 403},
		{"a path the rule refuses", "/console/api/descriptors", map[string]string{"authorization": "Bearer " + good}, 403},
	} {
		r := doHTTP(t, nil, "GET", base+c.path, "", c.hdr)
		if r.code != c.code {
			t.Errorf("%s: HTTP %d, want %d: %.200s", c.name, r.code, c.code, r.body)
		}
		if c.code == 401 && !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", c.name, r.header.Get("WWW-Authenticate"))
		}
		if c.code == 403 {
			wantStatusJSON(t, r, 403, codes.PermissionDenied, "permission denied")
		}
	}
}
