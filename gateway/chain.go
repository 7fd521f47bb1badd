package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/waf"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/cache"
	"github.com/edgegate/edgegate/interceptors/clientip"
	"github.com/edgegate/edgegate/interceptors/ipfilter"
	"github.com/edgegate/edgegate/interceptors/limits"
	"github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/interceptors/requestid"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/policy"
	"github.com/edgegate/edgegate/router"
)

// newPolicies builds the policies of the chain, in chain order, from the
// configuration the gateway starts with. Adding a policy is its package,
// its config message, and one line here.
func newPolicies(cfg *configv1.Config, d policy.Deps) ([]policy.Policy, error) {
	var ps policies
	ps.add(ipfilter.New(cfg, d))                 // IP allow and block lists
	ps.add(auth.New(cfg, d, frontdoor.TLSState)) // authentication, then authorization
	ps.add(ratelimit.New(cfg, d))                // client rate limits (keys may use the principal)
	ps.add(waf.New(cfg, d))                      // web application firewall (HTTP side only: no interceptor)
	ps.add(cache.New(cfg, d))                    // response cache: a hit is authorized and counted, then answered here
	return ps.list, ps.err
}

type policies struct {
	list []policy.Policy
	err  error
}

func (ps *policies) add(p policy.Policy, err error) {
	if err != nil {
		ps.err = errors.Join(ps.err, err)
		return
	}
	ps.list = append(ps.list, p)
}

// deps are what the chain's fixed interceptors are built from.
type deps struct {
	log       *slog.Logger
	proxy     *router.Proxy
	accessLog *accesslog.Logger
	tracer    *tracing.Tracer
	metrics   *metrics.Metrics
	strip     []string // identity metadata keys a client may not send
	maxHeader int      // limits.max_header_list_bytes
	trusted   []netip.Prefix
	policies  []policy.Policy
}

// chain returns the interceptors that every call passes, from every door,
// outermost first. Proxied calls are streams to grpc.Server, so the stream
// chain is the one they run; the unary chain serves the gateway's own
// unary methods (health). Keep both lists in the same order.
//
//  1. recovery    — a panic anywhere below becomes INTERNAL and a log line
//  2. call record — the call's record (door, timing, method, peer), made
//     here for native calls (the HTTP doors make it before the chain);
//     the incoming metadata copied once, without a client's copy of the
//     forwarded-identity keys; a header list over the limit refused
//  3. request id  — x-request-id accepted or generated, echoed back
//  4. resolve     — the configuration snapshot and route of the call, held
//     until it ends, with the route's policy instances (stream chain
//     only: the gateway's own unary methods have no route)
//  5. tracing     — the gateway's server span, parent from traceparent
//  6. metrics     — calls started, handled, in flight, latency
//  7. access log  — the call's outcome into its record; one line per
//     native call (the HTTP doors write theirs after answering)
//  8. client IP   — worked out once (trusted proxies) for what follows,
//     with the forwarding headers the upstream is sent
//  9. policies    — newPolicies, in order: IP lists, auth, rate limits,
//     the response cache (a hit ends the call here)
//  10. extra      — interceptors added with WithInterceptors
//
// The proxy (the handler) then sheds calls over the route's and the
// cluster's concurrency limits, adds the forwarded identity and trace
// context, and forwards the rest.
func chain(d deps, o *options) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	m := d.metrics
	// The fixed interceptors, walked (walkStream: they call their handler
	// only before they return); the policies and WithInterceptors' each
	// get a handler of their own (chainStream).
	unary := []grpc.UnaryServerInterceptor{walkUnary(
		recovery.UnaryServerInterceptor(d.log),
		callinfo.UnaryServerInterceptor(d.strip),
		limits.UnaryServerInterceptor(d.maxHeader),
		requestid.UnaryServerInterceptor(),
		d.tracer.UnaryServerInterceptor(),
		m.UnaryServerInterceptor(),
		d.accessLog.UnaryServerInterceptor(),
	)}
	stream := []grpc.StreamServerInterceptor{walkStream(
		recovery.StreamServerInterceptor(d.log),
		callinfo.StreamServerInterceptor(d.strip),
		limits.StreamServerInterceptor(d.maxHeader),
		requestid.StreamServerInterceptor(),
		d.proxy.Resolve(),
		d.tracer.StreamServerInterceptor(),
		m.StreamServerInterceptor(),
		d.accessLog.StreamServerInterceptor(),
		clientip.StreamServerInterceptor(d.trusted, frontdoor.OverTLS),
	)}
	for _, p := range d.policies {
		if i := p.StreamServerInterceptor(); i != nil { // nil: an HTTP-side policy
			stream = append(stream, i)
		}
	}
	unary = append(unary, o.unary...)
	stream = append(stream, o.stream...)
	return unary, stream
}

// chainStream combines interceptors into one, the first outermost: the same
// order grpc.ChainStreamInterceptor gives them, for the in-process calls of
// the REST and gRPC-Web doors, which do not pass through grpc.Server. Each
// link gets a handler of its own, so that it may call it at any time: the
// response cache calls it again after answering, to refresh in the
// background.
func chainStream(ints []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return ints[0](srv, ss, info, next(ints, 1, info, handler))
	}
}

func next(ints []grpc.StreamServerInterceptor, i int, info *grpc.StreamServerInfo, final grpc.StreamHandler) grpc.StreamHandler {
	if i == len(ints) {
		return final
	}
	return func(srv any, ss grpc.ServerStream) error {
		return ints[i](srv, ss, info, next(ints, i+1, info, final))
	}
}

// chainUnary combines unary interceptors into one, the first outermost, as
// grpc.ChainUnaryInterceptor does: for the gateway's own unary methods on
// the native door.
func chainUnary(ints []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return ints[0](ctx, req, info, nextUnary(ints, 1, info, handler))
	}
}

func nextUnary(ints []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(ints) {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return ints[i](ctx, req, info, nextUnary(ints, i+1, info, final))
	}
}

// walkStream combines the gateway's fixed interceptors into one, the first
// outermost, for a call's price of one allocation rather than a handler
// per link. It relies on what they all do: call their handler only before
// they return (once, or again after it returned). A link whose handler
// may run later, from another goroutine, goes in chainStream instead.
func walkStream(ints ...grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c := &streamWalk{ints: ints, info: info, final: handler}
		c.next = c.step
		return ints[0](srv, ss, info, c.next)
	}
}

// streamWalk is one call's walk down walkStream's interceptors: at is the
// link running now, and next, the handler each link is given, runs the
// one after it.
type streamWalk struct {
	ints  []grpc.StreamServerInterceptor
	info  *grpc.StreamServerInfo
	final grpc.StreamHandler
	next  grpc.StreamHandler
	at    int
}

func (c *streamWalk) step(srv any, ss grpc.ServerStream) error {
	i := c.at + 1
	if i == len(c.ints) {
		return c.final(srv, ss)
	}
	c.at = i
	err := c.ints[i](srv, ss, c.info, c.next)
	c.at = i - 1
	return err
}

// walkUnary is walkStream for unary interceptors.
func walkUnary(ints ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c := &unaryWalk{ints: ints, info: info, final: handler}
		c.next = c.step
		return ints[0](ctx, req, info, c.next)
	}
}

// unaryWalk is streamWalk for unary interceptors.
type unaryWalk struct {
	ints  []grpc.UnaryServerInterceptor
	info  *grpc.UnaryServerInfo
	final grpc.UnaryHandler
	next  grpc.UnaryHandler
	at    int
}

func (c *unaryWalk) step(ctx context.Context, req any) (any, error) {
	i := c.at + 1
	if i == len(c.ints) {
		return c.final(ctx, req)
	}
	c.at = i
	resp, err := c.ints[i](ctx, req, c.info, c.next)
	c.at = i - 1
	return resp, err
}
