package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/edgegate/edgegate/admin"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// keyHash is a configured API key's hash: what /config must not show.
const keyHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func testConfig() *configv1.Config {
	return &configv1.Config{
		Listeners: []*configv1.Listener{{Name: "public", Address: "127.0.0.1:8080"}},
		Clusters:  []*configv1.Cluster{{Name: "orders", Endpoints: []string{"10.0.0.1:50051"}}},
		AuthProviders: []*configv1.AuthProvider{{
			Name: "keys",
			Kind: &configv1.AuthProvider_ApiKey{ApiKey: &configv1.APIKeyProvider{
				Header: "x-api-key",
				Keys: []*configv1.APIKey{
					{Sha256: keyHash, Principal: "billing", Scopes: []string{"orders.read"}},
					{Sha256: strings.Repeat("0", 64), Principal: "ops"},
				},
			}},
		}},
	}
}

// server is an admin handler with every option set, and what it was asked.
type server struct {
	h       http.Handler
	ready   bool
	why     string
	reloads int
	reload  error
	reg     *prometheus.Registry
	cfg     *configv1.Config
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{ready: true, reg: prometheus.NewRegistry(), cfg: testConfig()}
	s.h = admin.Handler(admin.Options{
		Registry: s.reg,
		Ready:    func() (bool, string) { return s.ready, s.why },
		Routes: func() any {
			return map[string]any{"routes": []map[string]string{{"name": "orders", "cluster": "orders"}}}
		},
		Config: func() proto.Message { return s.cfg },
		Reload: func() error { s.reloads++; return s.reload },
	})
	return s
}

// do serves one request and returns the status, the Content-Type and the
// body.
func do(h http.Handler, method, path string) (int, string, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

// jsonBody fails t unless body is the JSON want.
func jsonBody(t *testing.T, what, ctype, body string, want any) {
	t.Helper()
	if ctype != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ctype)
	}
	var got any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%s: body %q: %v", what, body, err)
	}
	wb, _ := json.Marshal(want)
	var w any
	_ = json.Unmarshal(wb, &w)
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: body %s, want %s", what, body, wb)
	}
}

func TestHealthz(t *testing.T) {
	s := newServer(t)
	s.ready, s.why = false, "draining"
	// Alive even when not ready.
	code, ctype, body := do(s.h, "GET", "/healthz")
	if code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	jsonBody(t, "/healthz", ctype, body, map[string]string{"status": "ok"})
}

func TestReadyz(t *testing.T) {
	s := newServer(t)
	code, ctype, body := do(s.h, "GET", "/readyz")
	if code != http.StatusOK {
		t.Errorf("/readyz ready: %d", code)
	}
	jsonBody(t, "/readyz ready", ctype, body, map[string]string{"status": "ready"})

	s.ready, s.why = false, `cluster "orders" has no connected endpoint`
	code, ctype, body = do(s.h, "GET", "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz not ready: %d, want 503", code)
	}
	jsonBody(t, "/readyz not ready", ctype, body, map[string]string{"status": "not ready", "reason": `cluster "orders" has no connected endpoint`})

	// Readiness is asked at every request.
	s.ready = true
	if code, _, _ := do(s.h, "GET", "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz ready again: %d", code)
	}
}

func TestRoutes(t *testing.T) {
	s := newServer(t)
	code, ctype, body := do(s.h, "GET", "/routes")
	if code != http.StatusOK {
		t.Fatalf("/routes %d", code)
	}
	jsonBody(t, "/routes", ctype, body, map[string]any{"routes": []any{map[string]any{"name": "orders", "cluster": "orders"}}})
}

func TestConfigIsRedacted(t *testing.T) {
	s := newServer(t)
	code, ctype, body := do(s.h, "GET", "/config")
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("/config %d %q: %s", code, ctype, body)
	}
	if strings.Contains(body, keyHash) || strings.Contains(body, strings.Repeat("0", 64)) {
		t.Errorf("/config shows an API key hash:\n%s", body)
	}
	var got configv1.Config
	if err := protojson.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/config is not the config as JSON: %v\n%s", err, body)
	}
	want := testConfig()
	for _, k := range want.GetAuthProviders()[0].GetApiKey().GetKeys() {
		k.Sha256 = "[redacted]"
	}
	if !proto.Equal(&got, want) {
		t.Errorf("/config:\n%v\nwant\n%v", &got, want)
	}
	// Proto field names, as in the file.
	if !strings.Contains(body, `"auth_providers"`) {
		t.Errorf("/config without proto field names:\n%s", body)
	}
	// The configuration in force is left as it is.
	if !proto.Equal(s.cfg, testConfig()) {
		t.Errorf("/config changed the configuration in force: %v", s.cfg)
	}
}

func TestReload(t *testing.T) {
	s := newServer(t)
	code, ctype, body := do(s.h, "POST", "/reload")
	if code != http.StatusOK || s.reloads != 1 {
		t.Errorf("POST /reload: %d, %d reloads; want 200 and 1", code, s.reloads)
	}
	jsonBody(t, "reloaded", ctype, body, map[string]string{"status": "reloaded"})

	s.reload = errors.New(`routes[0]: unknown cluster "nope"`)
	code, ctype, body = do(s.h, "POST", "/reload")
	if code != http.StatusUnprocessableEntity || s.reloads != 2 {
		t.Errorf("POST /reload rejected: %d, %d reloads; want 422 and 2", code, s.reloads)
	}
	jsonBody(t, "rejected", ctype, body, map[string]string{"status": "rejected", "error": `routes[0]: unknown cluster "nope"`})

	if code, _, _ := do(s.h, "GET", "/reload"); code != http.StatusMethodNotAllowed || s.reloads != 2 {
		t.Errorf("GET /reload: %d, %d reloads; want 405 and no reload", code, s.reloads)
	}
}

func TestNoReloadWithoutReloadFunc(t *testing.T) {
	h := admin.Handler(admin.Options{
		Registry: prometheus.NewRegistry(),
		Ready:    func() (bool, string) { return true, "" },
		Routes:   func() any { return nil },
		Config:   func() proto.Message { return testConfig() },
	})
	if code, _, _ := do(h, "POST", "/reload"); code != http.StatusNotFound {
		t.Errorf("POST /reload without Reload: %d, want 404", code)
	}
	if code, _, _ := do(h, "GET", "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz without Reload: %d", code)
	}
}

func TestMetrics(t *testing.T) {
	s := newServer(t)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgegate_test_calls_total", Help: "Test calls."}, []string{"door"})
	s.reg.MustRegister(c)
	c.WithLabelValues("rest").Add(3)
	code, ctype, body := do(s.h, "GET", "/metrics")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("/metrics %d %q", code, ctype)
	}
	if !strings.Contains(body, `edgegate_test_calls_total{door="rest"} 3`) {
		t.Errorf("/metrics does not serve the registry:\n%s", body)
	}
	// The handler counts its own errors in the same registry.
	if !strings.Contains(body, `promhttp_metric_handler_errors_total{cause="gathering"} 0`) {
		t.Errorf("/metrics does not count its errors in the registry:\n%s", body)
	}
	if code, _, _ := do(s.h, "POST", "/metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", code)
	}
}

func TestPprof(t *testing.T) {
	s := newServer(t)
	code, _, body := do(s.h, "GET", "/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") || !strings.Contains(body, "heap") {
		t.Errorf("/debug/pprof/ %d:\n%s", code, body)
	}
	code, _, body = do(s.h, "GET", "/debug/pprof/goroutine?debug=1")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine %d:\n%.200s", code, body)
	}
	if code, _, body := do(s.h, "GET", "/debug/pprof/cmdline"); code != http.StatusOK || body == "" {
		t.Errorf("/debug/pprof/cmdline %d %q", code, body)
	}
}

func TestUnknownPath(t *testing.T) {
	s := newServer(t)
	if code, _, _ := do(s.h, "GET", "/admin"); code != http.StatusNotFound {
		t.Errorf("/admin: %d, want 404", code)
	}
}

// redactionTestFile declares messages with debug_redact fields of every
// shape: a string, an integer, a repeated string, a message, in a nested
// message, a list of messages and a map of messages.
func redactionTestFile(t *testing.T) *descriptorpb.FileDescriptorProto {
	t.Helper()
	redacted := &descriptorpb.FieldOptions{DebugRedact: proto.Bool(true)}
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string, opts *descriptorpb.FieldOptions) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name), Options: opts}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	const (
		str = descriptorpb.FieldDescriptorProto_TYPE_STRING
		i64 = descriptorpb.FieldDescriptorProto_TYPE_INT64
		msg = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
		opt = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		rep = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	)
	return &descriptorpb.FileDescriptorProto{
		Name:    proto.String("admintest/redact.proto"),
		Package: proto.String("admintest"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Inner"), Field: []*descriptorpb.FieldDescriptorProto{
				field("secret", 1, str, opt, "", redacted),
				field("visible", 2, str, opt, "", nil),
				field("pin", 3, i64, opt, "", redacted),
			}},
			{Name: proto.String("Outer"), Field: []*descriptorpb.FieldDescriptorProto{
				field("token", 1, str, opt, "", redacted),
				field("one", 2, msg, opt, ".admintest.Inner", nil),
				field("many", 3, msg, rep, ".admintest.Inner", nil),
				field("named", 4, msg, rep, ".admintest.Outer.NamedEntry", nil),
				field("codes", 5, str, rep, "", redacted),
				field("hidden", 6, msg, opt, ".admintest.Inner", redacted),
				field("name", 7, str, opt, "", nil),
			}, NestedType: []*descriptorpb.DescriptorProto{{
				Name:    proto.String("NamedEntry"),
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				Field: []*descriptorpb.FieldDescriptorProto{
					field("key", 1, str, opt, "", nil),
					field("value", 2, msg, opt, ".admintest.Inner", nil),
				},
			}}},
		},
	}
}

func TestRedactAtAnyDepth(t *testing.T) {
	fd, err := protodesc.NewFile(redactionTestFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	outer := fd.Messages().ByName("Outer")
	m := dynamicpb.NewMessage(outer)
	in := `{
		"token": "t0ken",
		"one": {"secret": "s1", "visible": "v1", "pin": "1234"},
		"many": [{"secret": "s2", "visible": "a"}, {"visible": "b"}],
		"named": {"k": {"secret": "s3", "visible": "m", "pin": "9"}},
		"codes": ["c1", "c2"],
		"hidden": {"visible": "whole message redacted"},
		"name": "n"
	}`
	if err := protojson.Unmarshal([]byte(in), m); err != nil {
		t.Fatal(err)
	}
	before := proto.Clone(m)

	red := admin.Redact(m)
	b, err := protojson.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	_ = json.Unmarshal(b, &got)
	_ = json.Unmarshal([]byte(`{
		"token": "[redacted]",
		"one": {"secret": "[redacted]", "visible": "v1"},
		"many": [{"secret": "[redacted]", "visible": "a"}, {"visible": "b"}],
		"named": {"k": {"secret": "[redacted]", "visible": "m"}},
		"name": "n"
	}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Redact = %s\nwant %v", b, want)
	}
	if !proto.Equal(m, before) {
		t.Error("Redact changed its argument")
	}
	if admin.Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
}

func TestCachePurge(t *testing.T) {
	var route, prefix string
	purgeErr := error(nil)
	h := admin.Handler(admin.Options{
		Registry: prometheus.NewRegistry(),
		Ready:    func() (bool, string) { return true, "" },
		Routes:   func() any { return nil },
		Config:   func() proto.Message { return testConfig() },
		Purge: func(_ context.Context, r, p string) (int, error) {
			route, prefix = r, p
			return 3, purgeErr
		},
	})
	code, _, body := do(h, "POST", "/cache/purge?route=catalog")
	if code != http.StatusOK || route != "catalog" || prefix != "" || !strings.Contains(body, `"purged": 3`) {
		t.Errorf("purge by route: %d %s (route %q, prefix %q)", code, body, route, prefix)
	}
	code, _, _ = do(h, "POST", "/cache/purge?prefix=catalog%20/a.B/C")
	if code != http.StatusOK || route != "" || prefix != "catalog /a.B/C" {
		t.Errorf("purge by prefix: %d (route %q, prefix %q)", code, route, prefix)
	}
	if code, _, _ := do(h, "POST", "/cache/purge"); code != http.StatusBadRequest {
		t.Errorf("purge naming nothing: %d, want 400", code)
	}
	purgeErr = errors.New("redis down")
	if code, _, body := do(h, "POST", "/cache/purge?route=catalog"); code != http.StatusServiceUnavailable || !strings.Contains(body, "redis down") {
		t.Errorf("purge failing: %d %s", code, body)
	}
}
