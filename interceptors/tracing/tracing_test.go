package tracing_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// The trace context a client sends.
const (
	clientTrace      = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan       = "00f067aa0ba902b7"
	clientParent     = "00-" + clientTrace + "-" + clientSpan + "-01"
	clientUnsampled  = "00-" + clientTrace + "-" + clientSpan + "-00"
	clientTraceState = "vendor=opaque"
)

// tracer returns a tracer whose spans are exported, as they end, to the
// returned in-memory exporter; every new trace is sampled.
func tracer(t *testing.T) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp), exp
}

// stream is the grpc.ServerStream the interceptor sees.
type stream struct {
	grpc.ServerStream
	ctx context.Context
	hdr metadata.MD
}

func (s *stream) Context() context.Context       { return s.ctx }
func (s *stream) SetHeader(md metadata.MD) error { s.hdr = metadata.Join(s.hdr, md); return nil }

const method = "/shop.v1.Orders/Get"

// onlySpan returns the one span exp holds.
func onlySpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1: %v", len(spans), spans)
	}
	return spans[0]
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		out[kv.Key] = kv.Value
	}
	return out
}

// checkAttrs fails t unless s has exactly the attributes want.
func checkAttrs(t *testing.T, s tracetest.SpanStub, want map[attribute.Key]attribute.Value) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("attribute %s = %v (set %v), want %v", k, g.String(), ok, v.String())
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected attribute %s = %v", k, v.String())
		}
	}
}

func TestUnarySpan(t *testing.T) {
	tr, exp := tracer(t)
	info := &callinfo.Info{Door: callinfo.DoorREST}
	ctx := callinfo.NewContext(context.Background(), info)
	var inCall trace.SpanContext
	resp, err := tr.UnaryServerInterceptor()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
		inCall = trace.SpanContextFromContext(ctx)
		// The router fills these in during the call.
		info.Route, info.Cluster, info.Endpoint = "orders-get", "orders", "10.0.0.5:50051"
		return "resp:" + req.(string), nil
	})
	if err != nil || resp != "resp:req" {
		t.Fatalf("interceptor answered %v, %v; want the handler's answer", resp, err)
	}
	s := onlySpan(t, exp)
	if s.Name != "shop.v1.Orders/Get" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want shop.v1.Orders/Get, server", s.Name, s.SpanKind)
	}
	if s.InstrumentationScope.Name != "github.com/edgegate/edgegate" {
		t.Errorf("instrumentation scope %q", s.InstrumentationScope.Name)
	}
	checkAttrs(t, s, map[attribute.Key]attribute.Value{
		"rpc.system":           attribute.StringValue("grpc"),
		"rpc.service":          attribute.StringValue("shop.v1.Orders"),
		"rpc.method":           attribute.StringValue("Get"),
		"edgegate.door":        attribute.StringValue("rest"),
		"rpc.grpc.status_code": attribute.IntValue(0),
		"edgegate.route":       attribute.StringValue("orders-get"),
		"edgegate.upstream":    attribute.StringValue("orders"),
		"server.address":       attribute.StringValue("10.0.0.5:50051"),
	})
	if s.Status.Code != otelcodes.Unset {
		t.Errorf("status %v %q for an OK call, want unset", s.Status.Code, s.Status.Description)
	}
	if s.Parent.IsValid() {
		t.Errorf("span has parent %v without a traceparent", s.Parent)
	}
	if !inCall.Equal(s.SpanContext) {
		t.Errorf("handler's context carries span %v, want the call's span %v", inCall, s.SpanContext)
	}
	if info.TraceID != s.SpanContext.TraceID().String() {
		t.Errorf("call record's trace ID %q, want %q", info.TraceID, s.SpanContext.TraceID())
	}
}

func TestStreamSpan(t *testing.T) {
	tr, exp := tracer(t)
	ss := &stream{ctx: context.Background()}
	var inCall trace.SpanContext
	err := tr.StreamServerInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: "/shop.v1.Orders/Watch", IsServerStream: true}, func(_ any, s grpc.ServerStream) error {
		inCall = trace.SpanContextFromContext(s.Context())
		// The wrapped stream is still the call's stream.
		return s.SetHeader(metadata.Pairs("x-from-handler", "1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := ss.hdr.Get("x-from-handler"); len(got) != 1 {
		t.Errorf("the handler's header did not reach the stream: %v", ss.hdr)
	}
	s := onlySpan(t, exp)
	if s.Name != "shop.v1.Orders/Watch" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q of kind %v", s.Name, s.SpanKind)
	}
	// No call record: a native gRPC call, and nothing routed to tell.
	checkAttrs(t, s, map[attribute.Key]attribute.Value{
		"rpc.system":           attribute.StringValue("grpc"),
		"rpc.service":          attribute.StringValue("shop.v1.Orders"),
		"rpc.method":           attribute.StringValue("Watch"),
		"edgegate.door":        attribute.StringValue("grpc"),
		"rpc.grpc.status_code": attribute.IntValue(0),
	})
	if !inCall.Equal(s.SpanContext) {
		t.Errorf("handler's stream context carries span %v, want %v", inCall, s.SpanContext)
	}
}

func TestRecordWithoutEndpoint(t *testing.T) {
	tr, exp := tracer(t)
	info := &callinfo.Info{Door: callinfo.DoorGRPCWeb, Route: "r", Cluster: "c"}
	ss := &stream{ctx: callinfo.NewContext(context.Background(), info)}
	_ = tr.StreamServerInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: method}, func(any, grpc.ServerStream) error {
		return status.Error(codes.ResourceExhausted, "too many calls in flight")
	})
	a := attrs(onlySpan(t, exp))
	if _, ok := a["server.address"]; ok {
		t.Errorf("server.address %v set for a call that reached no endpoint", a["server.address"].String())
	}
	if a["edgegate.door"].AsString() != "grpc-web" || a["edgegate.route"].AsString() != "r" || a["edgegate.upstream"].AsString() != "c" {
		t.Errorf("attributes %v", a)
	}
}

func TestParentFromTraceparent(t *testing.T) {
	incoming := metadata.Pairs("traceparent", clientParent, "tracestate", clientTraceState)
	recorded := func() context.Context {
		info := &callinfo.Info{Door: callinfo.DoorREST}
		info.SetIncoming(incoming)
		return callinfo.NewContext(context.Background(), info)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{
		{"gRPC metadata", metadata.NewIncomingContext(context.Background(), incoming)},
		// The REST and gRPC-Web doors' headers, as the chain's first
		// interceptor recorded them.
		{"call record", recorded()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, exp := tracer(t)
			err := tr.StreamServerInterceptor()(nil, &stream{ctx: tc.ctx}, &grpc.StreamServerInfo{FullMethod: method}, func(any, grpc.ServerStream) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			s := onlySpan(t, exp)
			if got := s.Parent.TraceID().String(); got != clientTrace {
				t.Errorf("parent trace %s, want %s", got, clientTrace)
			}
			if got := s.Parent.SpanID().String(); got != clientSpan {
				t.Errorf("parent span %s, want %s", got, clientSpan)
			}
			if !s.Parent.IsRemote() {
				t.Error("parent not marked remote")
			}
			if got := s.SpanContext.TraceID().String(); got != clientTrace {
				t.Errorf("span in trace %s, want the client's %s", got, clientTrace)
			}
			if s.SpanContext.SpanID().String() == clientSpan {
				t.Error("the gateway's span reuses the client's span ID")
			}
			if got := s.SpanContext.TraceState().String(); got != clientTraceState {
				t.Errorf("trace state %q, want %q", got, clientTraceState)
			}
		})
	}
}

func TestUnsampledParentIsFollowed(t *testing.T) {
	tr, exp := tracer(t)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", clientUnsampled))
	var inCall trace.SpanContext
	_, err := tr.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
		inCall = trace.SpanContextFromContext(ctx)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported for a client that sampled its trace out", n)
	}
	// The trace still goes on upstream, unsampled.
	if inCall.TraceID().String() != clientTrace || inCall.IsSampled() {
		t.Errorf("handler's span context %v: want the client's trace, unsampled", inCall)
	}
}

func TestFailingHandler(t *testing.T) {
	plain := errors.New("connection reset")
	for _, tc := range []struct {
		name string
		err  error
		code int
		desc string
	}{
		{"status", status.Error(codes.NotFound, "order 7 not found"), int(codes.NotFound), "order 7 not found"},
		{"unavailable", status.Error(codes.Unavailable, "no healthy upstream"), int(codes.Unavailable), "no healthy upstream"},
		{"plain error", plain, int(codes.Unknown), "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, exp *tracetest.InMemoryExporter, err error) {
				t.Helper()
				if err != tc.err { //nolint:errorlint // the handler's very error
					t.Errorf("interceptor returned %v, want the handler's %v", err, tc.err)
				}
				s := onlySpan(t, exp)
				if s.Status.Code != otelcodes.Error || s.Status.Description != tc.desc {
					t.Errorf("span status %v %q, want Error %q", s.Status.Code, s.Status.Description, tc.desc)
				}
				if got := attrs(s)["rpc.grpc.status_code"]; got != attribute.IntValue(tc.code) {
					t.Errorf("rpc.grpc.status_code %v, want %d", got.String(), tc.code)
				}
			}
			t.Run("unary", func(t *testing.T) {
				tr, exp := tracer(t)
				_, err := tr.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
					return nil, tc.err
				})
				check(t, exp, err)
			})
			t.Run("stream", func(t *testing.T) {
				tr, exp := tracer(t)
				err := tr.StreamServerInterceptor()(nil, &stream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: method}, func(any, grpc.ServerStream) error {
					return tc.err
				})
				check(t, exp, err)
			})
		})
	}
}

func TestInject(t *testing.T) {
	tr, exp := tracer(t)
	in := metadata.Pairs("traceparent", clientParent, "tracestate", clientTraceState, "baggage", "tenant=acme")
	ctx := metadata.NewIncomingContext(context.Background(), in)
	var out metadata.MD
	_, err := tr.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
		// What the proxy sends upstream: the client's traceparent, which
		// Inject replaces, and no baggage, which Inject adds from the
		// client's.
		out = metadata.Pairs("traceparent", clientParent, "x-other", "kept")
		tracing.Inject(ctx, out)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, exp)
	want := "00-" + clientTrace + "-" + s.SpanContext.SpanID().String() + "-01"
	if got := out.Get("traceparent"); len(got) != 1 || got[0] != want {
		t.Errorf("upstream traceparent %q, want [%q] (the gateway's span as parent)", got, want)
	}
	if got := out.Get("tracestate"); len(got) != 1 || got[0] != clientTraceState {
		t.Errorf("upstream tracestate %q, want [%q]", got, clientTraceState)
	}
	if got := out.Get("baggage"); len(got) != 1 || got[0] != "tenant=acme" {
		t.Errorf("upstream baggage %q, want [tenant=acme]", got)
	}
	if got := out.Get("x-other"); len(got) != 1 || got[0] != "kept" {
		t.Errorf("other metadata changed: %v", out)
	}
}

func TestInjectWithoutSpanChangesNothing(t *testing.T) {
	md := metadata.Pairs("traceparent", clientParent, "x-other", "v")
	want := md.Copy()
	tracing.Inject(context.Background(), md)
	if len(md) != len(want) || md.Get("traceparent")[0] != clientParent || md.Get("x-other")[0] != "v" {
		t.Errorf("metadata %v after Inject without a span, want %v", md, want)
	}
	empty := metadata.MD{}
	tracing.Inject(context.Background(), empty)
	if len(empty) != 0 {
		t.Errorf("Inject without a span wrote %v", empty)
	}
}

func TestNilTracer(t *testing.T) {
	if tr := tracing.New(nil); tr != nil {
		t.Fatalf("New(nil) = %v, want nil", tr)
	}
	var tr *tracing.Tracer
	info := &callinfo.Info{Door: callinfo.DoorGRPC}
	ctx := callinfo.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", clientParent)), info)
	called := false
	resp, err := tr.UnaryServerInterceptor()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, func(got context.Context, req any) (any, error) {
		called = true
		if got != ctx {
			t.Error("unary handler got another context")
		}
		return req, status.Error(codes.Aborted, "x")
	})
	if !called || resp != "req" || status.Code(err) != codes.Aborted {
		t.Errorf("unary: called %v, answer %v %v; want the handler's answer", called, resp, err)
	}
	ss := &stream{ctx: ctx}
	called = false
	err = tr.StreamServerInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: method}, func(_ any, got grpc.ServerStream) error {
		called = true
		if got != ss {
			t.Error("stream handler got another stream")
		}
		return status.Error(codes.Aborted, "y")
	})
	if !called || status.Code(err) != codes.Aborted {
		t.Errorf("stream: called %v, err %v", called, err)
	}
	if info.TraceID != "" {
		t.Errorf("nil tracer set trace ID %q", info.TraceID)
	}
}

func TestNewProvider(t *testing.T) {
	tp, err := tracing.NewProvider(context.Background(), nil)
	if tp != nil || err != nil {
		t.Fatalf("NewProvider(nil) = %v, %v; want nil, nil", tp, err)
	}
	sampledParent := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	for _, tc := range []struct {
		name     string
		exporter configv1.Tracing_Exporter
		ratio    float64
	}{
		{"grpc, none sampled", configv1.Tracing_EXPORTER_OTLP_GRPC, 0},
		{"http, all sampled", configv1.Tracing_EXPORTER_OTLP_HTTP, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing is exported (no span ends), so nothing listens.
			tp, err := tracing.NewProvider(t.Context(), &configv1.Tracing{ //nolint:contextcheck // the test's context is the root
				Exporter: tc.exporter, Endpoint: "127.0.0.1:4317", Insecure: true,
				ServiceName: "edgegate-test", SampleRatio: proto.Float64(tc.ratio),
			})
			if err != nil || tp == nil {
				t.Fatalf("NewProvider: %v, %v", tp, err)
			}
			defer func() { //nolint:contextcheck // the test's context is the root
				if err := tp.Shutdown(t.Context()); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}()
			tr := tp.Tracer("test")
			_, root := tr.Start(context.Background(), "root")
			if got := root.SpanContext().IsSampled(); got != (tc.ratio == 1) {
				t.Errorf("new trace sampled %v at ratio %v", got, tc.ratio)
			}
			_, child := tr.Start(sampledParent, "child")
			if !child.SpanContext().IsSampled() {
				t.Error("a sampled parent's trace was not sampled: sampling is not parent-based")
			}
		})
	}
}

// TestInjectReplacesAForeignTraceState: a client's tracestate that came
// without a valid traceparent belongs to no trace the gateway joined; the
// gateway starts a new trace and must not send it on beside its own
// traceparent.
func TestInjectReplacesAForeignTraceState(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   metadata.MD
	}{
		{"no traceparent", metadata.Pairs("tracestate", clientTraceState)},
		{"malformed traceparent", metadata.Pairs("traceparent", "00-not-a-trace-01", "tracestate", clientTraceState)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, exp := tracer(t)
			var out metadata.MD
			_, err := tr.UnaryServerInterceptor()(metadata.NewIncomingContext(context.Background(), tc.in), nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
				out = tc.in.Copy() // what the proxy forwards
				tracing.Inject(ctx, out)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			s := onlySpan(t, exp)
			if s.Parent.IsValid() {
				t.Fatalf("span has parent %v", s.Parent)
			}
			want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
			if got := out.Get("traceparent"); len(got) != 1 || got[0] != want {
				t.Errorf("upstream traceparent %q, want [%q]", got, want)
			}
			if got := out.Get("tracestate"); len(got) != 0 {
				t.Errorf("upstream tracestate %q beside the gateway's new trace, want none", got)
			}
		})
	}
}
