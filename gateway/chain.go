package gateway

import (
	"log/slog"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/interceptors/requestid"
)

// chain returns the interceptors that every call passes, from every door,
// outermost first. Proxied calls are streams to grpc.Server, so the stream
// chain is the one they run; the unary chain serves the gateway's own
// unary methods (health). Keep both lists in the same order.
//
//  1. recovery   — a panic anywhere below becomes INTERNAL and a log line
//  2. request id — x-request-id accepted or generated, echoed back
//  3. access log — one line per call, after it ends
//  4. extra      — interceptors added with WithInterceptors
func chain(log, accessLog *slog.Logger, o *options) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(log),
		requestid.UnaryServerInterceptor(),
		accesslog.UnaryServerInterceptor(accessLog),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(log),
		requestid.StreamServerInterceptor(),
		accesslog.StreamServerInterceptor(accessLog),
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
