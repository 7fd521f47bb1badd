package test

import (
	"log/slog"

	"bufio"
	"fmt"
	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/gateway"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// siteDir writes a site into a new directory, with a secret beside it
// (outside the root) and symbolic links that point in and out.
func siteDir(t *testing.T) (root string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "site")
	files := map[string]string{
		"index.html":       "<h1>home</h1>",
		"a.txt":            "0123456789abcdef",
		"sub/index.html":   "<h1>sub</h1>",
		"app.js":           strings.Repeat("console.log('app');\n", 100),
		".secret":          "hidden",
		".git/config":      "hidden",
		"sub/.env":         "hidden",
		"../secret.txt":    "TOP SECRET",
		"../outside/x.txt": "TOP SECRET",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	js := []byte(files["app.js"])
	for _, e := range []struct{ enc, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if err := os.WriteFile(filepath.Join(root, "app.js"+e.ext), encode(t, e.enc, js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out":    filepath.Join(base, "secret.txt"),
		"outdir": filepath.Join(base, "outside"),
		"in.txt": "a.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func staticGateway(t *testing.T, root string) *Gateway {
	up := StartEcho(t, "up")
	return StartGateway(t, EchoConfig(up.Addr)+fmt.Sprintf(`
http:
  compression: {min_bytes: 0}
  static:
    - {path_prefix: /site/, dir: %q, cache_control: "public, max-age=60"}
    - {path_prefix: /app/, dir: %q, spa_fallback: true}
    - {path_prefix: /welcome/, embedded: welcome}
`, root, root))
}

func get(t *testing.T, url string, hdr map[string]string) httpResult {
	t.Helper()
	return doHTTP(t, rawClient, http.MethodGet, url, "", hdr)
}

// TestStaticMount: files, index.html, MIME types, Cache-Control, ETag and
// Last-Modified with conditional requests, Range, precompressed siblings
// (passed as they are, never compressed again), dotfiles hidden, GET and
// HEAD only, a symbolic link inside the root followed.
func TestStaticMount(t *testing.T) {
	root := siteDir(t)
	gw := staticGateway(t, root)
	base := "http://" + gw.Addr
	r := get(t, base+"/site/", nil)
	if r.code != http.StatusOK || string(r.body) != "<h1>home</h1>" {
		t.Fatalf("index: HTTP %d %q", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("index Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=60" {
		t.Errorf("Cache-Control %q", cc)
	}
	etag, lm := r.header.Get("ETag"), r.header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no ETag (%q) or Last-Modified (%q)", etag, lm)
	}
	if r := get(t, base+"/site/", map[string]string{"If-None-Match": etag}); r.code != http.StatusNotModified {
		t.Errorf("If-None-Match: HTTP %d, want 304", r.code)
	}
	if r := get(t, base+"/site/", map[string]string{"If-Modified-Since": lm}); r.code != http.StatusNotModified {
		t.Errorf("If-Modified-Since: HTTP %d, want 304", r.code)
	}
	if r := get(t, base+"/site/", map[string]string{"If-None-Match": `"other"`}); r.code != http.StatusOK {
		t.Errorf("other ETag: HTTP %d, want 200", r.code)
	}
	if r := get(t, base+"/site", nil); r.code != http.StatusMovedPermanently {
		t.Errorf("/site: HTTP %d, want 301", r.code)
	}
	if r := get(t, base+"/site/sub/", nil); string(r.body) != "<h1>sub</h1>" {
		t.Errorf("sub/: HTTP %d %q", r.code, r.body)
	}
	r = get(t, base+"/site/a.txt", map[string]string{"Range": "bytes=4-7"})
	if r.code != http.StatusPartialContent || string(r.body) != "4567" || r.header.Get("Content-Range") != "bytes 4-7/16" {
		t.Errorf("Range: HTTP %d %q %q", r.code, r.body, r.header.Get("Content-Range"))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("a.txt Content-Type %q", ct)
	}
	if r := get(t, base+"/site/in.txt", nil); string(r.body) != "0123456789abcdef" {
		t.Errorf("link inside the root: HTTP %d %q", r.code, r.body)
	}
	js, err := os.ReadFile(filepath.Join(root, "app.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ accept, enc string }{{"br, gzip", "br"}, {"gzip", "gzip"}, {"zstd", "zstd"}, {"", ""}} {
		r := get(t, base+"/site/app.js", map[string]string{"Accept-Encoding": c.accept})
		if r.code != http.StatusOK || r.header.Get("Content-Encoding") != c.enc {
			t.Errorf("app.js for %q: HTTP %d, Content-Encoding %q, want %q", c.accept, r.code, r.header.Get("Content-Encoding"), c.enc)
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("app.js Content-Type %q", ct)
		}
		if !hasVary(r.header) {
			t.Errorf("app.js for %q: no Vary", c.accept)
		}
		body := r.body
		if c.enc != "" {
			body = decode(t, c.enc, body) // once: never compressed twice
		}
		if string(body) != string(js) {
			t.Errorf("app.js for %q: %d bytes decoded, want %d", c.accept, len(body), len(js))
		}
	}
	for _, p := range []string{"/site/.secret", "/site/.git/config", "/site/sub/.env", "/site/nothing", "/app/.secret"} {
		wantStatusJSON(t, get(t, base+p, nil), http.StatusNotFound, 5, "no file")
	}
	r = doHTTP(t, rawClient, http.MethodPost, base+"/site/a.txt", `{}`, nil)
	wantStatusJSON(t, r, http.StatusMethodNotAllowed, 12, "not allowed")
	if r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	if r := doHTTP(t, rawClient, http.MethodHead, base+"/site/a.txt", "", nil); r.code != http.StatusOK || len(r.body) != 0 {
		t.Errorf("HEAD: HTTP %d, %d bytes", r.code, len(r.body))
	}
}

// TestStaticSPAAndEmbedded: a single-page application's routes fall back
// to its index.html; the embedded welcome page is served with a content
// ETag that conditional requests use.
func TestStaticSPAAndEmbedded(t *testing.T) {
	gw := staticGateway(t, siteDir(t))
	base := "http://" + gw.Addr
	for _, p := range []string{"/app/", "/app/orders/42", "/app/deep/link/"} {
		if r := get(t, base+p, nil); r.code != http.StatusOK || string(r.body) != "<h1>home</h1>" {
			t.Errorf("%s: HTTP %d %q", p, r.code, r.body)
		}
	}
	r := get(t, base+"/welcome/", nil)
	if r.code != http.StatusOK || !strings.Contains(string(r.body), "edgegate") {
		t.Fatalf("welcome: HTTP %d %.80q", r.code, r.body)
	}
	if r.header.Get("Cache-Control") != "no-cache" || r.header.Get("ETag") == "" {
		t.Errorf("welcome: Cache-Control %q, ETag %q", r.header.Get("Cache-Control"), r.header.Get("ETag"))
	}
	if r2 := get(t, base+"/welcome/", map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.code != http.StatusNotModified {
		t.Errorf("welcome If-None-Match: HTTP %d", r2.code)
	}
	if r := get(t, base+"/welcome/style.css", nil); !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: HTTP %d %q", r.code, r.header.Get("Content-Type"))
	}
}

// rawGet sends target as the request line's target, byte for byte (no
// client cleans or encodes it), and returns the status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", target); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStaticTraversal: no request reaches a file outside the mount's
// root: "..", its encoded forms, symbolic links out of the root, NUL
// bytes, backslashes, empty segments. Each is refused (400 or 404) or
// answered within the root, never with the secret.
func TestStaticTraversal(t *testing.T) {
	gw := staticGateway(t, siteDir(t))
	for _, target := range []string{
		"/site/../secret.txt",
		"/site/sub/../../secret.txt",
		"/site/%2e%2e/secret.txt",
		"/site/%2E%2E/secret.txt",
		"/site/.%2e/secret.txt",
		"/site/%2e%2e%2fsecret.txt",
		"/site/..%2fsecret.txt",
		"/site/..%5csecret.txt",
		"/site/..\\secret.txt",
		"/site/%252e%252e/secret.txt",
		"/site/%c0%ae%c0%ae/secret.txt",
		"/site/out",
		"/site/outdir/x.txt",
		"/site/a.txt%00.html",
		"/site/%00",
		"/site//etc/passwd",
		"/site/%2fetc/passwd",
		"/app/../secret.txt",
		"/app/%2e%2e/secret.txt",
		"/app/out",
		"/app/outdir/x.txt",
		"/welcome/../static.go",
		"/welcome/%2e%2e/static.go",
	} {
		code, body := rawGet(t, gw.Addr, target)
		if strings.Contains(body, "TOP SECRET") || strings.Contains(body, "package static") {
			t.Errorf("%s: HTTP %d served what is outside the root", target, code)
			continue
		}
		spa := strings.HasPrefix(target, "/app/") && code == http.StatusOK && body == "<h1>home</h1>"
		if code != http.StatusBadRequest && code != http.StatusNotFound && !spa {
			t.Errorf("%s: HTTP %d %q, want 400 or 404", target, code, body)
		}
	}
}

// TestEdgeClaimsValidated: a configuration in which a path could be for a
// REST binding and a static mount (or an HTTP route) is refused by the
// dry-run build that `edgegate validate` runs, naming both entries, the
// one in the file at its line and column.
func TestEdgeClaimsValidated(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{`
http:
  static:
    - {path_prefix: /v1/, embedded: welcome}
`, `test.yaml:14:21: http.static[0].path_prefix: static mount /v1/ overlaps REST binding POST /v1/echo:unary (edgegate.testing.v1.EchoService/Unary, compiled)`},
		{`
http_clusters:
  - {name: web, endpoints: ["127.0.0.1:1"]}
http_routes:
  - {name: legacy, match: {path_prefix: /v1}, cluster: web}
`, `test.yaml:15:41: http_routes[0].match.path_prefix: HTTP route "legacy" (path_prefix /v1) overlaps REST binding`},
	} {
		yaml := EchoConfig("127.0.0.1:1") + c.extra
		cfg, err := config.Load("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = config.Place("test.yaml", []byte(yaml), gateway.Check(cfg, gateway.WithLogger(slog.New(slog.DiscardHandler))))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check: %v\nwant an error containing %q", err, c.want)
		}
	}
}
