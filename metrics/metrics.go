// Package metrics is edgegate's Prometheus instrumentation: calls by door,
// method, route and code, latency, calls in flight, upstream calls by
// cluster and endpoint, upstream health, policy rejections, config reloads,
// schema discovery by server reflection, build info, and the Go runtime and
// process collectors.
//
// Label values are bounded: a method label is the method's name only when
// the gateway knows it (a compiled-in descriptor or an exact-method route),
// else "other"; routes, clusters and endpoints come from the configuration;
// no path or principal is ever a label.
package metrics

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// OtherMethod is the method label of calls to methods the gateway does not
// know.
const OtherMethod = "other"

// Metrics holds the gateway's collectors and their registry. Its methods
// are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	callsStarted     *prometheus.CounterVec
	callsHandled     *prometheus.CounterVec
	callDuration     *prometheus.HistogramVec
	inFlight         *prometheus.GaugeVec
	upstreamCalls    *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	rejections       *prometheus.CounterVec
	storeFailures    *prometheus.CounterVec
	reloads          *prometheus.CounterVec
	configInfo       *prometheus.GaugeVec
	accessLogDropped prometheus.Counter
	reflectionUp     *prometheus.GaugeVec
	reflectionChange *prometheus.CounterVec

	mu     sync.RWMutex
	known  map[string]bool
	health func() map[string]bool

	calls     sync.Map // callKey → *callSeries
	upstreams sync.Map // upstreamKey → *upstreamSeries
}

// callSeries are the series of the calls of one door, method label and
// route, looked up once and kept: WithLabelValues hashes its labels and
// locks its vector on every call. The label values are bounded (the
// package doc), and so are these.
type callSeries struct {
	route    string
	started  prometheus.Counter
	inFlight prometheus.Gauge
	duration prometheus.Observer
	handled  byCode
}

type callKey struct{ door, method, route string }

// upstreamSeries are the series of one cluster's endpoint.
type upstreamSeries struct {
	duration prometheus.Observer
	calls    byCode
}

type upstreamKey struct{ cluster, endpoint string }

// byCode is a counter per gRPC code, each looked up on its first use.
type byCode struct {
	counters [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
}

// get returns code's counter, or nil when it was not looked up yet (put).
func (b *byCode) get(code codes.Code) prometheus.Counter {
	if code <= codes.Unauthenticated {
		if c := b.counters[code].Load(); c != nil {
			return *c
		}
	}
	return nil
}

// put keeps c as code's counter and returns it.
func (b *byCode) put(code codes.Code, c prometheus.Counter) prometheus.Counter {
	if code <= codes.Unauthenticated {
		b.counters[code].Store(&c)
	}
	return c
}

func (m *Metrics) callSeries(door, method, route string) *callSeries {
	k := callKey{door, method, route}
	if s, ok := m.calls.Load(k); ok {
		return s.(*callSeries)
	}
	s, _ := m.calls.LoadOrStore(k, &callSeries{
		route:    route,
		started:  m.callsStarted.WithLabelValues(door, method),
		inFlight: m.inFlight.WithLabelValues(door),
		duration: m.callDuration.WithLabelValues(door, route),
	})
	return s.(*callSeries)
}

func (m *Metrics) upstreamSeries(cluster, endpoint string) *upstreamSeries {
	k := upstreamKey{cluster, endpoint}
	if s, ok := m.upstreams.Load(k); ok {
		return s.(*upstreamSeries)
	}
	s, _ := m.upstreams.LoadOrStore(k, &upstreamSeries{duration: m.upstreamDuration.WithLabelValues(cluster, endpoint)})
	return s.(*upstreamSeries)
}

// New returns the collectors, registered with a new registry along with
// build info (version) and the Go and process collectors.
func New(version string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		callsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_calls_started_total", Help: "Calls that entered the interceptor chain.",
		}, []string{"door", "method"}),
		callsHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_calls_handled_total", Help: "Calls that finished, by gRPC code.",
		}, []string{"door", "method", "route", "code"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgegate_call_duration_seconds", Help: "Time from a call entering the chain to its end.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"door", "route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgegate_calls_in_flight", Help: "Calls in the chain now.",
		}, []string{"door"}),
		upstreamCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_upstream_calls_total", Help: "Calls forwarded to upstreams, by cluster, endpoint and gRPC code.",
		}, []string{"cluster", "endpoint", "code"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgegate_upstream_call_duration_seconds", Help: "Time of the upstream leg of calls.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"cluster", "endpoint"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_policy_rejections_total", Help: "Calls rejected by a policy (auth, rate limit, …), by kind and policy name.",
		}, []string{"kind", "policy", "door"}),
		storeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_ratelimit_store_failures_total", Help: "Rate limit checks the store (Redis) could not decide in time, by policy.",
		}, []string{"policy"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_config_reloads_total", Help: "Configuration loads after the first, by result (ok, failed).",
		}, []string{"result"}),
		configInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgegate_config_info", Help: "1 for the configuration in force, labelled by its SHA-256 hash.",
		}, []string{"hash"}),
		accessLogDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegate_access_log_dropped_total", Help: "Access log lines not written: lines of calls cancelled by the client over logging.access_log_cancelled_per_second.",
		}),
		reflectionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgegate_schema_reflection_up", Help: "1 when the last fetch of the cluster's descriptors by server reflection succeeded.",
		}, []string{"cluster"}),
		reflectionChange: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_schema_reflection_changes_total", Help: "Changes of the descriptors a cluster serves, found by server reflection.",
		}, []string{"cluster"}),
		known: map[string]bool{},
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgegate_build_info", Help: "1, labelled with the version of edgegate.",
	}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.Registry.MustRegister(m.callsStarted, m.callsHandled, m.callDuration, m.inFlight,
		m.upstreamCalls, m.upstreamDuration, m.rejections, m.storeFailures, m.reloads, m.configInfo, m.accessLogDropped,
		m.reflectionUp, m.reflectionChange, build,
		&healthCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// KnowMethods adds methods ("/pkg.Service/Method": the schema's routed
// methods, the gateway's own services', exact-method routes) to the ones
// labelled by name; every other method is labelled OtherMethod.
func (m *Metrics) KnowMethods(methods []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range methods {
		m.known[x] = true
	}
}

func (m *Metrics) methodLabel(method string) string {
	m.mu.RLock()
	ok := m.known[method]
	m.mu.RUnlock()
	if ok {
		return method
	}
	return OtherMethod
}

// AccessLogDropped counts an access log line not written (a cancelled
// call over the access log's budget).
func (m *Metrics) AccessLogDropped() { m.accessLogDropped.Inc() }

// SetConfig records the hash of the configuration in force.
func (m *Metrics) SetConfig(hash string) {
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(hash).Set(1)
}

// Reloaded counts a configuration reload: ok or failed.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("failed").Inc()
	}
}

// Rejected counts a call rejected by the policy of kind ("auth",
// "ratelimit", …) called policy, from door.
func (m *Metrics) Rejected(kind, policy, door string) {
	m.rejections.WithLabelValues(kind, policy, door).Inc()
}

// StoreFailed counts a rate limit check its store could not decide.
func (m *Metrics) StoreFailed(policy string) {
	m.storeFailures.WithLabelValues(policy).Inc()
}

// SchemaReflectionUp records whether the last fetch of cluster's
// descriptors by server reflection succeeded (edgegate_schema_reflection_up
// 1 or 0). It also starts the cluster's changes counter at 0.
func (m *Metrics) SchemaReflectionUp(cluster string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.reflectionUp.WithLabelValues(cluster).Set(v)
	m.reflectionChange.WithLabelValues(cluster)
}

// SchemaReflectionChanged counts a change of the descriptors cluster
// serves.
func (m *Metrics) SchemaReflectionChanged(cluster string) {
	m.reflectionChange.WithLabelValues(cluster).Inc()
}

// SchemaReflectionRemoved drops cluster's reflection series, for a cluster
// no longer discovered (a reload removed it or its reflection).
func (m *Metrics) SchemaReflectionRemoved(cluster string) {
	m.reflectionUp.DeleteLabelValues(cluster)
	m.reflectionChange.DeleteLabelValues(cluster)
}

// SetHealth sets the function that reports, per cluster, whether it has a
// healthy endpoint; it is called at every scrape.
func (m *Metrics) SetHealth(f func() map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health = f
}

// UpstreamDone records one finished upstream call.
func (m *Metrics) UpstreamDone(cluster, endpoint string, code codes.Code, d time.Duration) {
	if endpoint == "" {
		endpoint = "none"
	}
	u := m.upstreamSeries(cluster, endpoint)
	c := u.calls.get(code)
	if c == nil {
		c = u.calls.put(code, m.upstreamCalls.WithLabelValues(cluster, endpoint, code.String()))
	}
	c.Inc()
	u.duration.Observe(d.Seconds())
}

func (m *Metrics) observe(ctx context.Context, method string, call func(context.Context) error) error {
	info := callinfo.FromContext(ctx)
	door, route := callinfo.DoorGRPC, ""
	if info != nil {
		door, route = info.Door, info.Route
	}
	label := m.methodLabel(method)
	cs := m.callSeries(door, label, route)
	cs.started.Inc()
	cs.inFlight.Inc()
	start := time.Now()
	code := codes.Internal // what a panic below becomes
	defer func() {
		cs.inFlight.Dec()
		end := cs
		if info != nil && info.Route != route {
			end = m.callSeries(door, label, info.Route)
		}
		c := end.handled.get(code)
		if c == nil {
			c = end.handled.put(code, m.callsHandled.WithLabelValues(door, label, end.route, code.String()))
		}
		c.Inc()
		end.duration.Observe(time.Since(start).Seconds())
	}()
	err := call(ctx)
	code = status.Code(err)
	return err
}

// UnaryServerInterceptor counts and times every unary call. It always
// calls the handler.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var resp any
		err := m.observe(ctx, si.FullMethod, func(ctx context.Context) error {
			var err error
			resp, err = handler(ctx, req)
			return err
		})
		return resp, err
	}
}

// StreamServerInterceptor counts and times every streaming and proxied
// call. It always calls the handler.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return m.observe(ss.Context(), si.FullMethod, func(context.Context) error { return handler(srv, ss) })
	}
}

// healthCollector reports edgegate_upstream_healthy per cluster at scrape
// time.
type healthCollector struct{ m *Metrics }

var healthDesc = prometheus.NewDesc("edgegate_upstream_healthy", "1 when the cluster has at least one connected endpoint.", []string{"cluster"}, nil)

func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- healthDesc }

func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h.m.mu.RLock()
	f := h.m.health
	h.m.mu.RUnlock()
	if f == nil {
		return
	}
	for cluster, ok := range f() {
		v := 0.0
		if ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, v, cluster)
	}
}

// ExactMethods lists the methods of exact-method routes, for KnowMethods.
func ExactMethods(patterns []string) []string {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		out = append(out, "/"+strings.TrimPrefix(p, "/"))
	}
	return out
}
