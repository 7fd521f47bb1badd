package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
)

func TestGrpcurlThroughGateway(t *testing.T) {
	dir := binaries(t)
	_, _, gw := echoClient(t)
	out, err := exec.Command(filepath.Join(dir, "grpcurl"), "-plaintext", gw.Addr, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, want := range []string{"edgegate.testing.v1.EchoService", "grpc.health.v1.Health"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("grpcurl list lacks %s:\n%s", want, out)
		}
	}
	// Routed services only: the shop API is compiled in but not routed here.
	if strings.Contains(string(out), "shop.") {
		t.Errorf("grpcurl list shows unrouted services:\n%s", out)
	}
	out, err = exec.Command(filepath.Join(dir, "grpcurl"), "-plaintext", "-d", `{"message":"via grpcurl"}`, gw.Addr, "edgegate.testing.v1.EchoService/Unary").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"message": "via grpcurl"`) {
		t.Fatalf("grpcurl call: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(dir, "grpcurl"), "-plaintext", gw.Addr, "grpc.health.v1.Health/Check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SERVING") {
		t.Fatalf("health check: %v\n%s", err, out)
	}
}

func TestBinaryDrainsOnSIGTERM(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, EchoConfig(up.Addr)+"shutdown_grace_period: 5s\nshutdown_drain_period: 0s\n")
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	// A call in flight when SIGTERM arrives finishes.
	before := up.Started()
	res := make(chan error, 1)
	go func() {
		_, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(time.Second)})
		res <- err
	}()
	up.WaitStarted(t, before+1) // at the upstream, so in flight at the gateway
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("call in flight during drain: %v", err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Nothing listens any more.
	if _, err := c.Unary(Ctx(t, 2*time.Second), &testingv1.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("after exit: %v, want UNAVAILABLE", err)
	}
}

func TestBinaryGracePeriodBoundsDrain(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, EchoConfig(up.Addr)+"shutdown_grace_period: 300ms\n")
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	res := make(chan error, 1)
	go func() {
		_, err := c.Unary(Ctx(t, 30*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(20 * time.Second)})
		res <- err
	}()
	up.WaitStarted(t, 1) // the call is in flight
	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if err := <-res; err == nil {
		t.Fatal("a call longer than the grace period succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("drain took %v with a 300ms grace period", took)
	}
	if up.NextCall(t).CtxErr == nil {
		t.Fatal("the upstream call was not cancelled")
	}
}

func TestBinaryCLI(t *testing.T) {
	dir := binaries(t)
	bin := filepath.Join(dir, "edgegate")
	good := filepath.Join(t.TempDir(), "good.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(good, []byte(EchoConfig("127.0.0.1:9")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(EchoConfig("127.0.0.1:9"), "cluster: echo", "cluster: nope", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := run("validate", "-c", good); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("validate good: %d %s", code, out)
	}
	if out, code := run("validate", "-c", bad); code != 1 || !strings.Contains(out, bad+`:10:14: routes[0].cluster: unknown cluster "nope"`) {
		t.Errorf("validate bad: %d %s", code, out)
	}
	if out, code := run("routes"); code != 0 || !strings.Contains(out, "service shop.catalog.v1.CatalogService") ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), "GET /v1/{name=shelves/*/books/*} → shop.catalog.v1.CatalogService/GetBook → catalog") {
		t.Errorf("routes (default config): %d %s", code, out)
	}
	// The default config's composite, its REST binding and its legs.
	if out, code := run("routes"); code != 0 ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), "GET /v1/storefront/{book=shelves/*/books/*} → shop.storefront.v1.StorefrontService/GetBookPage → composite book-page") ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), "author_books shop.catalog.v1.CatalogService/ListBooks catalog book optional") {
		t.Errorf("routes (default config's composite): %d %s", code, out)
	}
	// Only the routed services' bindings are listed, with their source.
	if out, code := run("routes", "-c", good); code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "echo service edgegate.testing.v1.EchoService echo -") ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), "POST /v1/echo:unary → edgegate.testing.v1.EchoService/Unary → echo compiled") ||
		strings.Contains(out, "UsersService") {
		t.Errorf("routes -c: %d %s", code, out)
	}
	if out, code := run("version"); code != 0 || !strings.HasPrefix(out, "edgegate ") {
		t.Errorf("version: %d %s", code, out)
	}
	if _, code := run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// The binary sets its garbage collector from the config's runtime section
// (default gc_percent 400 unless GOGC is set), at start and on reload; the
// Go collector's metrics show what is in force.
func TestBinaryRuntimeSettings(t *testing.T) {
	gauge := func(p *Proc, name string) float64 {
		t.Helper()
		r := doHTTP(t, nil, "GET", "http://"+p.AdminAddr+"/metrics", "", nil)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
		if err != nil || mfs[name] == nil {
			t.Fatalf("/metrics: %v, no %s", err, name)
		}
		return mfs[name].GetMetric()[0].GetGauge().GetValue()
	}
	base := "listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\n"
	p := StartBinary(t, base+"runtime: {gc_percent: 250, memory_limit_bytes: 1073741824}\n")
	if got := gauge(p, "go_gc_gogc_percent"); got != 250 {
		t.Errorf("gc percent %v, want 250", got)
	}
	if got := gauge(p, "go_gc_gomemlimit_bytes"); got != 1<<30 {
		t.Errorf("memory limit %v, want %d", got, 1<<30)
	}

	// Without the section, the default (or the GOGC the test runs with).
	if err := os.WriteFile(p.File, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := doHTTP(t, nil, "POST", "http://"+p.AdminAddr+"/reload", "", nil); r.code != 200 {
		t.Fatalf("POST /reload: %d %s", r.code, r.body)
	}
	want := 400.0
	if env := os.Getenv("GOGC"); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil {
			n = -1 // "off"
		}
		want = float64(n)
	}
	if got := gauge(p, "go_gc_gogc_percent"); got != want {
		t.Errorf("gc percent after reload %v, want %v", got, want)
	}
	if got := gauge(p, "go_gc_gomemlimit_bytes"); got == 1<<30 {
		t.Error("the memory limit stayed after its removal")
	}
}

// accessLines returns the access log lines of logs.
func accessLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == accesslog.Message {
			out = append(out, l)
		}
	}
	return out
}

// The binary writes access log lines together, within
// logging.access_log_flush_interval of the first, and its own log lines at
// once, after the access lines logged before them; on SIGTERM what is
// waiting is written before it exits.
func TestBinaryAccessLogFlush(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, EchoConfig(up.Addr)+"logging: {access_log_flush_interval: 300ms}\nshutdown_drain_period: 0s\n")
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	p.logs.WaitFor(t, "access log line (300ms flush interval)", func(logs string) bool { return len(accessLines(logs)) > 0 })
	// One more call, then SIGTERM at once: its line is written on the way out,
	// before the gateway's "stopped".
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	logs := p.logs.String()
	if n := len(accessLines(logs)); n != 2 {
		t.Fatalf("%d access log lines after exit, want 2:\n%s", n, logs)
	}
	lastAccess := strings.LastIndex(logs, `"msg":"`+accesslog.Message+`"`)
	draining := strings.Index(logs, `"msg":"draining"`)
	if lastAccess < 0 || draining < 0 || lastAccess > draining {
		t.Fatalf("the second access line is not before the drain:\n%s", logs)
	}
}

// `edgegate validate` runs the build `serve` runs, in a dry run: files the
// configuration names (certificates and keys, JWKS files, cluster CA
// bundles) and the rules that compile (CEL) are checked, each error at its
// file:line:col, several at once in file order. A JWKS URL is not fetched:
// validate reaches no network.
func TestValidateRunsTheServeBuild(t *testing.T) {
	bin := filepath.Join(binaries(t), "edgegate")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-jwks.json")
	if err := os.WriteFile(empty, []byte(`{"keys": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cfg := fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
    tls:
      certificates: [{cert_file: %[1]q, key_file: %[1]q}]
clusters:
  - name: echo
    endpoints: [127.0.0.1:9]
    tls: {ca_file: %[1]q}
auth_providers:
  - name: users
    jwt: {jwks_file: %[2]q}
  - name: remote
    jwt: {jwks_url: "https://127.0.0.1:9/jwks.json"}
routes:
  - match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
    auth: {providers: [users, remote], cel: "claims.tier =="}
`, missing, empty)
	file := filepath.Join(dir, "edgegate.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "validate", "-c", file).CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate: %v, want exit 1\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		file + ":4:7: listeners[0].tls: ",
		file + ":8:10: clusters[0].tls: cluster \"echo\": tls: ",
		file + ":11:10: auth_providers[0].jwt: jwt: loading keys from " + empty,
		file + ":17:45: routes[0].auth.cel: invalid CEL expression",
	}
	if len(lines) != len(want) {
		t.Fatalf("validate printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[0], "missing.pem") || !strings.Contains(lines[1], "missing.pem") {
		t.Errorf("the missing file is not named:\n%s", out)
	}
}
