package recovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/interceptors/recovery"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// jsonLogger returns a logger whose lines land in the returned buffer.
func jsonLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewJSONHandler(&buf, nil)), &buf
}

// logLines decodes every JSON line of buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// checkRecovered checks that err is the INTERNAL status of a recovered
// panic and that exactly one log line names the panic value.
func checkRecovered(t *testing.T, err error, buf *bytes.Buffer, value, requestID string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Internal || st.Message() != recovery.Message {
		t.Errorf("error = %v, want INTERNAL %q", err, recovery.Message)
	}
	if strings.Contains(st.Message(), value) {
		t.Errorf("the client is told the panic value: %q", st.Message())
	}
	lines := logLines(t, buf)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), buf)
	}
	l := lines[0]
	if l["level"] != "ERROR" || l["msg"] != "panic in call" {
		t.Errorf("log level, msg = %v, %v; want ERROR, panic in call", l["level"], l["msg"])
	}
	if got, _ := l["panic"].(string); !strings.Contains(got, value) {
		t.Errorf("log panic = %v, want it to contain %q", l["panic"], value)
	}
	if stack, _ := l["stack"].(string); !strings.Contains(stack, "recovery_test") {
		t.Errorf("log stack does not show the panicking test handler:\n%s", stack)
	}
	if requestID == "" {
		if _, ok := l["request_id"]; ok {
			t.Errorf("log has request_id %v for a call without a record", l["request_id"])
		}
	} else if l["request_id"] != requestID {
		t.Errorf("log request_id = %v, want %q", l["request_id"], requestID)
	}
}

var unaryInfo = &grpc.UnaryServerInfo{FullMethod: "/shop.v1.S/Get"}

func TestUnaryRecoversPanic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value any
		want  string // in the log's panic attribute
	}{
		{"string", "boom: index out of range", "boom: index out of range"},
		{"error", errors.New("nil map write"), "nil map write"},
		{"nil", nil, "panic called with nil argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, buf := jsonLogger()
			intercept := recovery.UnaryServerInterceptor(log)
			resp, err := intercept(context.Background(), "req", unaryInfo, func(context.Context, any) (any, error) {
				panic(tc.value)
			})
			if resp != nil {
				t.Errorf("resp = %v, want nil", resp)
			}
			checkRecovered(t, err, buf, tc.want, "")
		})
	}
}

func TestUnaryLogsRequestID(t *testing.T) {
	log, buf := jsonLogger()
	ctx := callinfo.NewContext(context.Background(), &callinfo.Info{RequestID: "req-42"})
	_, err := recovery.UnaryServerInterceptor(log)(ctx, "req", unaryInfo, func(context.Context, any) (any, error) {
		panic("boom")
	})
	checkRecovered(t, err, buf, "boom", "req-42")
}

func TestUnaryPassesThrough(t *testing.T) {
	log, buf := jsonLogger()
	intercept := recovery.UnaryServerInterceptor(log)
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	wantErr := status.Error(codes.NotFound, "no such order")
	for _, tc := range []struct {
		resp any
		err  error
	}{{"resp", nil}, {nil, wantErr}} {
		called := false
		resp, err := intercept(ctx, "req", unaryInfo, func(c context.Context, req any) (any, error) {
			called = true
			if c.Value(key{}) != "v" || req != "req" {
				t.Errorf("handler got ctx value %v, req %v", c.Value(key{}), req)
			}
			return tc.resp, tc.err
		})
		if !called {
			t.Error("handler not called")
		}
		if resp != tc.resp || !errors.Is(err, tc.err) {
			t.Errorf("interceptor = %v, %v; want the handler's %v, %v", resp, err, tc.resp, tc.err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("logged without a panic: %s", buf)
	}
}

// fakeStream is a grpc.ServerStream with a context and nothing else.
type fakeStream struct{ ctx context.Context }

func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)       {}
func (s *fakeStream) SendMsg(any) error            { return nil }
func (s *fakeStream) RecvMsg(any) error            { return nil }

var streamInfo = &grpc.StreamServerInfo{FullMethod: "/shop.v1.S/Watch", IsServerStream: true}

func TestStreamRecoversPanic(t *testing.T) {
	log, buf := jsonLogger()
	ss := &fakeStream{ctx: callinfo.NewContext(context.Background(), &callinfo.Info{RequestID: "req-7"})}
	err := recovery.StreamServerInterceptor(log)(nil, ss, streamInfo, func(any, grpc.ServerStream) error {
		var m map[string]int
		m["x"] = 1 //nolint:staticcheck // SA5000 on purpose: the test needs a runtime panic from the handler
		return nil
	})
	checkRecovered(t, err, buf, "assignment to entry in nil map", "req-7")
}

func TestStreamPassesThrough(t *testing.T) {
	log, buf := jsonLogger()
	intercept := recovery.StreamServerInterceptor(log)
	ss := &fakeStream{ctx: context.Background()}
	wantErr := status.Error(codes.ResourceExhausted, "slow down")
	for _, want := range []error{nil, wantErr} {
		called := false
		err := intercept("srv", ss, streamInfo, func(srv any, got grpc.ServerStream) error {
			called = true
			if srv != "srv" || got.Context() != ss.Context() {
				t.Errorf("handler got srv %v, a stream of another context", srv)
			}
			return want
		})
		if !called {
			t.Error("handler not called")
		}
		if !errors.Is(err, want) {
			t.Errorf("interceptor = %v, want the handler's %v", err, want)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("logged without a panic: %s", buf)
	}
}
