package test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/gateway"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

func TestMetrics(t *testing.T) {
	doors, _, gw := allDoors(t)
	fail := statusProto(t, codes.NotFound, "no", nil)
	// The mix: per door, 3 OK and 2 NOT_FOUND unary calls; 1 server stream.
	for _, d := range doors {
		for range 3 {
			if r := d.unary(t, &testingv1.EchoRequest{}, nil, 0); r.st.Code() != codes.OK {
				t.Fatal(r.st)
			}
		}
		for range 2 {
			if r := d.unary(t, &testingv1.EchoRequest{FailWith: fail}, nil, 0); r.st.Code() != codes.NotFound {
				t.Fatal(r.st)
			}
		}
		if r := d.stream(t, &testingv1.EchoRequest{Repeat: 2}, nil); r.st.Code() != codes.OK {
			t.Fatal(r.st)
		}
	}
	// An unknown method is labelled "other", never by its name.
	_ = Dial(t, gw.Addr).Invoke(Ctx(t, 5*time.Second), "/x.y.Z/Nope", &testingv1.EchoRequest{}, &testingv1.EchoResponse{})

	mfs := scrape(t, gw)
	unary := "/edgegate.testing.v1.EchoService/Unary"
	for _, door := range []string{"grpc", "grpc-web", "rest"} {
		for code, want := range map[string]float64{"OK": 3, "NotFound": 2} {
			got := counter(t, mfs, "edgegate_calls_handled_total", map[string]string{"door": door, "method": unary, "route": "echo", "code": code})
			if got != want {
				t.Errorf("calls_handled{door=%s,code=%s} = %v, want %v", door, code, got, want)
			}
		}
		if got := counter(t, mfs, "edgegate_calls_started_total", map[string]string{"door": door, "method": unary}); got != 5 {
			t.Errorf("calls_started{door=%s} = %v, want 5", door, got)
		}
		h := sample(mfs, "edgegate_call_duration_seconds", map[string]string{"door": door, "route": "echo"})
		if h == nil || h.GetHistogram().GetSampleCount() != 6 {
			t.Errorf("call_duration{door=%s} count = %v, want 6", door, h.GetHistogram().GetSampleCount())
		}
		if g := sample(mfs, "edgegate_calls_in_flight", map[string]string{"door": door}); g == nil || g.GetGauge().GetValue() != 0 {
			t.Errorf("calls_in_flight{door=%s} = %v, want 0", door, g)
		}
	}
	if got := counter(t, mfs, "edgegate_calls_handled_total", map[string]string{"door": "grpc", "method": "other", "code": "Unimplemented"}); got != 1 {
		t.Errorf("unknown method: handled{method=other} = %v, want 1", got)
	}
	for _, m := range mfs["edgegate_calls_handled_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "x.y.Z") {
				t.Errorf("an unknown method became a label value: %v", m)
			}
		}
	}
	if got := counter(t, mfs, "edgegate_upstream_calls_total", map[string]string{"cluster": "echo", "code": "OK"}); got != 12 {
		t.Errorf("upstream_calls{echo,OK} = %v, want 12", got)
	}
	if got := counter(t, mfs, "edgegate_upstream_calls_total", map[string]string{"cluster": "echo", "code": "NotFound"}); got != 6 {
		t.Errorf("upstream_calls{echo,NotFound} = %v, want 6", got)
	}
	if h := sample(mfs, "edgegate_upstream_healthy", map[string]string{"cluster": "echo"}); h == nil || h.GetGauge().GetValue() != 1 {
		t.Errorf("upstream_healthy{echo} = %v", h)
	}
	for _, name := range []string{"edgegate_build_info", "edgegate_config_info", "go_goroutines", "process_resident_memory_bytes", "edgegate_config_reloads_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// traceDoors sends one call with a client trace context through each door.
func TestTracePropagation(t *testing.T) {
	spans, tp := newSpanRecorder()
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr), gateway.WithTracerProvider(tp))
	base := "http://" + gw.Addr
	doors := []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}}
	for i, d := range doors {
		traceID := fmt.Sprintf("%032x", 0xabc000+i)
		clientSpan := fmt.Sprintf("%016x", 0x1234+i)
		tp := "00-" + traceID + "-" + clientSpan + "-01"
		if r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"traceparent": tp}, 0); r.st.Code() != codes.OK {
			t.Fatalf("%s: %v", d.name(), r.st)
		}
		call := up.NextCall(t)
		got := call.MD.Get("traceparent")
		if len(got) != 1 {
			t.Fatalf("%s: upstream traceparent %q", d.name(), got)
		}
		parts := strings.Split(got[0], "-")
		if len(parts) != 4 || parts[1] != traceID {
			t.Fatalf("%s: upstream traceparent %q, want trace %s", d.name(), got[0], traceID)
		}
		ended := spans.trace(t, traceID, 1)
		gwSpan := &ended[len(ended)-1]
		if gwSpan.Parent.SpanID().String() != clientSpan {
			t.Errorf("%s: gateway span's parent %s, want the client's %s", d.name(), gwSpan.Parent.SpanID(), clientSpan)
		}
		if parts[2] != gwSpan.SpanContext.SpanID().String() {
			t.Errorf("%s: upstream parent %s, want the gateway span %s", d.name(), parts[2], gwSpan.SpanContext.SpanID())
		}
		if gwSpan.SpanKind != trace.SpanKindServer || gwSpan.Name != "edgegate.testing.v1.EchoService/Unary" {
			t.Errorf("%s: span %q kind %v", d.name(), gwSpan.Name, gwSpan.SpanKind)
		}
		attrs := map[string]string{}
		for _, a := range gwSpan.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["edgegate.door"] != d.name() || attrs["edgegate.route"] != "echo" || attrs["edgegate.upstream"] != "echo" {
			t.Errorf("%s: span attributes %v", d.name(), attrs)
		}
		// The access log line carries the trace id (written, by the HTTP
		// doors, after the answer: wait for it).
		gw.Logs.AccessLine(t, `"trace_id":"`+traceID+`"`)
	}
}

// otlpReceiver is an in-process OTLP/gRPC trace collector.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
	got   chan struct{}
}

func (o *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.names = append(o.names, s.GetName())
			}
		}
	}
	select {
	case o.got <- struct{}{}:
	default:
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestOTLPExportFromConfig(t *testing.T) {
	rcv := &otlpReceiver{got: make(chan struct{}, 1)}
	addr := StartServer(t, func(s *grpc.Server) { collectortrace.RegisterTraceServiceServer(s, rcv) })
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+fmt.Sprintf("tracing: {exporter: EXPORTER_OTLP_GRPC, endpoint: %q, insecure: true}\n", addr))
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	// Shutdown flushes the batch.
	if err := gw.Shutdown(Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rcv.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the OTLP receiver got no span")
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.names) == 0 || rcv.names[0] != "edgegate.testing.v1.EchoService/Unary" {
		t.Fatalf("spans %v", rcv.names)
	}
}

func TestAccessLogFieldsAndSecrets(t *testing.T) {
	doors, _, gw := allDoors(t)
	secrets := map[string]string{
		"authorization": "Bearer sekr1t-token-value",
		"x-api-key":     "sekr1t-api-key",
		"cookie":        "session=sekr1t-cookie",
	}
	for _, d := range doors {
		md := map[string]string{"x-request-id": "log-" + d.name(), "user-agent": "test-agent/1.0"}
		for k, v := range secrets {
			md[k] = v
		}
		if r := d.unary(t, &testingv1.EchoRequest{Message: "m"}, md, 0); r.st.Code() != codes.OK {
			t.Fatalf("%s: %v", d.name(), r.st)
		}
		line := gw.Logs.AccessLine(t, "log-"+d.name())
		want := []string{`"door":"` + d.name() + `"`, `"method":"/edgegate.testing.v1.EchoService/Unary"`, `"route":"echo"`, `"upstream":"echo"`,
			`"endpoint":"127.0.0.1:`, `"code":"OK"`, `"duration_ms":`, `"bytes_in":`, `"bytes_out":`, `"client_ip":"127.0.0.1"`, `"user_agent":"`}
		if d.name() != "grpc" {
			want = append(want, `"http_status":200`, `"http_method":"POST"`, `"http_path":"`)
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: line %s lacks %s", d.name(), line, w)
			}
		}
	}
	for _, v := range secrets {
		if strings.Contains(gw.Logs.String(), "sekr1t") {
			t.Fatalf("a secret (%s) reached the log:\n%s", v, gw.Logs.String())
		}
	}
	// A request refused before the chain is logged too, with its status.
	r := doHTTP(t, nil, "GET", "http://"+gw.Addr+"/v1/nowhere", "", map[string]string{"x-request-id": "nowhere-1"})
	if r.code != 404 {
		t.Errorf("/v1/nowhere: %d, want 404", r.code)
	}
	gw.Logs.WaitContains(t, `"http_path":"/v1/nowhere","http_status":404`)
}

func TestAccessLogSamplingAndRouteDisable(t *testing.T) {
	up := StartEcho(t, "up")
	cfg := strings.Replace(EchoConfig(up.Addr), "    cluster: echo\n", "    cluster: echo\n    disable_access_log: true\n", 1)
	gw := StartGateway(t, cfg)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	// The native gRPC door logs a call as its handler returns, before the
	// client has the answer: a line for it would be there now.
	if strings.Contains(gw.Logs.String(), `"msg":"call"`) {
		t.Fatal("a route with disable_access_log was logged")
	}

	up2 := StartEcho(t, "up2")
	gw2 := StartGateway(t, EchoConfig(up2.Addr)+"logging: {access_log_sample_ratio: 0}\n")
	c2 := testingv1.NewEchoServiceClient(Dial(t, gw2.Addr))
	for range 20 {
		if _, err := c2.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c2.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{FailWith: statusProto(t, codes.Internal, "x", nil)})
	// Every line of these native gRPC calls is written before its answer.
	if n := strings.Count(gw2.Logs.String(), `"msg":"call"`); n != 1 {
		t.Fatalf("sample ratio 0: %d lines, want only the failed call's", n)
	}
}

func TestAdminEndpoints(t *testing.T) {
	doors, _, gw := allDoors(t)
	if r := doors[0].unary(t, &testingv1.EchoRequest{}, nil, 0); r.st.Code() != codes.OK {
		t.Fatal(r.st) // the cluster is connected from here on
	}
	for path, want := range map[string]string{
		"/healthz":      `"ok"`,
		"/readyz":       `"ready"`,
		"/routes":       `"match": "service edgegate.testing.v1.EchoService"`,
		"/config":       `"routes"`,
		"/debug/pprof/": "goroutine",
		"/metrics":      "edgegate_build_info",
	} {
		code, body := adminGet(t, gw, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	if code, body := adminGet(t, gw, "/routes"); code != 200 || !strings.Contains(body, `"path": "/v1/echo:unary"`) {
		t.Errorf("/routes lacks REST bindings: %s", body)
	}
}

func TestReadyz(t *testing.T) {
	up := StartEcho(t, "up")
	down := FreeAddr(t)
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: echo, endpoints: [%q]}
  - {name: gone, endpoints: [%q]}
  - {name: extra, endpoints: [%q], optional: true}
routes:
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
`, up.Addr, down, down))
	// waitReady waits until /readyz answers want with a body that also
	// passes cond (when not nil), and returns the body.
	waitReady := func(want int, cond func(body string) bool) string {
		t.Helper()
		var body string
		Eventually(t, Patience, func() error {
			var code int
			code, body = adminGet(t, gw, "/readyz")
			if code != want || cond != nil && !cond(body) {
				return fmt.Errorf("/readyz answered %d: %s; want %d", code, body, want)
			}
			return nil
		})
		return body
	}
	// Once echo has connected, only gone holds readiness back.
	body := waitReady(503, func(body string) bool { return !strings.Contains(body, "echo") })
	if !strings.Contains(body, "in cluster(s) gone") || strings.Contains(body, "extra") {
		t.Errorf("reason %s: want the required cluster gone named, not the optional one", body)
	}
	// The cluster comes up: ready.
	ln, err := net.Listen("tcp", down)
	if err != nil {
		t.Fatalf("cannot take back %s: %v", down, err)
	}
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, &testingv1.UnimplementedEchoServiceServer{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	waitReady(200, nil)

	// Draining: not ready, while a call is still in flight.
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	before := up.Started()
	res := make(chan error, 1)
	go func() {
		_, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(time.Second)})
		res <- err
	}()
	up.WaitStarted(t, before+1) // at the upstream, so in flight at the gateway
	go func() { _ = gw.Shutdown(Ctx(t, 10*time.Second)) }()
	body = waitReady(503, nil)
	if !strings.Contains(body, "draining") {
		t.Errorf("reason %s, want draining", body)
	}
	if err := <-res; err != nil {
		t.Fatalf("call in flight during drain: %v", err)
	}
}

// spanRecorder keeps the spans that ended, and lets a test wait for those
// of a trace: a door's span may end after the client has its answer (an
// HTTP door's ends once the handler returns), so reading the spans at
// once would race with it.
type spanRecorder struct {
	*tracetest.InMemoryExporter
	ended chan struct{} // a pulse after each span's end, once it is exported
}

func newSpanRecorder() (*spanRecorder, *sdktrace.TracerProvider) {
	r := &spanRecorder{InMemoryExporter: tracetest.NewInMemoryExporter(), ended: make(chan struct{}, 1)}
	// Processors run in order: the exporter has a span before the pulse.
	return r, sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.InMemoryExporter), sdktrace.WithSpanProcessor(r))
}

// OnEnd implements sdktrace.SpanProcessor.
func (r *spanRecorder) OnEnd(sdktrace.ReadOnlySpan) {
	select {
	case r.ended <- struct{}{}:
	default:
	}
}

func (*spanRecorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (*spanRecorder) Shutdown(context.Context) error                  { return nil }
func (*spanRecorder) ForceFlush(context.Context) error                { return nil }

// trace waits up to Patience until at least n spans of traceID have
// ended, and returns them.
func (r *spanRecorder) trace(t *testing.T, traceID string, n int) []tracetest.SpanStub {
	t.Helper()
	timeout := time.After(Patience)
	for {
		var spans []tracetest.SpanStub
		for _, sp := range r.GetSpans() {
			if sp.SpanContext.TraceID().String() == traceID {
				spans = append(spans, sp)
			}
		}
		if len(spans) >= n {
			return spans
		}
		select {
		case <-r.ended:
		case <-timeout:
			t.Fatalf("%d of %d spans of trace %s ended within %v", len(spans), n, traceID, Patience)
		}
	}
}
