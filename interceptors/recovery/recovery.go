// Package recovery turns a panic in a call's handler path into an INTERNAL
// status and a log line with the stack, so that one bad call never takes
// the gateway down. It is the outermost interceptor of the chain, built on
// go-grpc-middleware's recovery interceptors.
package recovery

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Message is what the client is told about a panic; the panic value itself
// goes to the log only.
const Message = "edgegate: internal error"

func handler(log *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		attrs := []any{slog.Any("panic", p), slog.String("stack", string(debug.Stack()))}
		if info := callinfo.FromContext(ctx); info != nil {
			attrs = append(attrs, slog.String("request_id", info.RequestID))
		}
		log.ErrorContext(ctx, "panic in call", attrs...)
		return status.Error(codes.Internal, Message)
	}
}

// UnaryServerInterceptor recovers panics of unary calls. It always calls
// the handler; on a panic it returns INTERNAL.
func UnaryServerInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(handler(log)))
}

// StreamServerInterceptor recovers panics of streaming (and proxied) calls.
// It always calls the handler; on a panic it returns INTERNAL.
func StreamServerInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(handler(log)))
}
