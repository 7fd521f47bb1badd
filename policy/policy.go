// Package policy is the shape every policy of the gateway's chain takes.
//
// A policy is one package (interceptors/ipfilter, interceptors/auth,
// interceptors/ratelimit, …). It owns its part of the configuration and
// builds itself from it in two steps, as Caddy modules provision and
// grpc-go's authz.NewStatic refuses a bad policy before anything serves:
//
//   - New, once, when the gateway is built: what lives as long as the
//     gateway (stores, clients, hooks) and what is fixed at start;
//   - Compile, for every configuration (the first, every reload, and
//     `edgegate validate`): one typed instance per route that uses the
//     policy, put on the route with a Key, and whatever the configuration's
//     instances share, released by Build.OnClose when the configuration is
//     retired and its last call has ended.
//
// The policy's interceptor then reads the instance of the call's route
// with Key.From(ctx). Adding a policy is: its package, its config message,
// and one line in the gateway's chain (gateway/chain.go).
package policy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"google.golang.org/grpc"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/metrics"
)

// Policy is one policy of the chain, as the gateway drives it.
type Policy interface {
	// Name is the policy's name in logs and errors ("ip_filter").
	Name() string
	// Compile builds the policy's instances of one configuration into b.
	// It must start nothing that b.OnClose does not stop, and, when
	// b.DryRun, nothing at all that reaches the network. Errors name the
	// field path of what is wrong (config.FieldErrorf).
	Compile(b *Build) error
	// StreamServerInterceptor is the policy's interceptor. It reads the
	// instance of the call's route with its Key.
	StreamServerInterceptor() grpc.StreamServerInterceptor
	// Close releases what New built; the gateway calls it once, after the
	// last call.
	Close() error
}

// Deps are what the gateway gives every policy's New.
type Deps struct {
	// Log is the process log.
	Log *slog.Logger
	// Metrics are the gateway's collectors (rejections are counted there).
	Metrics *metrics.Metrics
	// DryRun is set for `edgegate validate`: build and check, start
	// nothing that reaches the network.
	DryRun bool
}

// Key names one kind of instance carried on a route; T is its type. Make
// one per policy, at package level, with NewKey.
type Key[T any] struct {
	id   int
	name string
}

var keys struct {
	mu sync.Mutex
	n  int
}

// NewKey returns a new key; name is for messages.
func NewKey[T any](name string) Key[T] {
	keys.mu.Lock()
	defer keys.mu.Unlock()
	k := Key[T]{id: keys.n, name: name}
	keys.n++
	return k
}

// Set is the compiled policy instances of one route, by key. It is
// written while its configuration is compiled and never changed after.
type Set struct {
	v []any
}

// Of returns the instance of k in s; the zero T when s is nil or has none.
func (k Key[T]) Of(s *Set) T {
	var zero T
	if s == nil || k.id >= len(s.v) || s.v[k.id] == nil {
		return zero
	}
	return s.v[k.id].(T)
}

// From returns the instance of k of the call's route (the Set the chain's
// resolve step put in ctx); the zero T when the call has no route or the
// route has none.
func (k Key[T]) From(ctx context.Context) T {
	return k.Of(FromContext(ctx))
}

func (k Key[T]) put(s *Set, v T) {
	if k.id >= len(s.v) {
		s.v = append(s.v, make([]any, k.id+1-len(s.v))...)
	}
	s.v[k.id] = v
}

// Build is one configuration being compiled: its routes' policy sets and
// the cleanups of what its instances share.
type Build struct {
	// Config is the configuration, loaded by package config.
	Config *configv1.Config
	// DryRun is set for `edgegate validate`.
	DryRun bool
	// Log is the process log.
	Log *slog.Logger

	routes  []*Set
	views   []*configv1.Route
	closers []func()
}

// NewBuild starts compiling cfg, whose routes get one Set each (in
// configuration order): its gRPC routes (Config.Routes, route i at index
// i), then its HTTP routes (Config.HttpRoutes, route j at index
// len(Routes)+j).
func NewBuild(cfg *configv1.Config, log *slog.Logger, dryRun bool) *Build {
	views := slices.Clone(cfg.GetRoutes())
	for _, h := range cfg.GetHttpRoutes() {
		views = append(views, &configv1.Route{
			Name: h.GetName(), Cluster: h.GetCluster(), Timeout: h.GetTimeout(),
			DisableAccessLog: h.GetDisableAccessLog(), RateLimits: h.GetRateLimits(),
			Auth: h.GetAuth(), IpFilter: h.GetIpFilter(),
		})
	}
	b := &Build{Config: cfg, DryRun: dryRun, Log: log, routes: make([]*Set, len(views)), views: views}
	for i := range b.routes {
		b.routes[i] = &Set{}
	}
	return b
}

// Routes are the routes a policy compiles for, by index (see NewBuild):
// the gRPC routes as they are, then each HTTP route as a Route with its
// name, cluster, timeout, access log switch and policy sections
// (rate_limits, auth, ip_filter). The caller must not modify them.
func (b *Build) Routes() []*configv1.Route { return b.views }

// Path is the field path of route i, for errors: "routes[i]", or
// "http_routes[j]" for an HTTP route.
func (b *Build) Path(i int) string {
	if n := len(b.Config.GetRoutes()); i >= n {
		return fmt.Sprintf("http_routes[%d]", i-n)
	}
	return fmt.Sprintf("routes[%d]", i)
}

// Put gives route i (its index in Routes) the instance v of k.
func Put[T any](b *Build, route int, k Key[T], v T) {
	if route < 0 || route >= len(b.routes) {
		panic(fmt.Sprintf("policy: %s: no route %d", k.name, route))
	}
	k.put(b.routes[route], v)
}

// Route returns the policy set of route i.
func (b *Build) Route(i int) *Set { return b.routes[i] }

// OnClose adds f to what runs when the configuration is retired and its
// last call has ended (or when the build fails), in reverse order.
func (b *Build) OnClose(f func()) { b.closers = append(b.closers, f) }

// Close runs the OnClose functions, last added first. It is idempotent;
// a nil Build has none.
func (b *Build) Close() {
	if b == nil {
		return
	}
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

type ctxKey struct{}

// Resolved is what the chain's resolve step puts in a call's context: the
// route's policy set (nil when the call has no route).
type Resolved interface {
	PolicySet() *Set
}

// NewContext returns ctx carrying r.
func NewContext(ctx context.Context, r Resolved) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// FromContext returns the policy set of the call's route, or nil.
func FromContext(ctx context.Context) *Set {
	if r, ok := ctx.Value(ctxKey{}).(Resolved); ok {
		return r.PolicySet()
	}
	return nil
}

// ResolvedFrom returns what the resolve step put in ctx, or nil.
func ResolvedFrom(ctx context.Context) Resolved {
	r, _ := ctx.Value(ctxKey{}).(Resolved)
	return r
}
