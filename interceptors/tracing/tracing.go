// Package tracing makes an OpenTelemetry server span of the gateway's hop
// of every call, the parent taken from the W3C trace context the client
// sent (traceparent, tracestate: gRPC metadata, or the REST and gRPC-Web
// headers that become metadata), and gives the proxy the context to
// propagate to the upstream call (Inject).
package tracing

import (
	"context"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Propagator is the W3C trace context propagator used both ways.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Tracer starts the gateway's spans. A nil *Tracer does nothing.
type Tracer struct{ t trace.Tracer }

// New returns a tracer of tp; nil when tp is nil (tracing off).
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer("github.com/edgegate/edgegate")}
}

// carrier adapts metadata to the propagators.
type carrier metadata.MD

func (c carrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c carrier) Set(k, v string) { metadata.MD(c).Set(k, v) }
func (c carrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// traceContextKeys are the keys of the W3C trace context (traceparent,
// tracestate).
var traceContextKeys = propagation.TraceContext{}.Fields()

// Inject writes the trace context of ctx's span into md (the metadata
// sent upstream), replacing what the client sent: the propagator sets
// tracestate only when the span has one, so the client's is removed first
// (it belongs to no trace the gateway joined when the client's traceparent
// was absent or invalid).
func Inject(ctx context.Context, md metadata.MD) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		for _, k := range traceContextKeys {
			delete(md, k)
		}
		Propagator.Inject(ctx, carrier(md))
	}
}

func (t *Tracer) start(ctx context.Context, method string) (context.Context, trace.Span) {
	md := callinfo.Incoming(ctx)
	ctx = Propagator.Extract(ctx, carrier(md))
	svc, m, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	door := callinfo.DoorGRPC
	info := callinfo.FromContext(ctx)
	if info != nil {
		door = info.Door
	}
	ctx, span := t.t.Start(ctx, strings.TrimPrefix(method, "/"),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("rpc.system", "grpc"),
			attribute.String("rpc.service", svc),
			attribute.String("rpc.method", m),
			attribute.String("edgegate.door", door),
		))
	if info != nil {
		info.TraceID = span.SpanContext().TraceID().String()
	}
	return ctx, span
}

func end(ctx context.Context, span trace.Span, err error) {
	st := status.Convert(err)
	attrs := []attribute.KeyValue{attribute.Int("rpc.grpc.status_code", int(st.Code()))}
	if info := callinfo.FromContext(ctx); info != nil {
		attrs = append(attrs, attribute.String("edgegate.route", info.Route), attribute.String("edgegate.upstream", info.Cluster))
		if info.Endpoint != "" {
			attrs = append(attrs, attribute.String("server.address", info.Endpoint))
		}
	}
	span.SetAttributes(attrs...)
	if err != nil {
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

// UnaryServerInterceptor traces unary calls; it always calls the handler.
func (t *Tracer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if t == nil {
			return handler(ctx, req)
		}
		ctx, span := t.start(ctx, si.FullMethod)
		resp, err := handler(ctx, req)
		end(ctx, span, err)
		return resp, err
	}
}

// StreamServerInterceptor traces streaming and proxied calls; it always
// calls the handler.
func (t *Tracer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if t == nil {
			return handler(srv, ss)
		}
		ctx, span := t.start(ss.Context(), si.FullMethod)
		err := handler(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
		end(ctx, span, err)
		return err
	}
}
