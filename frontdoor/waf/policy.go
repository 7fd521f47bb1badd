package waf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/frontdoor"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/policy"
)

// key carries a route's firewalls, one per listener.
var key = policy.NewKey[*RouteFirewalls]("waf")

// RouteFirewalls are the firewalls of one route: by listener (index in
// the configuration), nil where the route is not inspected.
type RouteFirewalls struct {
	byListener []*Firewall
}

// Policy is the WAF as a policy of the gateway: it compiles the
// listeners' firewalls once (listeners are fixed at start) and every
// configuration's routes' (each the listener's merged with the route's),
// sharing rule sets through its Cache. It has no interceptor: the HTTP
// handler calls the firewall (For) before the door serves a request.
type Policy struct {
	listeners []*configv1.WAF
	global    []*Firewall
	release   []func()
	cache     *Cache
	metrics   *Metrics
	routed    sync.Map // *policy.Build → struct{}: builds with a route's WAF
}

// New compiles the listeners' firewalls of cfg; m counts what they see.
func New(cfg *configv1.Config, d policy.Deps) (*Policy, error) {
	p := &Policy{cache: NewCache()}
	if d.Metrics != nil {
		p.metrics = NewMetrics(d.Metrics.Registry)
		d.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgegate_waf_rule_set_compiles_total",
			Help: "Rule sets the web application firewall compiled (a reload reuses those whose directives did not change).",
		}, func() float64 { return float64(p.cache.Compiles()) }))
	}
	for i, l := range cfg.GetListeners() {
		if l.GetWaf() != nil && frontdoor.IsGRPCOnly(l) {
			_ = p.Close()
			return nil, fieldErr(fmt.Sprintf("listeners[%d].waf", i), errors.New("a dedicated native gRPC port has no REST or gRPC-Web door to inspect (native gRPC is never inspected)"))
		}
		f, release, err := Compile(l.GetWaf(), fmt.Sprintf("listeners[%d].waf", i), p.cache, p.metrics)
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		p.listeners = append(p.listeners, l.GetWaf())
		p.global = append(p.global, f)
		p.release = append(p.release, release)
	}
	return p, nil
}

// Name is "waf".
func (*Policy) Name() string { return "waf" }

// Compile gives every route with a WAF (its own or a listener's) its
// firewalls. A directive that does not compile is an error at its route's
// (or file's) path.
func (p *Policy) Compile(b *policy.Build) error {
	for i, r := range b.Config.GetRoutes() {
		if r.GetWaf() == nil {
			continue // the listeners' firewalls, as they are
		}
		if _, seen := p.routed.LoadOrStore(b, struct{}{}); !seen {
			b.OnClose(func() { p.routed.Delete(b) })
		}
		rf := &RouteFirewalls{byListener: make([]*Firewall, len(p.listeners))}
		for li, l := range p.listeners {
			merged := Merge(l, r.GetWaf())
			f, release, err := Compile(merged, fmt.Sprintf("routes[%d].waf", i), p.cache, p.metrics)
			if err != nil {
				return err
			}
			b.OnClose(release)
			rf.byListener[li] = f
		}
		policy.Put(b, i, key, rf)
	}
	return nil
}

// For returns the firewall of a request on listener (its index), whose
// route's policies are route (nil when it has no route): the route's own
// when it has a WAF, else the listener's; nil when neither inspects it.
func (p *Policy) For(listener int, route *policy.Set) *Firewall {
	if rf := key.Of(route); rf != nil && listener < len(rf.byListener) {
		return rf.byListener[listener]
	}
	if listener < len(p.global) {
		return p.global[listener]
	}
	return nil
}

// Inspects reports whether a request on listener may be inspected under
// the configuration compiled into b: the listener has a firewall, or a
// route of b has one. Without, the request's route need not be found.
func (p *Policy) Inspects(listener int, b *policy.Build) bool {
	if listener < len(p.global) && p.global[listener] != nil {
		return true
	}
	_, ok := p.routed.Load(b)
	return ok
}

// Cache returns the policy's cache of rule sets.
func (p *Policy) Cache() *Cache { return p.cache }

// StreamServerInterceptor is nil: the WAF acts on the HTTP side only.
func (*Policy) StreamServerInterceptor() grpc.StreamServerInterceptor { return nil }

// Close gives the listeners' rule sets back.
func (p *Policy) Close() error {
	for _, r := range p.release {
		r()
	}
	p.release = nil
	return nil
}
