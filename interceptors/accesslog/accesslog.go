// Package accesslog writes one structured log line per call when the call
// ends: door, method, route, upstream cluster, code, duration, bytes in and
// out, peer and request id.
package accesslog

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Message is the log message of every access log line.
const Message = "call"

type logger struct{ log *slog.Logger }

func (l logger) write(ctx context.Context, method string, start time.Time, err error) {
	if !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	st, _ := status.FromError(err)
	attrs := make([]slog.Attr, 0, 12)
	info := callinfo.FromContext(ctx)
	if info != nil {
		attrs = append(attrs,
			slog.String("door", info.Door),
			slog.String("request_id", info.RequestID),
		)
	}
	attrs = append(attrs, slog.String("method", method))
	if info != nil {
		attrs = append(attrs,
			slog.String("route", info.Route),
			slog.String("upstream", info.Cluster),
		)
	}
	attrs = append(attrs,
		slog.String("code", st.Code().String()),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	)
	if info != nil {
		attrs = append(attrs,
			slog.Int64("bytes_in", info.BytesIn.Load()),
			slog.Int64("bytes_out", info.BytesOut.Load()),
		)
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, Message, attrs...)
}

// UnaryServerInterceptor logs every unary call after the handler returns.
// A nil log disables it (the handler is called directly).
func UnaryServerInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	l := logger{log}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if log == nil {
			return handler(ctx, req)
		}
		ctx, _ = callinfo.Ensure(ctx, callinfo.DoorGRPC)
		start := time.Now()
		resp, err := handler(ctx, req)
		l.write(ctx, info.FullMethod, start, err)
		return resp, err
	}
}

// StreamServerInterceptor logs every streaming or proxied call after the
// handler returns. A nil log disables it.
func StreamServerInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	l := logger{log}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if log == nil {
			return handler(srv, ss)
		}
		start := time.Now()
		err := handler(srv, ss)
		l.write(ss.Context(), info.FullMethod, start, err)
		return err
	}
}
