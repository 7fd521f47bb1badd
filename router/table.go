package router

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/policy"
)

// Route is one compiled route. It is never modified after Compile.
type Route struct {
	// Name is the route's name from the configuration.
	Name string
	// Kind is what the route matches by: "method", "service", "package" or
	// "default".
	Kind string
	// Pattern is the matched method ("pkg.Service/Method"), service or
	// package; empty for the default route.
	Pattern string
	// Cluster is the name of the upstream cluster.
	Cluster string
	// Timeout, when positive, bounds every call on the route.
	Timeout time.Duration
	// DisableAccessLog turns the access log off for the route's calls.
	DisableAccessLog bool
	// Policies are the route's compiled policy instances (package policy);
	// nil when Compile was given none.
	Policies *policy.Set
	// MaxConcurrent, when positive, bounds the route's calls in flight.
	MaxConcurrent int64

	inFlight atomic.Int64
}

// Match describes what the route matches, for humans: "service shop.v1.S".
func (r *Route) Match() string {
	if r.Kind == "default" {
		return "default"
	}
	return r.Kind + " " + r.Pattern
}

// Table maps a gRPC method to its route. It is immutable and safe for
// concurrent use.
type Table struct {
	methods  map[string]*Route // by "pkg.Service/Method"
	services map[string]*Route // by "pkg.Service"
	packages map[string]*Route // by "pkg"
	def      *Route
	routes   []*Route // in configuration order
	local    map[string]*Local
	http     map[string]*Route // the HTTP routes, by name
	httpList []*Route          // in configuration order
}

// Compile builds the route table of cfg, which must have been loaded by
// package config (names filled in, clusters checked); the routes carry the
// policy sets of b (nil for none), route i the set b.Route(i). It returns
// an error for a route whose match cannot be compiled or repeats another's.
func Compile(cfg *configv1.Config, b *policy.Build) (*Table, error) {
	t := &Table{
		methods:  map[string]*Route{},
		services: map[string]*Route{},
		packages: map[string]*Route{},
	}
	for i, rc := range cfg.GetRoutes() {
		r := &Route{
			Name: rc.GetName(), Cluster: rc.GetCluster(), Timeout: rc.GetTimeout().AsDuration(),
			DisableAccessLog: rc.GetDisableAccessLog(),
			MaxConcurrent:    int64(rc.GetMaxConcurrentCalls()),
		}
		if b != nil {
			r.Policies = b.Route(i)
		}
		var (
			m   map[string]*Route
			key string
		)
		switch k := rc.GetMatch().GetKind().(type) {
		case *configv1.RouteMatch_Method:
			r.Kind, r.Pattern = "method", strings.TrimPrefix(k.Method, "/")
			m, key = t.methods, r.Pattern
		case *configv1.RouteMatch_Service:
			r.Kind, r.Pattern = "service", k.Service
			m, key = t.services, k.Service
		case *configv1.RouteMatch_Package:
			r.Kind, r.Pattern = "package", k.Package
			m, key = t.packages, k.Package
		case *configv1.RouteMatch_Default:
			r.Kind = "default"
			if t.def != nil {
				return nil, fmt.Errorf("routes[%d].match.default: route %q is the default already", i, t.def.Name)
			}
			t.def = r
		default:
			return nil, fmt.Errorf("routes[%d].match: no match", i)
		}
		if m != nil {
			if prev, dup := m[key]; dup {
				return nil, fmt.Errorf("routes[%d].match.%s: route %q matches %s already", i, r.Kind, prev.Name, r.Pattern)
			}
			m[key] = r
		}
		t.routes = append(t.routes, r)
	}
	t.http = make(map[string]*Route, len(cfg.GetHttpRoutes()))
	for j, hc := range cfg.GetHttpRoutes() {
		r := &Route{
			Name: hc.GetName(), Kind: "http", Pattern: HTTPPattern(hc.GetMatch()), Cluster: hc.GetCluster(),
			Timeout: hc.GetTimeout().AsDuration(), DisableAccessLog: hc.GetDisableAccessLog(),
		}
		if b != nil {
			r.Policies = b.Route(len(cfg.GetRoutes()) + j)
		}
		if prev, dup := t.http[r.Name]; dup {
			return nil, fmt.Errorf("http_routes[%d].name: HTTP route %q is named so already", j, prev.Name)
		}
		t.http[r.Name] = r
		t.httpList = append(t.httpList, r)
	}
	return t, nil
}

// HTTPPattern describes an HTTP route's match for humans:
// "GET,POST host=a.example path=/legacy/".
func HTTPPattern(m *configv1.HTTPRouteMatch) string {
	var parts []string
	if len(m.GetMethods()) > 0 {
		parts = append(parts, strings.Join(m.GetMethods(), ","))
	}
	if len(m.GetHosts()) > 0 {
		parts = append(parts, "host="+strings.Join(m.GetHosts(), ","))
	}
	if m.GetPathPrefix() != "" {
		parts = append(parts, "prefix="+m.GetPathPrefix())
	}
	if m.GetPathTemplate() != "" {
		parts = append(parts, "template="+m.GetPathTemplate())
	}
	for _, k := range slices.Sorted(maps.Keys(m.GetHeaders())) {
		parts = append(parts, "header "+k+"="+m.GetHeaders()[k])
	}
	return strings.Join(parts, " ")
}

// HTTPMethodPrefix starts the method name of a call through the chain for
// an HTTP route ("/edgegate.http/" and the route's name); such a call's
// route is the one WithHTTPRoute names, never a gRPC route.
const HTTPMethodPrefix = "/edgegate.http/"

type httpRouteKey struct{}

// WithHTTPRoute returns ctx naming the HTTP route of a call the HTTP door
// runs through the chain (the chain's resolve step reads it).
func WithHTTPRoute(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, httpRouteKey{}, name)
}

// lookupCall is the route of a call of fullMethod with context ctx: an
// HTTP route for an HTTP door's call, else a composite's route or Lookup.
func (t *Table) lookupCall(ctx context.Context, fullMethod string) *Route {
	if strings.HasPrefix(fullMethod, HTTPMethodPrefix) {
		if name, ok := ctx.Value(httpRouteKey{}).(string); ok {
			return t.http[name]
		}
		return nil
	}
	return t.lookupAny(fullMethod)
}

// HTTPRoutes returns the HTTP routes in configuration order. The caller
// must not modify them.
func (t *Table) HTTPRoutes() []*Route { return t.httpList }

// Lookup returns the route of fullMethod ("/pkg.Service/Method"; the
// leading slash is optional), or nil when no route matches. The most specific match wins: the exact method,
// then the service, then the longest package prefix, then the default
// route. Lookup does not allocate.
func (t *Table) Lookup(fullMethod string) *Route {
	svc := strings.TrimPrefix(fullMethod, "/")
	if r, ok := t.methods[svc]; ok {
		return r
	}
	if i := strings.LastIndexByte(svc, '/'); i >= 0 {
		svc = svc[:i]
	}
	if r, ok := t.services[svc]; ok {
		return r
	}
	if len(t.packages) > 0 {
		pkg := svc
		for {
			i := strings.LastIndexByte(pkg, '.')
			if i < 0 {
				break
			}
			pkg = pkg[:i]
			if r, ok := t.packages[pkg]; ok {
				return r
			}
		}
	}
	return t.def
}

// Routes returns the routes in configuration order. The caller must not
// modify them.
func (t *Table) Routes() []*Route { return t.routes }

// HTTPRoute is one REST binding, for WriteHTTP.
type HTTPRoute struct {
	Verb, Path, FullMethod string
	// Source is where the binding comes from ("compiled", "file:PATH",
	// "reflection:CLUSTER").
	Source string
}

// WriteHTTP prints REST bindings with the route and cluster each one's
// method takes, and where the binding comes from:
// "GET /v1/... → pkg.Service/Method → cluster compiled".
func (t *Table) WriteHTTP(w io.Writer, routes []HTTPRoute) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "HTTP\tPATH\t\tMETHOD\t\tCLUSTER\tSOURCE")
	for _, hr := range routes {
		cluster := "(no route: 501)"
		if l := t.Local(hr.FullMethod); l != nil {
			cluster = "composite " + l.Route.Name
		} else if r := t.Lookup(hr.FullMethod); r != nil {
			cluster = r.Cluster
		}
		fmt.Fprintf(tw, "%s\t%s\t→\t%s\t→\t%s\t%s\n", hr.Verb, hr.Path, strings.TrimPrefix(hr.FullMethod, "/"), cluster, hr.Source)
	}
	return tw.Flush()
}

// Write prints the table as aligned columns: route, match, cluster,
// timeout, in configuration order.
func (t *Table) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tMATCH\tCLUSTER\tTIMEOUT")
	for _, r := range t.routes {
		timeout := "-"
		if r.Timeout > 0 {
			timeout = r.Timeout.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Match(), r.Cluster, timeout)
	}
	for _, r := range t.httpList {
		timeout := "-"
		if r.Timeout > 0 {
			timeout = r.Timeout.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Match(), "http:"+r.Cluster, timeout)
	}
	return tw.Flush()
}
