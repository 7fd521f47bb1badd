package cache

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/policy"
)

func compile(t *testing.T, yaml string) (*policy.Build, error) {
	t.Helper()
	cfg, err := config.Load("test.yaml", []byte(`
listeners: [{address: 127.0.0.1:0}]
clusters: [{name: c, endpoints: ["127.0.0.1:1"]}]
`+yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, policy.Deps{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	b := policy.NewBuild(cfg, nil, true)
	return b, p.Compile(b)
}

func TestCompile(t *testing.T) {
	b, err := compile(t, `
routes:
  - {name: a, match: {service: x.A}, cluster: c, cache: {ttl: 5s, vary: [X-Tenant], negative: [{code: not_found, ttl: 1s}], scope: shared}}
  - {name: b, match: {service: x.B}, cluster: c}
`)
	if err != nil {
		t.Fatal(err)
	}
	r := key.Of(b.Route(0))
	if r == nil || r.ttl != 5*time.Second || !r.shared || r.vary[0] != "x-tenant" || r.negative[codes.NotFound] != time.Second || !r.httpStatus || !r.grpcStatus {
		t.Fatalf("rule %+v", r)
	}
	if key.Of(b.Route(1)) != nil {
		t.Fatal("a route without cache has a rule")
	}
}

// TestCompileErrors: each error names its field.
func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`routes: [{match: {service: x.A}, cluster: c, cache: {ttl: 5s, negative: [{code: NOPE, ttl: 1s}]}}]`, `routes[0].cache.negative[0].code: "NOPE" is not an error code`},
		{`routes: [{match: {service: x.A}, cluster: c, cache: {ttl: 5s, negative: [{code: OK, ttl: 1s}]}}]`, `routes[0].cache.negative[0].code: "OK" is not an error code`},
		{`routes: [{match: {service: x.A}, cluster: c, cache: {ttl: 5s, vary: ["x y"]}}]`, `routes[0].cache.vary[0]: "x y" is not a metadata key`},
		{"cache: {redis: true}\n", `cache.redis: the Redis tier needs the redis section`},
	} {
		_, err := compile(t, c.yaml)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestParseCacheControl(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want cacheControl
	}{
		{nil, cacheControl{maxAge: -1, sMaxAge: -1}},
		{[]string{"max-age=60, s-maxage=\"10\""}, cacheControl{maxAge: time.Minute, sMaxAge: 10 * time.Second}},
		{[]string{"No-Store", "private"}, cacheControl{noStore: true, private: true, maxAge: -1, sMaxAge: -1}},
		{[]string{"no-cache, max-age=abc"}, cacheControl{noCache: true, sMaxAge: -1}},
	} {
		if got := parseCacheControl(c.in); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
}
