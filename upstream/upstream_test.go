package upstream_test

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/upstream"
)

const echoService = "edgegate.testing.v1.EchoService"

func TestClusterConnects(t *testing.T) {
	b := startBackend(t, "a")
	p := newPool(t, upstream.Spec{Config: clusterConfig("orders", b.addr)})
	c := p.Get("orders")
	if c == nil || c.Name() != "orders" {
		t.Fatalf("Get(orders) = %v", c)
	}
	ready(t, c)
	if got, err := unary(t, c, &testingv1.EchoRequest{Message: "hi"}); err != nil || got != "a" {
		t.Fatalf("call: server %q, %v", got, err)
	}
	if p.Get("users") != nil {
		t.Error("Get of an unknown cluster is not nil")
	}
	if cs := p.Clusters(); len(cs) != 1 || cs[0] != c {
		t.Errorf("Clusters() = %v", cs)
	}
}

func TestDNSTarget(t *testing.T) {
	b := startBackend(t, "a")
	p := newPool(t, upstream.Spec{Config: clusterConfig("orders", "dns:///"+b.addr)})
	c := p.Get("orders")
	ready(t, c)
	if got, err := unary(t, c, &testingv1.EchoRequest{}); err != nil || got != "a" {
		t.Fatalf("call: server %q, %v", got, err)
	}
}

func TestClusterNotReady(t *testing.T) {
	p := newPool(t, upstream.Spec{Config: clusterConfig("orders", closedAddr(t))})
	c := p.Get("orders")
	waitState(t, c.Conn(), connectivity.TransientFailure)
	if c.Ready() {
		t.Error("Ready() with no endpoint listening")
	}
}

func TestHealthCheck(t *testing.T) {
	b := startBackend(t, "a")
	// The server as a whole serves; the service asked about does not.
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	b.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_NOT_SERVING)
	cc := clusterConfig("orders", b.addr)
	cc.HealthCheck = &configv1.HealthCheck{ServiceName: echoService}
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	waitState(t, c.Conn(), connectivity.TransientFailure)
	if c.Ready() {
		t.Fatal("Ready() while the endpoint's health says NOT_SERVING")
	}
	if _, err := unary(t, c, &testingv1.EchoRequest{}); grpcstatus.Code(err) != codes.Unavailable {
		t.Errorf("call to a NOT_SERVING endpoint: %v, want UNAVAILABLE", err)
	}
	b.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_SERVING)
	ready(t, c)
	if got, err := unary(t, c, &testingv1.EchoRequest{}); err != nil || got != "a" {
		t.Errorf("call once SERVING: %q, %v", got, err)
	}
}

func TestSlots(t *testing.T) {
	cc := clusterConfig("orders", closedAddr(t))
	cc.MaxConcurrentCalls = 2
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	if c.MaxConcurrent() != 2 {
		t.Errorf("MaxConcurrent() = %d, want 2", c.MaxConcurrent())
	}
	if first, second := c.AcquireSlot(), c.AcquireSlot(); !first || !second {
		t.Fatal("the first two slots were refused")
	}
	if c.AcquireSlot() {
		t.Fatal("a third call in flight was allowed, limit 2")
	}
	// A refusal takes no slot: one release frees exactly one.
	c.ReleaseSlot()
	if !c.AcquireSlot() {
		t.Fatal("slot refused after a release")
	}
	if c.AcquireSlot() {
		t.Fatal("two slots after one release")
	}
	c.ReleaseSlot()
	c.ReleaseSlot()
	if first, second := c.AcquireSlot(), c.AcquireSlot(); !first || !second {
		t.Fatal("slots not all free after releasing them all")
	}
}

func TestSlotsConcurrently(t *testing.T) {
	cc := clusterConfig("orders", closedAddr(t))
	cc.MaxConcurrentCalls = 3
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	var (
		wg  sync.WaitGroup
		got atomic.Int64
	)
	start := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if c.AcquireSlot() {
				got.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got.Load() != 3 {
		t.Errorf("%d of 16 concurrent acquires succeeded, limit 3", got.Load())
	}
}

func TestNoSlotLimit(t *testing.T) {
	c := newPool(t, upstream.Spec{Config: clusterConfig("orders", closedAddr(t))}).Get("orders")
	if c.MaxConcurrent() != 0 {
		t.Errorf("MaxConcurrent() = %d, want 0", c.MaxConcurrent())
	}
	for i := range 1000 {
		if !c.AcquireSlot() {
			t.Fatalf("slot %d refused without a limit", i+1)
		}
	}
}

func TestReuse(t *testing.T) {
	a, b, b2, d := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "b2"), startBackend(t, "d")
	first, err := upstream.New([]upstream.Spec{
		{Config: clusterConfig("same", a.addr)},
		{Config: clusterConfig("moved", b.addr)},
		{Config: clusterConfig("retried", a.addr)},
		{Config: clusterConfig("gone", d.addr)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range first.Clusters() {
		ready(t, c)
	}
	retry := clusterConfig("retried", a.addr)
	second, err := upstream.New([]upstream.Spec{
		{Config: clusterConfig("same", a.addr), RetryMethods: nil},
		{Config: clusterConfig("moved", b2.addr)},
		// The same cluster config, but its retry methods changed.
		{Config: retry, RetryMethods: []string{"/" + echoService + "/Unary"}},
		{Config: clusterConfig("new", a.addr)},
	}, first)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	if second.Get("same") != first.Get("same") {
		t.Error("an unchanged cluster was dialled again")
	}
	for _, name := range []string{"moved", "retried"} {
		if second.Get(name) == first.Get(name) {
			t.Errorf("changed cluster %q was shared", name)
		}
	}
	if second.Get("gone") != nil {
		t.Error("a removed cluster is still in the new pool")
	}

	// The old pool gives up what the new one does not share.
	first.CloseExcept(second)
	for _, name := range []string{"moved", "retried", "gone"} {
		if s := first.Get(name).Conn().GetState(); s != connectivity.Shutdown {
			t.Errorf("old cluster %q is %v after CloseExcept, want shut down", name, s)
		}
	}
	if s := first.Get("same").Conn().GetState(); s == connectivity.Shutdown {
		t.Fatal("the shared cluster was closed")
	}
	for name, want := range map[string]string{"same": "a", "moved": "b2", "new": "a"} {
		c := second.Get(name)
		ready(t, c)
		if got, err := unary(t, c, &testingv1.EchoRequest{}); err != nil || got != want {
			t.Errorf("cluster %q: server %q, %v; want %q", name, got, err, want)
		}
	}

	if err := second.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, c := range second.Clusters() {
		if s := c.Conn().GetState(); s != connectivity.Shutdown {
			t.Errorf("cluster %q is %v after Close", c.Name(), s)
		}
	}
}

func TestReuseIgnoresTheLogger(t *testing.T) {
	b := startBackend(t, "a")
	first := newPool(t, upstream.Spec{Config: clusterConfig("same", b.addr)})
	second, err := upstream.New([]upstream.Spec{{Config: clusterConfig("same", b.addr), Log: slog.New(slog.DiscardHandler)}}, first)
	if err != nil {
		t.Fatal(err)
	}
	if second.Get("same") != first.Get("same") {
		t.Error("a cluster with the same config was dialled again")
	}
}

func TestNewFailsOnABadCluster(t *testing.T) {
	b := startBackend(t, "a")
	old := newPool(t, upstream.Spec{Config: clusterConfig("kept", b.addr)})
	bad := clusterConfig("secure", b.addr)
	bad.Tls = &configv1.UpstreamTLS{CaFile: filepath.Join(t.TempDir(), "missing-ca.pem")}
	p, err := upstream.New([]upstream.Spec{
		{Config: clusterConfig("kept", b.addr)},
		{Config: clusterConfig("fresh", b.addr)},
		{Config: bad},
	}, old)
	if p != nil || err == nil {
		t.Fatalf("New = %v, %v; want an error", p, err)
	}
	if !strings.Contains(err.Error(), `clusters[2].tls: cluster "secure"`) || !strings.Contains(err.Error(), "tls") {
		t.Errorf("error %q does not name the cluster and its TLS", err)
	}
	// The reused cluster is still the old pool's; "fresh", dialled for the
	// failed pool, was closed (goleak fails the package otherwise).
	c := old.Get("kept")
	if s := c.Conn().GetState(); s == connectivity.Shutdown {
		t.Fatal("the old pool's cluster was closed by the failed New")
	}
	ready(t, c)
	if _, err := unary(t, c, &testingv1.EchoRequest{}); err != nil {
		t.Errorf("old pool's cluster after the failed New: %v", err)
	}
}

func TestMaxMessageBytes(t *testing.T) {
	b := startBackend(t, "a")
	cc := clusterConfig("orders", b.addr)
	cc.MaxMessageBytes = 1024
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	ready(t, c)
	if _, err := unary(t, c, &testingv1.EchoRequest{Payload: make([]byte, 512)}); err != nil {
		t.Fatalf("a message under the limit: %v", err)
	}
	if _, err := unary(t, c, &testingv1.EchoRequest{Payload: make([]byte, 2048)}); grpcstatus.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message over the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
}

func TestRetryPolicy(t *testing.T) {
	unavailable := &testingv1.EchoRequest{FailWith: &status.Status{Code: int32(codes.Unavailable), Message: "overloaded"}}
	for _, tc := range []struct {
		name     string
		methods  []string
		attempts int
	}{
		{"retried method", []string{"/" + echoService + "/Unary"}, 3},
		{"other method", []string{"/" + echoService + "/ServerStream"}, 1},
		{"no methods", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBackend(t, "a")
			cc := clusterConfig("orders", b.addr)
			cc.Retry = &configv1.RetryPolicy{MaxAttempts: 3, BudgetRatio: proto.Float64(0.1)}
			c := newPool(t, upstream.Spec{Config: cc, RetryMethods: tc.methods}).Get("orders")
			ready(t, c)
			if _, err := unary(t, c, unavailable); grpcstatus.Code(err) != codes.Unavailable {
				t.Fatalf("call: %v, want UNAVAILABLE", err)
			}
			// The server counts a call as it ends, before its status is
			// sent: every attempt is counted when the call returns.
			if n := b.callsOf("Unary"); n != tc.attempts {
				t.Errorf("%d attempts reached the server, want %d", n, tc.attempts)
			}
		})
	}
}

func TestServiceConfig(t *testing.T) {
	sc := func(sp upstream.Spec) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(upstream.ServiceConfig(sp)), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	lb := func(m map[string]any) string {
		l, _ := m["loadBalancingConfig"].([]any)
		if len(l) != 1 {
			return ""
		}
		for k := range l[0].(map[string]any) {
			return k
		}
		return ""
	}
	for policy, want := range map[configv1.LoadBalancing]string{
		configv1.LoadBalancing_LOAD_BALANCING_UNSPECIFIED:   "round_robin",
		configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN:   "round_robin",
		configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST:    "pick_first",
		configv1.LoadBalancing_LOAD_BALANCING_LEAST_REQUEST: "least_request_experimental",
	} {
		cc := clusterConfig("c", "127.0.0.1:1")
		cc.LoadBalancing = policy
		if got := lb(sc(upstream.Spec{Config: cc})); got != want {
			t.Errorf("%v: balancer %q, want %q", policy, got, want)
		}
	}

	plain := sc(upstream.Spec{Config: clusterConfig("c", "127.0.0.1:1")})
	for _, k := range []string{"healthCheckConfig", "methodConfig", "retryThrottling"} {
		if _, ok := plain[k]; ok {
			t.Errorf("plain cluster has %s: %v", k, plain)
		}
	}

	cc := clusterConfig("c", "127.0.0.1:1")
	cc.HealthCheck = &configv1.HealthCheck{ServiceName: "orders.v1.Orders"}
	cc.Retry = &configv1.RetryPolicy{MaxAttempts: 4, BudgetRatio: proto.Float64(0.25)}
	full := sc(upstream.Spec{Config: cc, RetryMethods: []string{"/orders.v1.Orders/Get", "orders.v1.Orders/List"}})
	if got := full["healthCheckConfig"]; !reflect.DeepEqual(got, map[string]any{"serviceName": "orders.v1.Orders"}) {
		t.Errorf("healthCheckConfig %v", got)
	}
	wantMC := []any{map[string]any{
		"name": []any{
			map[string]any{"service": "orders.v1.Orders", "method": "Get"},
			map[string]any{"service": "orders.v1.Orders", "method": "List"},
		},
		"retryPolicy": map[string]any{
			"maxAttempts": 4.0, "initialBackoff": "0.02s", "maxBackoff": "0.5s", "backoffMultiplier": 2.0,
			"retryableStatusCodes": []any{"UNAVAILABLE"},
		},
	}}
	if got := full["methodConfig"]; !reflect.DeepEqual(got, wantMC) {
		t.Errorf("methodConfig %v\nwant %v", got, wantMC)
	}
	if got := full["retryThrottling"]; !reflect.DeepEqual(got, map[string]any{"maxTokens": 10.0, "tokenRatio": 0.25}) {
		t.Errorf("retryThrottling %v", got)
	}

	// A retry policy without methods to apply to retries nothing.
	noMethods := sc(upstream.Spec{Config: cc})
	if _, ok := noMethods["methodConfig"]; ok {
		t.Errorf("methodConfig without retry methods: %v", noMethods)
	}
}

func TestNoOutlierDetection(t *testing.T) {
	b := startBackend(t, "a")
	c := newPool(t, upstream.Spec{Config: clusterConfig("orders", b.addr)}).Get("orders")
	ready(t, c)
	for range 20 {
		c.Report(b.addr, codes.Unavailable)
	}
	if ej := c.Ejected(); ej != nil {
		t.Errorf("Ejected() = %v without outlier detection", ej)
	}
	if _, err := unary(t, c, &testingv1.EchoRequest{}); err != nil {
		t.Errorf("call after the reports: %v", err)
	}
}

func TestNoOutlierDetectionForDNS(t *testing.T) {
	b := startBackend(t, "a")
	cc := clusterConfig("orders", "dns:///"+b.addr)
	cc.OutlierDetection = &configv1.OutlierDetection{ConsecutiveFailures: 1, MaxEjectionPercent: 100}
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	ready(t, c)
	for range 5 {
		c.Report(b.addr, codes.Unavailable)
	}
	if ej := c.Ejected(); ej != nil {
		t.Errorf("Ejected() = %v for a dns:/// cluster", ej)
	}
}

// sorted returns s sorted.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
