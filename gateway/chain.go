package gateway

import (
	"log/slog"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/interceptors/requestid"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/router"
)

// chain returns the interceptors that every call passes, from every door,
// outermost first. Proxied calls are streams to grpc.Server, so the stream
// chain is the one they run; the unary chain serves the gateway's own
// unary methods (health). Keep both lists in the same order.
//
//  1. recovery   — a panic anywhere below becomes INTERNAL and a log line
//  2. request id — x-request-id accepted or generated, echoed back; the
//     call's record (door, timing) exists from here on
//  3. resolve    — the configuration snapshot and route of the call, held
//     until it ends (stream chain only: the gateway's own unary methods
//     have no route)
//  4. tracing    — the gateway's server span, parent from traceparent
//  5. metrics    — calls started, handled, in flight, latency
//  6. access log — the call's method and outcome into its record; one line
//     per native call (the HTTP doors write theirs after answering)
//  7. rate limit — the route's rate limit policies
//  8. extra      — interceptors added with WithInterceptors
//
// The proxy (the handler) then sheds calls over the route's and the
// cluster's concurrency limits and forwards the rest.
func chain(log *slog.Logger, p *router.Proxy, al *accesslog.Logger, tr *tracing.Tracer, m *metrics.Metrics, o *options) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(log),
		requestid.UnaryServerInterceptor(),
		tr.UnaryServerInterceptor(),
		m.UnaryServerInterceptor(),
		al.UnaryServerInterceptor(),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(log),
		requestid.StreamServerInterceptor(),
		p.Resolve(),
		tr.StreamServerInterceptor(),
		m.StreamServerInterceptor(),
		al.StreamServerInterceptor(),
		ratelimit.StreamServerInterceptor(ratelimit.Options{
			Policies:    policiesOf,
			Rejected:    func(policy, door string) { m.Rejected("ratelimit", policy, door) },
			StoreFailed: m.StoreFailed,
			Log:         log,
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
