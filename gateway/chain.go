package gateway

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/ipfilter"
	"github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/interceptors/requestid"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/router"
)

// deps are what the chain's interceptors are built from.
type deps struct {
	log       *slog.Logger
	proxy     *router.Proxy
	accessLog *accesslog.Logger
	tracer    *tracing.Tracer
	metrics   *metrics.Metrics
	strip     []string // identity metadata keys a client may not send
	ipGlobal  *ipfilter.Filter
	trusted   []netip.Prefix
	tls       func(context.Context) *tls.ConnectionState
}

// chain returns the interceptors that every call passes, from every door,
// outermost first. Proxied calls are streams to grpc.Server, so the stream
// chain is the one they run; the unary chain serves the gateway's own
// unary methods (health). Keep both lists in the same order.
//
//  1. recovery   — a panic anywhere below becomes INTERNAL and a log line
//  2. strip      — a client's copy of the forwarded-identity metadata goes
//  3. request id — x-request-id accepted or generated, echoed back; the
//     call's record (door, timing) exists from here on
//  4. resolve    — the configuration snapshot and route of the call, held
//     until it ends (stream chain only: the gateway's own unary methods
//     have no route)
//  5. tracing    — the gateway's server span, parent from traceparent
//  6. metrics    — calls started, handled, in flight, latency
//  7. access log — the call's method and outcome into its record; one line
//     per native call (the HTTP doors write theirs after answering)
//  8. IP filter  — the client IP (trusted proxies), global and route lists
//  9. auth       — the route's providers, then its rules
//  10. rate limit — the route's rate limit policies (keys may use the
//     principal and client IP from above)
//  11. extra      — interceptors added with WithInterceptors
//
// The proxy (the handler) then sheds calls over the route's and the
// cluster's concurrency limits, adds the forwarded identity and trace
// context, and forwards the rest.
func chain(d deps, o *options) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	m := d.metrics
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(d.log),
		requestid.UnaryServerInterceptor(),
		d.tracer.UnaryServerInterceptor(),
		m.UnaryServerInterceptor(),
		d.accessLog.UnaryServerInterceptor(),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(d.log),
		authint.StripInterceptor(d.strip),
		requestid.StreamServerInterceptor(),
		d.proxy.Resolve(),
		d.tracer.StreamServerInterceptor(),
		m.StreamServerInterceptor(),
		d.accessLog.StreamServerInterceptor(),
		ipfilter.StreamServerInterceptor(ipfilter.Options{
			Global:   d.ipGlobal,
			Trusted:  d.trusted,
			Route:    ipFilterOf,
			Rejected: func(door string) { m.Rejected("ip_filter", "ip_filter", door) },
		}),
		authint.StreamServerInterceptor(authint.Options{
			Policy:   authPolicyOf,
			TLS:      d.tls,
			Rejected: func(reason, door string) { m.Rejected("auth", reason, door) },
		}),
		ratelimit.StreamServerInterceptor(ratelimit.Options{
			Policies:    rateLimitsOf,
			Rejected:    func(policy, door string) { m.Rejected("ratelimit", policy, door) },
			StoreFailed: m.StoreFailed,
			Log:         d.log,
		}),
	}
	unary = append(unary, o.unary...)
	stream = append(stream, o.stream...)
	return unary, stream
}

// chainStream combines interceptors into one, the first outermost: the same
// order grpc.ChainStreamInterceptor gives them, for the in-process calls of
// the REST door, which do not pass through grpc.Server.
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
