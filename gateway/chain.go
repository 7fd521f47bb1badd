package gateway

import (
	"log/slog"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/interceptors/requestid"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/metrics"
)

// chain returns the interceptors that every call passes, from every door,
// outermost first. Proxied calls are streams to grpc.Server, so the stream
// chain is the one they run; the unary chain serves the gateway's own
// unary methods (health). Keep both lists in the same order.
//
//  1. recovery   — a panic anywhere below becomes INTERNAL and a log line
//  2. request id — x-request-id accepted or generated, echoed back; the
//     call's record (door, timing) exists from here on
//  3. tracing    — the gateway's server span, parent from traceparent
//  4. metrics    — calls started, handled, in flight, latency
//  5. access log — the call's method and outcome into its record; one line
//     per native call (the HTTP doors write theirs after answering)
//  6. extra      — interceptors added with WithInterceptors
func chain(log *slog.Logger, al *accesslog.Logger, tr *tracing.Tracer, m *metrics.Metrics, o *options) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
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
		tr.StreamServerInterceptor(),
		m.StreamServerInterceptor(),
		al.StreamServerInterceptor(),
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
