// Package accesslog writes one structured log line per call when it ends:
// time, request id, trace id, door, HTTP method, path and status where
// there are some, gRPC method, route, upstream cluster and endpoint, gRPC
// code, duration, bytes in and out, principal, client IP and user agent,
// and the web application firewall's outcome, rule ids and anomaly score.
// No header value is ever logged, so no secret (authorization, API keys,
// cookies) can be.
//
// Native gRPC calls are logged by the interceptor when the handler
// returns; calls of the HTTP doors by the door (Logger.Write), after the
// HTTP answer is written, so that the line has the real HTTP status.
package accesslog

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/logline"
)

// Message is the log message of every access log line.
const Message = "call"

// Logger writes access log lines. A nil *Logger writes nothing.
type Logger struct {
	log       *slog.Logger
	sample    float64
	cancelled *budget // nil: no limit
}

// New returns a logger writing to log, keeping sampleRatio (0 to 1) of the
// successful calls' lines; failed calls are always logged. A nil log gives
// a nil Logger.
func New(log *slog.Logger, sampleRatio float64) *Logger {
	if log == nil {
		return nil
	}
	return &Logger{log: log, sample: sampleRatio}
}

// DroppedMessage is the message of the line that sums up the access log
// lines of cancelled calls not written (see LimitCancelled).
const DroppedMessage = "access log lines dropped"

// LimitCancelled makes l write the lines of calls cancelled by the client
// (code CANCELLED, the call's context cancelled) at most perSecond a
// second: a flood of reset streams, each one such call, cannot fill the
// disk. The lines beyond it are not written; dropped (may be nil) is
// called for each, and one line (DroppedMessage, at WARN) a second says
// how many there were. Other lines are never dropped. perSecond 0 means
// no limit. It returns l; call it before l is used.
func (l *Logger) LimitCancelled(perSecond int, dropped func()) *Logger {
	if l != nil && perSecond > 0 {
		l.cancelled = &budget{perSecond: perSecond, dropped: dropped, log: l.log}
	}
	return l
}

// Write writes the line of the call info, answered with httpStatus (0 for
// native gRPC), unless the call's route disables the log, sampling drops
// it, or it is a cancelled call over the LimitCancelled budget. The
// caller must be the last to touch info (callinfo's EndChain / EndHTTP say
// who is).
func (l *Logger) Write(ctx context.Context, info *callinfo.Info, httpStatus int) {
	if l == nil || info == nil || info.NoAccessLog || !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if l.cancelled != nil && status.Code(info.Err) == codes.Canceled && ctx.Err() != nil && !l.cancelled.take() {
		return
	}
	failed := info.Err != nil || httpStatus >= 400
	if !failed && l.sample < 1 && rand.Float64() >= l.sample { //nolint:gosec // G404: log sampling needs no unpredictability, only speed
		return
	}
	attrs := make([]slog.Attr, 0, 25)
	str := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	str("request_id", info.RequestID)
	str("trace_id", info.TraceID)
	str("door", info.Door)
	str("http_method", info.HTTPMethod)
	str("http_path", info.HTTPPath)
	if httpStatus != 0 {
		attrs = append(attrs, slog.Int("http_status", httpStatus))
	}
	str("method", info.Method)
	str("route", info.Route)
	str("upstream", info.Cluster)
	str("endpoint", info.Endpoint)
	str("cache", info.Cache)
	if info.Method != "" {
		attrs = append(attrs, slog.String("code", status.Code(info.Err).String()))
	}
	attrs = append(attrs,
		slog.Float64("duration_ms", float64(time.Since(info.Start).Microseconds())/1000),
		slog.Int64("bytes_in", info.BytesIn.Load()),
		slog.Int64("bytes_out", info.BytesOut.Load()),
	)
	str("principal", info.Principal)
	if info.Peer != "" {
		ip := info.ClientIP
		if ip == "" {
			ip = hostOf(info.Peer)
		}
		attrs = append(attrs, slog.String("peer", info.Peer), slog.String("client_ip", ip))
	}
	str("user_agent", info.UserAgent)
	if info.WAFOutcome != "" {
		attrs = append(attrs, slog.String("waf", info.WAFOutcome), slog.String("waf_rules", joinInts(info.WAFRules)), slog.Int("waf_score", info.WAFScore))
	}
	if info.Err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(info.Err).Message()))
	}
	if h, ok := l.log.Handler().(*logline.Handler); ok {
		// Written without a slog.Record (and without the caller's program
		// counter, which slog.Logger captures for every line).
		if h.WriteAttrs(time.Now(), slog.LevelInfo, Message, attrs) {
			return
		}
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, Message, attrs...)
}

// joinInts is ids, comma-separated.
func joinInts(ids []int) string {
	b := make([]byte, 0, 8*len(ids))
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return string(b)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// finish records how the call ended and, for native gRPC, writes its
// line. Deferred: a panic below is recorded as the INTERNAL status the
// recovery interceptor will turn it into, then goes on up.
func (l *Logger) finish(ctx context.Context, info *callinfo.Info, err *error) {
	p := recover()
	if p != nil {
		*err = status.Error(codes.Internal, recovery.Message)
	}
	info.SetErr(*err)
	if info.EndChain() {
		l.Write(ctx, info, info.HTTPStatus)
	}
	if p != nil {
		panic(p)
	}
}

// UnaryServerInterceptor records the call's end in its record (made by
// the chain's first step, callinfo.Begin) and, for native gRPC, writes its
// line. A call without a record is not logged. It always calls the
// handler.
func (l *Logger) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		info := callinfo.FromContext(ctx)
		if info == nil {
			return handler(ctx, req)
		}
		defer l.finish(ctx, info, &err)
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming and
// proxied calls.
func (l *Logger) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx := ss.Context()
		info := callinfo.FromContext(ctx)
		if info == nil {
			return handler(srv, ss)
		}
		defer l.finish(ctx, info, &err)
		return handler(srv, ss)
	}
}

// CodeOf is the gRPC code of a finished call's record.
func CodeOf(info *callinfo.Info) codes.Code { return status.Code(info.Err) }

// budget is the LimitCancelled budget: perSecond lines in each window of a
// second (a window starts at the first line after the last one ended).
type budget struct {
	perSecond int
	dropped   func()
	log       *slog.Logger

	mu      sync.Mutex
	start   time.Time // of the current window
	used    int       // lines written in it
	skipped int       // lines dropped since the last summary
	summary bool      // a summary is due (its timer runs)
}

// take reports whether one more line may be written; when not, it counts
// the line and makes sure a summary follows within a second.
func (b *budget) take() bool {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.start) >= time.Second {
		b.start, b.used = now, 0
	}
	if b.used < b.perSecond {
		b.used++
		return true
	}
	b.skipped++
	if b.dropped != nil {
		b.dropped()
	}
	if !b.summary {
		b.summary = true
		time.AfterFunc(time.Second, b.sum)
	}
	return false
}

// sum writes the summary of the lines dropped since the last one.
func (b *budget) sum() {
	b.mu.Lock()
	n := b.skipped
	b.skipped, b.summary = 0, false
	b.mu.Unlock()
	b.log.LogAttrs(context.Background(), slog.LevelWarn, DroppedMessage,
		slog.Int("dropped", n),
		slog.String("reason", "calls cancelled by the client over logging.access_log_cancelled_per_second"),
		slog.Int("per_second", b.perSecond))
}
