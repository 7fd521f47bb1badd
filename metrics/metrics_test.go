package metrics_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/metrics"
)

// A method no descriptor compiled in declares.
const routed = "/shop.v1.Orders/Get"

// healthCheck is a method of a compiled-in descriptor (grpc.health.v1,
// linked in by the import above).
var healthCheck = "/" + healthpb.Health_ServiceDesc.ServiceName + "/Check"

type labels map[string]string

// find returns the sample of the family name whose labels are exactly l,
// or nil.
func find(t *testing.T, m *metrics.Metrics, name string, l labels) *dto.Metric {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			got := labels{}
			for _, lp := range s.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if reflect.DeepEqual(got, l) {
				return s
			}
		}
	}
	return nil
}

// samples returns the label sets of the family name.
func samples(t *testing.T, m *metrics.Metrics, name string) []labels {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []labels
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			l := labels{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

// value returns the counter's or gauge's value of the sample, failing t
// when there is none.
func value(t *testing.T, m *metrics.Metrics, name string, l labels) float64 {
	t.Helper()
	s := find(t, m, name, l)
	switch {
	case s == nil:
		t.Fatalf("no %s%v; have %v", name, l, samples(t, m, name))
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, l)
	return 0
}

func checkValue(t *testing.T, m *metrics.Metrics, name string, l labels, want float64) {
	t.Helper()
	if got := value(t, m, name, l); got != want {
		t.Errorf("%s%v = %v, want %v", name, l, got, want)
	}
}

// histogram returns the sample count and sum of the histogram's sample.
func histogram(t *testing.T, m *metrics.Metrics, name string, l labels) (uint64, float64) {
	t.Helper()
	s := find(t, m, name, l)
	if s == nil || s.Histogram == nil {
		t.Fatalf("no histogram %s%v; have %v", name, l, samples(t, m, name))
	}
	return s.GetHistogram().GetSampleCount(), s.GetHistogram().GetSampleSum()
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

func unary(m *metrics.Metrics, ctx context.Context, method string, h grpc.UnaryHandler) (any, error) {
	return m.UnaryServerInterceptor()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, h)
}

func streaming(m *metrics.Metrics, ctx context.Context, method string, h grpc.StreamHandler) error {
	//nolint:contextcheck // ctx travels in the stream, as a server stream carries it
	return m.StreamServerInterceptor()(nil, &stream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method}, h)
}

func TestCallsByDoorMethodRouteCode(t *testing.T) {
	m := metrics.New("v1.2.3")
	m.KnowMethods([]string{routed})

	// A REST call the router sends to route orders-get, failing NOT_FOUND.
	info := &callinfo.Info{Door: callinfo.DoorREST}
	resp, err := unary(m, callinfo.NewContext(context.Background(), info), routed, func(_ context.Context, req any) (any, error) {
		info.Route = "orders-get"
		return req, status.Error(codes.NotFound, "no order")
	})
	if resp != "req" || status.Code(err) != codes.NotFound {
		t.Fatalf("interceptor answered %v %v, want the handler's answer", resp, err)
	}
	// Two native gRPC stream calls, without a call record, OK.
	for range 2 {
		if err := streaming(m, context.Background(), routed, func(any, grpc.ServerStream) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}

	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "rest", "method": routed}, 1)
	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "grpc", "method": routed}, 2)
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "rest", "method": routed, "route": "orders-get", "code": "NotFound"}, 1)
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "grpc", "method": routed, "route": "", "code": "OK"}, 2)
	if n := len(samples(t, m, "edgegate_calls_handled_total")); n != 2 {
		t.Errorf("%d calls_handled series, want 2: %v", n, samples(t, m, "edgegate_calls_handled_total"))
	}
	if n, _ := histogram(t, m, "edgegate_call_duration_seconds", labels{"door": "rest", "route": "orders-get"}); n != 1 {
		t.Errorf("rest call duration count %d, want 1", n)
	}
	if n, _ := histogram(t, m, "edgegate_call_duration_seconds", labels{"door": "grpc", "route": ""}); n != 2 {
		t.Errorf("grpc call duration count %d, want 2", n)
	}
}

func TestMethodLabel(t *testing.T) {
	m := metrics.New("dev")
	ok := func(context.Context, any) (any, error) { return nil, nil }
	call := func(method string) {
		if _, err := unary(m, context.Background(), method, ok); err != nil {
			t.Fatal(err)
		}
	}
	call("/made.up.v1.Service/Anything")
	call("/another.Unknown/Method")
	call(routed) // not known yet
	// Methods are known when the gateway says so (its schema's and own
	// services' methods, exact-method routes), never from the descriptors
	// compiled into the binary.
	call(healthCheck)
	m.KnowMethods([]string{healthCheck})
	call(healthCheck)
	m.KnowMethods(metrics.ExactMethods([]string{"shop.v1.Orders/Get"}))
	call(routed)

	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "grpc", "method": metrics.OtherMethod}, 4)
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "grpc", "method": "other", "route": "", "code": "OK"}, 4)
	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "grpc", "method": healthCheck}, 1)
	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "grpc", "method": routed}, 1)
	for _, l := range samples(t, m, "edgegate_calls_started_total") {
		if l["method"] == "/made.up.v1.Service/Anything" || l["method"] == "/another.Unknown/Method" {
			t.Errorf("unknown method labelled by name: %v", l)
		}
	}
}

func TestExactMethods(t *testing.T) {
	got := metrics.ExactMethods([]string{"a.v1.S/M", "/b.v1.T/N"})
	if want := []string{"/a.v1.S/M", "/b.v1.T/N"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExactMethods = %v, want %v", got, want)
	}
	if got := metrics.ExactMethods(nil); got == nil || len(got) != 0 {
		t.Errorf("ExactMethods(nil) = %#v, want empty", got)
	}
}

func TestInFlight(t *testing.T) {
	m := metrics.New("dev")
	in := map[string]labels{"grpc": {"door": "grpc"}, "rest": {"door": "rest"}}
	entered := make(chan struct{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	start := func(door string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := callinfo.NewContext(context.Background(), &callinfo.Info{Door: door})
			_ = streaming(m, ctx, routed, func(any, grpc.ServerStream) error {
				entered <- struct{}{}
				<-release
				return nil
			})
		}()
		<-entered
	}
	start("grpc")
	checkValue(t, m, "edgegate_calls_in_flight", in["grpc"], 1)
	start("grpc")
	start("rest")
	checkValue(t, m, "edgegate_calls_in_flight", in["grpc"], 2)
	checkValue(t, m, "edgegate_calls_in_flight", in["rest"], 1)
	// Calls started but not handled yet.
	checkValue(t, m, "edgegate_calls_started_total", labels{"door": "grpc", "method": "other"}, 2)
	if s := samples(t, m, "edgegate_calls_handled_total"); len(s) != 0 {
		t.Errorf("calls handled before any ended: %v", s)
	}
	close(release)
	wg.Wait()
	checkValue(t, m, "edgegate_calls_in_flight", in["grpc"], 0)
	checkValue(t, m, "edgegate_calls_in_flight", in["rest"], 0)
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "grpc", "method": "other", "route": "", "code": "OK"}, 2)
}

func TestPanicCountsAsInternal(t *testing.T) {
	m := metrics.New("dev")
	for _, kind := range []string{"unary", "stream"} {
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("%s: recovered %v, want the handler's panic to go on up", kind, r)
				}
			}()
			if kind == "unary" {
				_, _ = unary(m, context.Background(), routed, func(context.Context, any) (any, error) { panic("boom") })
			} else {
				_ = streaming(m, context.Background(), routed, func(any, grpc.ServerStream) error { panic("boom") })
			}
		}()
	}
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "grpc", "method": "other", "route": "", "code": "Internal"}, 2)
	checkValue(t, m, "edgegate_calls_in_flight", labels{"door": "grpc"}, 0)
	if n, _ := histogram(t, m, "edgegate_call_duration_seconds", labels{"door": "grpc", "route": ""}); n != 2 {
		t.Errorf("duration count %d after two panics, want 2", n)
	}
}

func TestPlainErrorIsUnknown(t *testing.T) {
	m := metrics.New("dev")
	_ = streaming(m, context.Background(), routed, func(any, grpc.ServerStream) error { return errors.New("broken pipe") })
	checkValue(t, m, "edgegate_calls_handled_total", labels{"door": "grpc", "method": "other", "route": "", "code": "Unknown"}, 1)
}

func TestUpstreamDone(t *testing.T) {
	m := metrics.New("dev")
	m.UpstreamDone("orders", "10.0.0.1:50051", codes.Unavailable, 20*time.Millisecond)
	m.UpstreamDone("orders", "10.0.0.1:50051", codes.Unavailable, 30*time.Millisecond)
	m.UpstreamDone("orders", "10.0.0.1:50051", codes.OK, time.Millisecond)
	// A call that reached no endpoint.
	m.UpstreamDone("orders", "", codes.DeadlineExceeded, time.Second)

	checkValue(t, m, "edgegate_upstream_calls_total", labels{"cluster": "orders", "endpoint": "10.0.0.1:50051", "code": "Unavailable"}, 2)
	checkValue(t, m, "edgegate_upstream_calls_total", labels{"cluster": "orders", "endpoint": "10.0.0.1:50051", "code": "OK"}, 1)
	checkValue(t, m, "edgegate_upstream_calls_total", labels{"cluster": "orders", "endpoint": "none", "code": "DeadlineExceeded"}, 1)
	n, sum := histogram(t, m, "edgegate_upstream_call_duration_seconds", labels{"cluster": "orders", "endpoint": "10.0.0.1:50051"})
	if n != 3 || sum < 0.0509 || sum > 0.0511 {
		t.Errorf("upstream duration count %d sum %v, want 3 and 0.051", n, sum)
	}
	if n, sum := histogram(t, m, "edgegate_upstream_call_duration_seconds", labels{"cluster": "orders", "endpoint": "none"}); n != 1 || sum != 1 {
		t.Errorf("no-endpoint duration count %d sum %v, want 1 and 1", n, sum)
	}
}

func TestRejectedAndStoreFailed(t *testing.T) {
	m := metrics.New("dev")
	m.Rejected("ratelimit", "per-ip", "rest")
	m.Rejected("ratelimit", "per-ip", "rest")
	m.Rejected("ratelimit", "per-ip", "grpc")
	m.Rejected("auth", "users", "grpc-web")
	m.StoreFailed("per-ip")
	m.StoreFailed("per-ip")
	m.StoreFailed("shared")

	checkValue(t, m, "edgegate_policy_rejections_total", labels{"kind": "ratelimit", "policy": "per-ip", "door": "rest"}, 2)
	checkValue(t, m, "edgegate_policy_rejections_total", labels{"kind": "ratelimit", "policy": "per-ip", "door": "grpc"}, 1)
	checkValue(t, m, "edgegate_policy_rejections_total", labels{"kind": "auth", "policy": "users", "door": "grpc-web"}, 1)
	checkValue(t, m, "edgegate_ratelimit_store_failures_total", labels{"policy": "per-ip"}, 2)
	checkValue(t, m, "edgegate_ratelimit_store_failures_total", labels{"policy": "shared"}, 1)
}

func TestReloaded(t *testing.T) {
	m := metrics.New("dev")
	// Both results are there from the start, at 0.
	checkValue(t, m, "edgegate_config_reloads_total", labels{"result": "ok"}, 0)
	checkValue(t, m, "edgegate_config_reloads_total", labels{"result": "failed"}, 0)
	m.Reloaded(true)
	m.Reloaded(false)
	m.Reloaded(false)
	checkValue(t, m, "edgegate_config_reloads_total", labels{"result": "ok"}, 1)
	checkValue(t, m, "edgegate_config_reloads_total", labels{"result": "failed"}, 2)
}

func TestSetConfigReplacesTheHash(t *testing.T) {
	m := metrics.New("dev")
	if s := samples(t, m, "edgegate_config_info"); len(s) != 0 {
		t.Errorf("config info before SetConfig: %v", s)
	}
	m.SetConfig("aaa111")
	checkValue(t, m, "edgegate_config_info", labels{"hash": "aaa111"}, 1)
	m.SetConfig("bbb222")
	checkValue(t, m, "edgegate_config_info", labels{"hash": "bbb222"}, 1)
	if s := samples(t, m, "edgegate_config_info"); len(s) != 1 {
		t.Errorf("config info %v, want only the hash in force", s)
	}
}

func TestHealth(t *testing.T) {
	m := metrics.New("dev")
	if s := samples(t, m, "edgegate_upstream_healthy"); len(s) != 0 {
		t.Errorf("health before SetHealth: %v", s)
	}
	var mu sync.Mutex
	healthy := map[string]bool{"orders": true, "users": false}
	m.SetHealth(func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]bool{}
		for k, v := range healthy {
			out[k] = v
		}
		return out
	})
	checkValue(t, m, "edgegate_upstream_healthy", labels{"cluster": "orders"}, 1)
	checkValue(t, m, "edgegate_upstream_healthy", labels{"cluster": "users"}, 0)
	// Asked at every scrape, not cached.
	mu.Lock()
	healthy["users"] = true
	delete(healthy, "orders")
	mu.Unlock()
	checkValue(t, m, "edgegate_upstream_healthy", labels{"cluster": "users"}, 1)
	if s := samples(t, m, "edgegate_upstream_healthy"); len(s) != 1 {
		t.Errorf("health %v after orders left, want users only", s)
	}
}

func TestBuildAndRuntimeCollectors(t *testing.T) {
	m := metrics.New("v9.8.7")
	checkValue(t, m, "edgegate_build_info", labels{"version": "v9.8.7"}, 1)
	if value(t, m, "go_goroutines", labels{}) < 1 {
		t.Error("go_goroutines < 1")
	}
	if s := find(t, m, "process_start_time_seconds", labels{}); s == nil {
		t.Error("no process collector")
	}
}

func TestSchemaReflection(t *testing.T) {
	m := metrics.New("test")
	shop := labels{"cluster": "shop"}
	m.SchemaReflectionUp("shop", true)
	checkValue(t, m, "edgegate_schema_reflection_up", shop, 1)
	checkValue(t, m, "edgegate_schema_reflection_changes_total", shop, 0)
	m.SchemaReflectionChanged("shop")
	m.SchemaReflectionChanged("shop")
	m.SchemaReflectionUp("shop", false)
	checkValue(t, m, "edgegate_schema_reflection_up", shop, 0)
	checkValue(t, m, "edgegate_schema_reflection_changes_total", shop, 2)

	m.SchemaReflectionRemoved("shop")
	if s := samples(t, m, "edgegate_schema_reflection_up"); len(s) != 0 {
		t.Errorf("edgegate_schema_reflection_up after SchemaReflectionRemoved = %v, want none", s)
	}
	if s := samples(t, m, "edgegate_schema_reflection_changes_total"); len(s) != 0 {
		t.Errorf("edgegate_schema_reflection_changes_total after SchemaReflectionRemoved = %v, want none", s)
	}
}
