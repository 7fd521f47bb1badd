package accesslog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/logline"
)

// newLogger returns an access logger keeping sample of the successful
// calls, writing JSON at level to the returned buffer, through logline's
// handler as edgegate serve does.
func newLogger(level slog.Level, sample float64) (*accesslog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return accesslog.New(slog.New(logline.New(&buf, true, level)), sample), &buf
}

// A line written through logline is the line slog's handlers write, but
// for the time and duration, in both formats.
func TestLoglineSameAsSlog(t *testing.T) {
	info := &callinfo.Info{
		Door: callinfo.DoorREST, Start: time.Now(), RequestID: "req-9", Peer: "198.51.100.4:4444",
		HTTPMethod: "GET", HTTPPath: "/v1/orders/7 \"x\"", Method: unaryInfo.FullMethod, UserAgent: "ua <1>",
		Err: status.Error(codes.NotFound, "order 7\nnot found"),
	}
	duration := regexp.MustCompile(`duration_ms"?[:=][0-9.e-]+`)
	withoutTime := func(line string) string {
		_, rest, _ := strings.Cut(line, "level")
		return duration.ReplaceAllString(rest, "duration_ms")
	}
	for _, json := range []bool{true, false} {
		var fast, plain bytes.Buffer
		var slogHandler slog.Handler = slog.NewTextHandler(&plain, nil)
		if json {
			slogHandler = slog.NewJSONHandler(&plain, nil)
		}
		accesslog.New(slog.New(logline.New(&fast, json, nil)), 1).Write(context.Background(), info, 404)
		accesslog.New(slog.New(slogHandler), 1).Write(context.Background(), info, 404)
		if fast.Len() == 0 || withoutTime(fast.String()) != withoutTime(plain.String()) {
			t.Errorf("json=%v: logline\n%s\nslog\n%s", json, fast.String(), plain.String())
		}
	}
}

// lines decodes every JSON line of buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// oneLine decodes the one JSON log line buf must hold.
func oneLine(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	ls := lines(t, buf)
	if len(ls) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(ls), buf)
	}
	return ls[0]
}

// checkLine checks the attributes of a log line; a nil want value means the
// attribute must be absent.
func checkLine(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	if line["msg"] != accesslog.Message || line["level"] != "INFO" {
		t.Errorf("msg, level = %v, %v; want %q, INFO", line["msg"], line["level"], accesslog.Message)
	}
	for k, w := range want {
		got, ok := line[k]
		switch {
		case w == nil && ok:
			t.Errorf("%s = %v, want it absent", k, got)
		case w != nil && !ok:
			t.Errorf("%s is absent, want %v", k, w)
		case w != nil && got != w:
			t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, w, w)
		}
	}
}

func durationMS(t *testing.T, line map[string]any) float64 {
	t.Helper()
	n, ok := line["duration_ms"].(json.Number)
	if !ok {
		t.Fatalf("duration_ms = %v (%T), want a number", line["duration_ms"], line["duration_ms"])
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var clientAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 53211}

// nativeContext is the context of a native gRPC call from clientAddr, with
// the record the request id interceptor leaves.
func nativeContext() (context.Context, *callinfo.Info) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("user-agent", "grpc-go/1.85.0", "authorization", "Bearer s3cret"))
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: clientAddr})
	ctx, info := callinfo.Begin(ctx, "", nil)
	info.RequestID = "req-1"
	return ctx, info
}

// withRecord is the access log interceptor after the chain's first step,
// which makes the call's record (callinfo.Begin), as in the gateway's
// chain.
func withRecord(l *accesslog.Logger) grpc.UnaryServerInterceptor {
	first, al := callinfo.UnaryServerInterceptor(nil), l.UnaryServerInterceptor()
	return func(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return first(ctx, req, si, func(ctx context.Context, req any) (any, error) { return al(ctx, req, si, handler) })
	}
}

// withRecordStream is withRecord for streams.
func withRecordStream(l *accesslog.Logger) grpc.StreamServerInterceptor {
	first, al := callinfo.StreamServerInterceptor(nil), l.StreamServerInterceptor()
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return first(srv, ss, si, func(srv any, ss grpc.ServerStream) error { return al(srv, ss, si, handler) })
	}
}

// proxy plays the router: it fills in the record the way Proxy does.
func proxy(info *callinfo.Info) {
	info.Route, info.Cluster, info.Endpoint = "orders", "orders-cluster", "10.0.0.5:9000"
	info.BytesIn.Add(120)
	info.BytesOut.Add(4096)
}

var unaryInfo = &grpc.UnaryServerInfo{FullMethod: "/shop.orders.v1.OrderService/GetOrder"}

func TestUnaryFailedCall(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	ctx, _ := nativeContext()
	wantErr := status.Error(codes.NotFound, "order 7 not found")
	resp, err := withRecord(l)(ctx, "req", unaryInfo, func(ctx context.Context, req any) (any, error) {
		proxy(callinfo.FromContext(ctx))
		time.Sleep(20 * time.Millisecond)
		return nil, wantErr
	})
	if resp != nil || !errors.Is(err, wantErr) {
		t.Errorf("interceptor = %v, %v; want the handler's nil, %v", resp, err, wantErr)
	}
	line := oneLine(t, buf)
	checkLine(t, line, map[string]any{
		"door":        "grpc",
		"request_id":  "req-1",
		"method":      "/shop.orders.v1.OrderService/GetOrder",
		"route":       "orders",
		"upstream":    "orders-cluster",
		"endpoint":    "10.0.0.5:9000",
		"code":        "NotFound",
		"bytes_in":    json.Number("120"),
		"bytes_out":   json.Number("4096"),
		"peer":        "192.0.2.7:53211",
		"client_ip":   "192.0.2.7",
		"user_agent":  "grpc-go/1.85.0",
		"error":       "order 7 not found",
		"http_status": nil,
	})
	if d := durationMS(t, line); d < 20 || d > 10_000 {
		t.Errorf("duration_ms = %v, want the handler's 20ms or a little more", d)
	}
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("the line logs a header value: %s", buf)
	}
}

func TestUnaryOKCall(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	ctx, _ := nativeContext()
	resp, err := withRecord(l)(ctx, "req", &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"},
		func(ctx context.Context, req any) (any, error) { return "resp", nil })
	if resp != "resp" || err != nil {
		t.Errorf("interceptor = %v, %v; want the handler's resp, nil", resp, err)
	}
	checkLine(t, oneLine(t, buf), map[string]any{
		"method":    "/grpc.health.v1.Health/Check",
		"code":      "OK",
		"route":     nil,
		"upstream":  nil,
		"bytes_in":  json.Number("0"),
		"bytes_out": json.Number("0"),
		"error":     nil,
	})
}

// Without a record in the context the interceptor makes one (a native
// gRPC call), so that the handler can fill it in.
func TestUnaryWithoutRecord(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	var seen *callinfo.Info
	_, err := withRecord(l)(context.Background(), "req", unaryInfo, func(ctx context.Context, req any) (any, error) {
		seen = callinfo.FromContext(ctx)
		if seen == nil {
			t.Fatal("no record in the handler's context")
		}
		proxy(seen)
		return nil, errors.New("plain error")
	})
	if err == nil {
		t.Fatal("the handler's error was lost")
	}
	if seen.Method != unaryInfo.FullMethod || seen.Err == nil || accesslog.CodeOf(seen) != codes.Unknown {
		t.Errorf("record = method %q, err %v; want the call's method and error", seen.Method, seen.Err)
	}
	checkLine(t, oneLine(t, buf), map[string]any{
		"door":       "grpc",
		"request_id": nil,
		"route":      "orders",
		"upstream":   "orders-cluster",
		"code":       "Unknown",
		"error":      "plain error",
		"peer":       nil,
	})
}

// fakeStream is a grpc.ServerStream with a context and nothing else.
type fakeStream struct{ ctx context.Context }

func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)       {}
func (s *fakeStream) SendMsg(any) error            { return nil }
func (s *fakeStream) RecvMsg(any) error            { return nil }

var streamInfo = &grpc.StreamServerInfo{FullMethod: "/shop.orders.v1.OrderService/Watch", IsServerStream: true}

func TestStreamCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code string
		msg  any
	}{
		{"ok", nil, "OK", nil},
		{"failed", status.Error(codes.Unavailable, `edgegate: upstream cluster "orders" is unavailable`), "Unavailable", `edgegate: upstream cluster "orders" is unavailable`},
		{"cancelled", status.Error(codes.Canceled, "context canceled"), "Canceled", "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, buf := newLogger(slog.LevelInfo, 1)
			ctx, info := nativeContext()
			ss := &fakeStream{ctx: ctx}
			err := withRecordStream(l)("srv", ss, streamInfo, func(srv any, got grpc.ServerStream) error {
				if got != ss {
					t.Error("the handler got another stream, although the context had a record")
				}
				proxy(info)
				return tc.err
			})
			if !errors.Is(err, tc.err) {
				t.Errorf("interceptor = %v, want the handler's %v", err, tc.err)
			}
			line := oneLine(t, buf)
			checkLine(t, line, map[string]any{
				"door":       "grpc",
				"request_id": "req-1",
				"method":     streamInfo.FullMethod,
				"route":      "orders",
				"upstream":   "orders-cluster",
				"code":       tc.code,
				"bytes_in":   json.Number("120"),
				"bytes_out":  json.Number("4096"),
				"peer":       "192.0.2.7:53211",
				"error":      tc.msg,
			})
			if d := durationMS(t, line); d < 0 {
				t.Errorf("duration_ms = %v, want >= 0", d)
			}
		})
	}
}

// A stream whose context has no record gets one, in a wrapped stream.
func TestStreamWithoutRecord(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	ss := &fakeStream{ctx: peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr})}
	err := withRecordStream(l)(nil, ss, streamInfo, func(_ any, got grpc.ServerStream) error {
		info := callinfo.FromContext(got.Context())
		if info == nil {
			t.Fatal("no record in the handler's stream context")
		}
		proxy(info)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkLine(t, oneLine(t, buf), map[string]any{"door": "grpc", "route": "orders", "peer": "192.0.2.7:53211", "code": "OK"})
}

// Calls of the HTTP doors are recorded by the interceptor but written by
// the door, after the HTTP answer, with its status.
func TestHTTPDoorCall(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	info := &callinfo.Info{Door: callinfo.DoorREST, Start: time.Now(), RequestID: "req-9", Peer: "198.51.100.4:4444", HTTPMethod: "GET", HTTPPath: "/v1/orders/7"}
	ctx := callinfo.NewContext(context.Background(), info)
	wantErr := status.Error(codes.NotFound, "order 7 not found")
	_, err := withRecord(l)(ctx, "req", unaryInfo, func(ctx context.Context, req any) (any, error) {
		proxy(info)
		return nil, wantErr
	})
	if !errors.Is(err, wantErr) {
		t.Fatalf("interceptor = %v, want %v", err, wantErr)
	}
	if buf.Len() != 0 {
		t.Fatalf("the interceptor wrote a line for an HTTP door's call: %s", buf)
	}
	if info.Method != unaryInfo.FullMethod || !errors.Is(info.Err, wantErr) {
		t.Errorf("record = method %q err %v, want the call's", info.Method, info.Err)
	}
	l.Write(ctx, info, 404)
	checkLine(t, oneLine(t, buf), map[string]any{
		"door":        "rest",
		"request_id":  "req-9",
		"http_method": "GET",
		"http_path":   "/v1/orders/7",
		"http_status": json.Number("404"),
		"method":      unaryInfo.FullMethod,
		"code":        "NotFound",
		"peer":        "198.51.100.4:4444",
		"client_ip":   "198.51.100.4",
		"error":       "order 7 not found",
	})
}

// A request refused before the chain has no gRPC method and no code.
func TestWriteRefusedHTTPRequest(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	info := &callinfo.Info{Door: callinfo.DoorREST, Start: time.Now(), HTTPMethod: "POST", HTTPPath: "/nowhere"}
	l.Write(context.Background(), info, 404)
	checkLine(t, oneLine(t, buf), map[string]any{"http_status": json.Number("404"), "method": nil, "code": nil})
}

func TestSampling(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 0)
	call := func(err error) {
		ctx, _ := nativeContext()
		_, _ = withRecord(l)(ctx, "req", unaryInfo, func(context.Context, any) (any, error) { return nil, err })
	}
	for range 20 {
		call(nil)
	}
	if buf.Len() != 0 {
		t.Fatalf("sample ratio 0 logged a successful call: %s", buf)
	}
	call(status.Error(codes.Internal, "boom"))
	checkLine(t, oneLine(t, buf), map[string]any{"code": "Internal"})

	buf.Reset()
	l.Write(context.Background(), &callinfo.Info{Door: callinfo.DoorREST, Start: time.Now()}, 502)
	if len(lines(t, buf)) != 1 {
		t.Errorf("sample ratio 0 dropped an HTTP 502: %s", buf)
	}
}

func TestRouteDisablesLog(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	ctx, _ := nativeContext()
	_, _ = withRecord(l)(ctx, "req", unaryInfo, func(ctx context.Context, req any) (any, error) {
		callinfo.FromContext(ctx).NoAccessLog = true
		return nil, status.Error(codes.Internal, "boom")
	})
	if buf.Len() != 0 {
		t.Errorf("logged a call of a route without access log: %s", buf)
	}
}

func TestNilLoggerDisables(t *testing.T) {
	l := accesslog.New(nil, 1)
	if l != nil {
		t.Fatalf("New(nil) = %v, want nil", l)
	}
	wantErr := status.Error(codes.Aborted, "conflict")
	called := false
	resp, err := withRecord(l)(context.Background(), "req", unaryInfo,
		func(ctx context.Context, req any) (any, error) {
			called = true
			return "resp", wantErr
		})
	if !called || resp != "resp" || !errors.Is(err, wantErr) {
		t.Errorf("unary: called = %v, interceptor = %v, %v; want true and the handler's resp, %v", called, resp, err, wantErr)
	}

	called = false
	err = withRecordStream(l)("srv", &fakeStream{ctx: context.Background()}, streamInfo, func(srv any, got grpc.ServerStream) error {
		called = true
		return wantErr
	})
	if !called || !errors.Is(err, wantErr) {
		t.Errorf("stream: called = %v, interceptor = %v; want true and the handler's %v", called, err, wantErr)
	}
	l.Write(context.Background(), &callinfo.Info{}, 500) // no panic
}

// A logger that does not write INFO writes no line; the call goes on.
func TestDisabledLevel(t *testing.T) {
	l, buf := newLogger(slog.LevelWarn, 1)
	ctx, _ := nativeContext()
	called := false
	_, err := withRecord(l)(ctx, "req", unaryInfo,
		func(ctx context.Context, req any) (any, error) {
			called = true
			return nil, status.Error(codes.Internal, "x")
		})
	if !called || err == nil {
		t.Errorf("called = %v, err = %v", called, err)
	}
	err = withRecordStream(l)(nil, &fakeStream{ctx: ctx}, streamInfo,
		func(any, grpc.ServerStream) error { return nil })
	if err != nil {
		t.Error(err)
	}
	l.Write(ctx, nil, 500) // a nil record writes nothing
	if buf.Len() != 0 {
		t.Errorf("logged at level WARN: %s", buf)
	}
}

// A handler that panics, in the gateway's chain order (recovery outermost,
// access log inside it): the call is logged as INTERNAL and its record
// says so.
func TestPanicIsLogged(t *testing.T) {
	l, buf := newLogger(slog.LevelInfo, 1)
	rec := recovery.UnaryServerInterceptor(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	al := l.UnaryServerInterceptor()
	si := &grpc.UnaryServerInfo{FullMethod: "/shop.v1.S/Get"}
	ctx, info := callinfo.Begin(context.Background(), si.FullMethod, nil)
	_, err := rec(ctx, "req", si, func(ctx context.Context, req any) (any, error) {
		return al(ctx, req, si, func(context.Context, any) (any, error) { panic("boom") })
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want INTERNAL", err)
	}
	if status.Code(info.Err) != codes.Internal {
		t.Fatalf("record says %v", info.Err)
	}
	checkLine(t, oneLine(t, buf), map[string]any{"code": "Internal", "method": si.FullMethod})
}
