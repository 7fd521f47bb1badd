package router_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
)

var update = flag.Bool("update", false, "rewrite golden files")

// compile loads yamlText with package config and compiles its routes.
func compile(t testing.TB, yamlText string) *router.Table {
	t.Helper()
	cfg, err := config.Load(t.Name()+".yaml", []byte(yamlText))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	tbl, err := router.Compile(cfg, nil)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

const precedenceYAML = `
listeners: [{address: ':8080'}]
clusters:
  - {name: c, endpoints: ['c:1']}
routes:
  - {name: pkg-shop, match: {package: shop}, cluster: c}
  - {name: pkg-orders, match: {package: shop.orders}, cluster: c}
  - {name: pkg-orders-v1, match: {package: shop.orders.v1}, cluster: c}
  - {name: svc, match: {service: shop.v1.S}, cluster: c}
  - {name: method, match: {method: shop.v1.S/Get}, cluster: c}
  - {name: method-in-pkg, match: {method: shop.orders.v1.O/Special}, cluster: c}
  - {name: svc-no-pkg, match: {service: Bare}, cluster: c}
  - {name: def, match: {default: true}, cluster: c}
`

func TestLookupPrecedence(t *testing.T) {
	tbl := compile(t, precedenceYAML)
	for _, tc := range []struct {
		method string
		want   string // route name
	}{
		// The exact method wins over its service and package.
		{"/shop.v1.S/Get", "method"},
		{"/shop.orders.v1.O/Special", "method-in-pkg"},
		// Then the service.
		{"/shop.v1.S/Other", "svc"},
		{"/Bare/M", "svc-no-pkg"},
		// Then the longest package prefix.
		{"/shop.orders.v1.O/Get", "pkg-orders-v1"},
		{"/shop.orders.v2.O/Get", "pkg-orders"},
		{"/shop.orders.O/Get", "pkg-orders"},
		{"/shop.v2.S/Get", "pkg-shop"},
		{"/shop.S/Get", "pkg-shop"},
		// A package matches whole dot-separated names only.
		{"/shopping.v1.S/Get", "def"},
		{"/shop2.v1.S/Get", "def"},
		{"/shop.ordersx.v1.O/Get", "pkg-shop"},
		// A service named like a package is not in that package.
		{"/shop/Get", "def"},
		// Then the default.
		{"/other.v1.S/Get", "def"},
		{"/", "def"},
		{"", "def"},
		// Without the leading slash, services and packages match too.
		{"shop.v1.S/Other", "svc"},
		{"shop.orders.v1.O/Get", "pkg-orders-v1"},
		{"other.v1.S/Get", "def"},
	} {
		got := tbl.Lookup(tc.method)
		if got == nil {
			t.Errorf("Lookup(%q) = nil, want route %q", tc.method, tc.want)
			continue
		}
		if got.Name != tc.want {
			t.Errorf("Lookup(%q) = route %q (%s), want %q", tc.method, got.Name, got.Match(), tc.want)
		}
	}
}

func TestLookupPackageIsNotAWordPrefix(t *testing.T) {
	tbl := compile(t, `
listeners: [{address: ':8080'}]
clusters: [{name: c, endpoints: ['c:1']}]
routes: [{name: shop, match: {package: shop}, cluster: c}]
`)
	if r := tbl.Lookup("/shopping.v1.S/M"); r != nil {
		t.Errorf("Lookup(/shopping.v1.S/M) = route %q, want nil: package shop does not hold shopping.v1", r.Name)
	}
	if r := tbl.Lookup("/shop.v1.S/M"); r == nil || r.Name != "shop" {
		t.Errorf("Lookup(/shop.v1.S/M) = %v, want route shop", r)
	}
}

// Lookup documents "/pkg.Service/Method" but strips an absent leading slash
// for services and packages; a method route should then match too.
func TestLookupMethodWithoutLeadingSlash(t *testing.T) {
	tbl := compile(t, precedenceYAML)
	if r := tbl.Lookup("shop.v1.S/Get"); r == nil || r.Name != "method" {
		t.Fatalf("Lookup(shop.v1.S/Get) = %v, want route method", r)
	}
}

func TestLookupNoDefault(t *testing.T) {
	tbl := compile(t, `
listeners: [{address: ':8080'}]
clusters: [{name: c, endpoints: ['c:1']}]
routes:
  - {name: m, match: {method: a.v1.S/M}, cluster: c}
  - {name: s, match: {service: b.v1.S}, cluster: c}
  - {name: p, match: {package: c}, cluster: c}
`)
	for _, m := range []string{"/a.v1.S/Other", "/b.v2.S/M", "/cc.v1.S/M", "/x.S/M", "", "/"} {
		if r := tbl.Lookup(m); r != nil {
			t.Errorf("Lookup(%q) = route %q, want nil", m, r.Name)
		}
	}
	if r := tbl.Lookup("/a.v1.S/M"); r == nil || r.Name != "m" {
		t.Errorf("Lookup(/a.v1.S/M) = %v, want route m", r)
	}

	empty := compile(t, "listeners: [{address: ':8080'}]\n")
	if r := empty.Lookup("/a.v1.S/M"); r != nil {
		t.Errorf("empty table: Lookup = %v, want nil", r)
	}
	if n := len(empty.Routes()); n != 0 {
		t.Errorf("empty table has %d routes", n)
	}
}

func TestCompileRoutes(t *testing.T) {
	tbl := compile(t, `
listeners: [{address: ':8080'}]
clusters: [{name: c, endpoints: ['c:1']}, {name: d, endpoints: ['d:1']}]
routes:
  - {name: m, match: {method: a.v1.S/M}, cluster: c, timeout: 2s, disable_access_log: true}
  - {match: {service: b.v1.S}, cluster: d}
  - {name: p, match: {package: c}, cluster: c, timeout: 100ms}
  - {name: def, match: {default: true}, cluster: d}
`)
	type plain struct {
		Name, Kind, Pattern, Cluster string
		Timeout                      time.Duration
		DisableAccessLog             bool
	}
	want := []plain{
		{Name: "m", Kind: "method", Pattern: "a.v1.S/M", Cluster: "c", Timeout: 2 * time.Second, DisableAccessLog: true},
		{Name: "route-1", Kind: "service", Pattern: "b.v1.S", Cluster: "d"},
		{Name: "p", Kind: "package", Pattern: "c", Cluster: "c", Timeout: 100 * time.Millisecond},
		{Name: "def", Kind: "default", Cluster: "d"},
	}
	wantMatch := []string{"method a.v1.S/M", "service b.v1.S", "package c", "default"}
	got := tbl.Routes()
	if len(got) != len(want) {
		t.Fatalf("got %d routes, want %d", len(got), len(want))
	}
	for i := range want {
		g := got[i]
		if p := (plain{g.Name, g.Kind, g.Pattern, g.Cluster, g.Timeout, g.DisableAccessLog}); p != want[i] {
			t.Errorf("routes[%d] = %+v, want %+v", i, p, want[i])
		}
		if m := got[i].Match(); m != wantMatch[i] {
			t.Errorf("routes[%d].Match() = %q, want %q", i, m, wantMatch[i])
		}
	}
	// Lookup returns the table's own routes.
	if tbl.Lookup("/a.v1.S/M") != got[0] || tbl.Lookup("/zzz.S/M") != got[3] {
		t.Error("Lookup does not return the routes of Routes()")
	}
}

func route(name string, m *configv1.RouteMatch) *configv1.Route {
	return &configv1.Route{Name: name, Match: m, Cluster: "c"}
}

func TestCompileErrors(t *testing.T) {
	def := &configv1.RouteMatch{Kind: &configv1.RouteMatch_Default{Default: true}}
	method := func(s string) *configv1.RouteMatch {
		return &configv1.RouteMatch{Kind: &configv1.RouteMatch_Method{Method: s}}
	}
	svc := &configv1.RouteMatch{Kind: &configv1.RouteMatch_Service{Service: "a.S"}}
	pkg := &configv1.RouteMatch{Kind: &configv1.RouteMatch_Package{Package: "a"}}
	for _, tc := range []struct {
		name   string
		routes []*configv1.Route
		want   string
	}{
		{"two defaults", []*configv1.Route{route("d1", def), route("x", pkg), route("d2", def)},
			`routes[2].match.default: route "d1" is the default already`},
		{"same method, one with slash", []*configv1.Route{route("m1", method("a.S/M")), route("m2", method("/a.S/M"))},
			`routes[1].match.method: route "m1" matches a.S/M already`},
		{"same service", []*configv1.Route{route("s1", svc), route("s2", svc)},
			`routes[1].match.service: route "s1" matches a.S already`},
		{"same package", []*configv1.Route{route("p1", pkg), route("p2", pkg)},
			`routes[1].match.package: route "p1" matches a already`},
		{"no match", []*configv1.Route{route("p", pkg), route("none", nil)},
			`routes[1].match: no match`},
		{"empty match", []*configv1.Route{route("none", &configv1.RouteMatch{})},
			`routes[0].match: no match`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := router.Compile(&configv1.Config{Routes: tc.routes}, nil)
			if err == nil {
				t.Fatalf("Compile succeeded with %d routes, want error %q", len(tbl.Routes()), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Compile error = %q, want %q", err, tc.want)
			}
		})
	}
}

// A method written with a leading slash (only possible when the config was
// not loaded by package config) is the same route.
func TestCompileMethodWithSlash(t *testing.T) {
	tbl, err := router.Compile(&configv1.Config{Routes: []*configv1.Route{{
		Name:    "m",
		Match:   &configv1.RouteMatch{Kind: &configv1.RouteMatch_Method{Method: "/a.v1.S/M"}},
		Cluster: "c",
		Timeout: durationpb.New(time.Second),
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := tbl.Lookup("/a.v1.S/M")
	if r == nil || r.Pattern != "a.v1.S/M" || r.Timeout != time.Second {
		t.Errorf("Lookup = %+v, want pattern a.v1.S/M, timeout 1s", r)
	}
}

func TestWriteGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			cfg, err := config.LoadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := router.Compile(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := tbl.Write(&got); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Write differs from %s (run go test -update to accept)\n--- got ---\n%s--- want ---\n%s", golden, got.Bytes(), want)
			}
		})
	}
}

var lookupMethods = []struct{ name, method string }{
	{"method", "/shop.v1.S/Get"},
	{"service", "/shop.v1.S/Other"},
	{"longest-package", "/shop.orders.v1.O/Get"},
	{"shortest-package", "/shop.v9.S/Get"},
	{"default", "/other.v1.S/Get"},
	{"no-leading-slash", "shop.v1.S/Other"},
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tbl := compile(t, precedenceYAML)
	for _, m := range lookupMethods {
		if n := testing.AllocsPerRun(100, func() { _ = tbl.Lookup(m.method) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times per call, want 0", m.method, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tbl := compile(b, precedenceYAML)
	for _, m := range lookupMethods {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tbl.Lookup(m.method)
			}
		})
	}
}
