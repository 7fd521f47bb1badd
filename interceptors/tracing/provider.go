package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// NewProvider builds the tracer provider of c: an OTLP exporter (gRPC or
// HTTP) in a batch span processor, parent-based sampling with c's ratio for
// new traces. It returns nil, nil when c is nil (tracing off). The caller
// shuts the provider down, which flushes the spans still queued.
func NewProvider(ctx context.Context, c *configv1.Tracing) (*sdktrace.TracerProvider, error) {
	if c == nil {
		return nil, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch c.GetExporter() {
	case configv1.Tracing_EXPORTER_OTLP_HTTP:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(c.GetEndpoint())}
		if c.GetInsecure() {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.GetEndpoint())}
		if c.GetInsecure() {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(c.GetServiceName()))
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.GetSampleRatio()))),
	), nil
}
