package gateway

import (
	"github.com/edgegate/edgegate/schema"

	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"google.golang.org/grpc"
)

type options struct {
	log        *slog.Logger
	accessLog  *slog.Logger
	accessSet  bool
	unary      []grpc.UnaryServerInterceptor
	stream     []grpc.StreamServerInterceptor
	tp         trace.TracerProvider
	tpSet      bool
	reload     func() error
	runtime    bool
	dryRun     bool
	reflection bool // read reflection in a dry run (Describe)
	compiled   []schema.Compiled
	compSet    bool
}

// Option changes how New builds the gateway.
type Option func(*options)

// WithLogger sets the process log (startup, upstream failures, panics).
// Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithAccessLog sets where access log lines go; nil turns the access log
// off. Default: the process log, unless the configuration disables it.
func WithAccessLog(l *slog.Logger) Option {
	return func(o *options) { o.accessLog, o.accessSet = l, true }
}

// WithInterceptors appends interceptors at the inner end of the chain,
// after the built-in ones.
func WithInterceptors(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) Option {
	return func(o *options) {
		o.unary = append(o.unary, unary...)
		o.stream = append(o.stream, stream...)
	}
}

// WithTracerProvider sets the tracer provider of the gateway's spans,
// instead of the one the configuration's tracing section builds (tests use
// an in-memory exporter this way). nil turns tracing off.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp, o.tpSet = tp, true }
}

// WithReloader sets what POST /reload on the admin server does (the binary
// reloads its config file); without it the admin server has no /reload.
func WithReloader(f func() error) Option {
	return func(o *options) { o.reload = f }
}

// WithRuntime makes the gateway set the process's garbage collector from
// the config's runtime section, at start and on every reload, and return
// the memory its start freed to the OS once it serves. The edgegate
// command uses it; a program that embeds the gateway tunes its own
// runtime.
func WithRuntime() Option {
	return func(o *options) { o.runtime = true }
}

// WithCompiled sets the compiled-in API the gateway knows (its schema's
// compiled source), instead of what generated code has registered
// (schema.CompiledFiles: the packages the binary imports, gen/compiled for
// the edgegate command).
func WithCompiled(files []schema.Compiled) Option {
	return func(o *options) { o.compiled, o.compSet = files, true }
}

// withReflection reads the clusters' server reflection in a dry run
// (Describe).
func withReflection() Option {
	return func(o *options) { o.reflection = true }
}

// withDryRun builds the gateway without starting anything (Check).
func withDryRun() Option {
	return func(o *options) { o.dryRun = true }
}
