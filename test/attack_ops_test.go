package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/config"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/test/attack"
)

// Operations under attack and in production: the config watch, the
// shutdown, and a log that stays readable and bounded.

// logRecords decodes the JSON lines of logs; a line that is not JSON
// fails the test (the log is JSON only).
func logRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// configHash is the hash the binary logs when it reloads to yaml (as
// StartBinary writes it).
func configHash(t *testing.T, yaml string) string {
	t.Helper()
	cfg, err := config.Load("edgegate.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return config.Hash(cfg)
}

// reloadsTo counts the reloads to the config of hash in logs.
func reloadsTo(logs, hash string) int {
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"msg":"config reloaded"`) && strings.Contains(l, `"hash":"`+hash+`"`) {
			n++
		}
	}
	return n
}

// authedEcho is a config routing the echo service to addr for callers
// with the API key "k" only; settle is reload.settle_period and route the
// route's name (a change that is not a cluster change).
func authedEcho(addr, settle, route string) string {
	return fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
admin: {address: 127.0.0.1:0}
reload: {settle_period: %s}
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: svc}]}
clusters:
  - name: echo
    endpoints: [%q]
routes:
  - name: %s
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
    auth:
      providers: [keys]
`, settle, authint.HashKey("k"), addr, route)
}

// A config file written in place is applied only once it is complete: a
// prefix that is a valid config without the route's auth block, written
// first, is never in force (no reload to it, an unauthenticated call made
// meanwhile is refused); the whole file is, once it has not changed for
// reload.settle_period.
func TestConfigWatchWaitsForInPlaceWriteToSettle(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, authedEcho(up.Addr, "2s", "echo"))
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	withKey := metadata.AppendToOutgoingContext(Ctx(t, 10*time.Second), "x-api-key", "k")
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unauthenticated call at start: %v, want UNAUTHENTICATED", err)
	}

	// The next version, cut before the route's auth block.
	whole := authedEcho(up.Addr, "2s", "echo-v2")
	prefix, _, ok := strings.Cut(whole, "    auth:\n")
	if !ok {
		t.Fatal("no auth block to cut")
	}
	prefixHash, wholeHash := configHash(t, prefix), configHash(t, whole)
	if err := os.WriteFile(p.File, []byte(prefix), 0o600); err != nil {
		t.Fatal(err)
	}
	// The watch has seen the write: it waits for the file to settle (or,
	// without the settle period, it has applied the prefix already).
	logs := p.logs.WaitFor(t, "watch event of the write", func(logs string) bool {
		return strings.Contains(logs, `"msg":"config file written in place: loading it once it settles"`) || reloadsTo(logs, prefixHash) > 0
	})
	if reloadsTo(logs, prefixHash) > 0 {
		t.Fatalf("the half-written file was applied:\n%s", logs)
	}
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unauthenticated call while the file is half written: %v, want UNAUTHENTICATED", err)
	}
	f, err := os.OpenFile(p.File, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(whole[len(prefix):]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	logs = p.logs.WaitFor(t, "reload to the whole file", func(logs string) bool { return reloadsTo(logs, wholeHash) > 0 })
	if n := reloadsTo(logs, prefixHash); n > 0 {
		t.Fatalf("the half-written file was applied %d times:\n%s", n, logs)
	}
	if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unauthenticated call after the reload: %v, want UNAUTHENTICATED", err)
	}
	if _, err := c.Unary(withKey, &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("call with the key after the reload: %v", err)
	}
	if got := reloadsTo(p.logs.String(), wholeHash); got != 1 {
		t.Errorf("%d reloads to the whole file, want 1", got)
	}
}

// A file renamed into place (written to a temporary name in the same
// directory first) is applied at once: the settle period (1m here, more
// than the test waits) is for files written in place.
func TestConfigWatchAppliesRenameAtOnce(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, authedEcho(up.Addr, "1m", "echo"))
	next := authedEcho(up.Addr, "1m", "echo-v2")
	tmp := p.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.File); err != nil {
		t.Fatal(err)
	}
	hash := configHash(t, next)
	p.logs.WaitFor(t, "reload to the renamed file", func(logs string) bool { return reloadsTo(logs, hash) > 0 })
}

// A config mounted as Kubernetes mounts a ConfigMap: the file is a link
// through "..data", itself a link to a directory of the version; an
// update writes a new directory and swaps "..data" (a rename), and the
// file's own name sees no event. The swap is seen and applied at once.
func TestConfigWatchSeesSymlinkSwap(t *testing.T) {
	up := StartEcho(t, "up")
	first := authedEcho(up.Addr, "1m", "echo")
	p := StartBinary(t, first)
	dir := filepath.Dir(p.File)
	name := filepath.Base(p.File)
	version := func(v, yaml string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		WriteFile(t, filepath.Join(dir, v), name, []byte(yaml))
		// ..data → v, swapped by a rename, as the kubelet does.
		if err := os.Symlink(v, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	// The mount as the kubelet lays it, the file replaced by the link.
	before := reloadsTo(p.logs.String(), configHash(t, first))
	version("..v1", first)
	link := filepath.Join(dir, name+".link")
	if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, p.File); err != nil {
		t.Fatal(err)
	}
	p.logs.WaitFor(t, "reload to the linked file", func(logs string) bool { return reloadsTo(logs, configHash(t, first)) > before })

	next := authedEcho(up.Addr, "1m", "echo-v2")
	version("..v2", next)
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	hash := configHash(t, next)
	p.logs.WaitFor(t, "reload after the ..data swap", func(logs string) bool { return reloadsTo(logs, hash) > 0 })
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	if _, err := c.Unary(metadata.AppendToOutgoingContext(Ctx(t, 5*time.Second), "x-api-key", "k"), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("call after the swap: %v", err)
	}
}

// logTime is the time of the first log record of logs with message msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, rec := range logRecords(t, logs) {
		if rec["msg"] == msg {
			ts, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return ts
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, logs)
	return time.Time{}
}

// readyz is the admin server's /readyz answer.
func readyz(t *testing.T, p *Proc) (int, string) {
	t.Helper()
	r := doHTTP(t, nil, "GET", "http://"+p.AdminAddr+"/readyz", "", nil)
	return r.code, string(r.body)
}

// On SIGTERM the gateway drains for shutdown_drain_period before its
// listeners close: /readyz answers 503 "draining" and the gRPC health
// service NOT_SERVING at once, while new connections are still accepted
// and served; a second SIGTERM ends the drain early. Then new
// connections are refused, a call in flight gets the grace period, and
// the process exits 0.
func TestBinaryDrainPeriod(t *testing.T) {
	up := StartEcho(t, "up")
	// A drain longer than the test: the second SIGTERM ends it.
	p := StartBinary(t, EchoConfig(up.Addr)+"shutdown_drain_period: 1h\nshutdown_grace_period: 30s\n")
	Eventually(t, Patience, func() error { // ready once the cluster is connected
		if code, body := readyz(t, p); code != 200 {
			return fmt.Errorf("/readyz before SIGTERM: %d %s", code, body)
		}
		return nil
	})
	// A call that is in flight through the drain and the grace period.
	held := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	before := up.Started()
	release := make(chan error, 1)
	go func() {
		_, err := held.Unary(Ctx(t, 30*time.Second), &testingv1.EchoRequest{Delay: durationpb.New(3 * time.Second)})
		release <- err
	}()
	up.WaitStarted(t, before+1)

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.logs.WaitContains(t, `"msg":"draining"`)
	if code, body := readyz(t, p); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %s, want 503 draining", code, body)
	}
	// A new connection is accepted and served; health says NOT_SERVING.
	fresh := Dial(t, p.Addr)
	if _, err := testingv1.NewEchoServiceClient(fresh).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("a call on a new connection while draining: %v", err)
	}
	hr, err := healthpb.NewHealthClient(fresh).Check(Ctx(t, 5*time.Second), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while draining: %v %v, want NOT_SERVING", hr.GetStatus(), err)
	}
	r := doHTTP(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "POST", "http://"+p.Addr+"/v1/echo:unary", `{}`, nil)
	if r.code != 200 {
		t.Fatalf("REST on a new connection while draining: %d %s", r.code, r.body)
	}

	// The second SIGTERM ends the drain: the listeners close, the call in
	// flight still finishes.
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.logs.WaitContains(t, `"msg":"drain period ended early"`)
	Eventually(t, Patience, func() error {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			_ = c.Close()
			return errors.New("the listener still accepts connections after the drain")
		}
		return nil
	})
	if err := <-release; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	if code := p.Wait(t, Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// The drain period ends by itself after shutdown_drain_period; SIGINT (an
// interactive stop) skips it.
func TestBinaryDrainPeriodEnds(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, EchoConfig(up.Addr)+"shutdown_drain_period: 300ms\n")
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	logs := p.logs.String()
	if d := logTime(t, logs, "closing the listeners").Sub(logTime(t, logs, "draining")); d < 300*time.Millisecond {
		t.Errorf("the listeners closed %v after SIGTERM, want the 300ms drain period", d)
	}

	p = StartBinary(t, EchoConfig(up.Addr)+"shutdown_drain_period: 1h\n")
	if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, Patience); code != 0 {
		t.Fatalf("exit code after SIGINT %d", code)
	}
}

// redisDown is a config rate limiting the echo service in a Redis that
// is not there.
func redisDown(t *testing.T, upstream string) string {
	return strings.Replace(EchoConfig(upstream), "    cluster: echo\n", "    cluster: echo\n    rate_limits: [rl]\n", 1) +
		fmt.Sprintf("redis: {address: %q}\n", FreeAddr(t)) +
		"rate_limits: [{name: rl, backend: RATE_LIMIT_BACKEND_REDIS, key: [{client_ip: true}], limits: [{requests: 1000, period: 1s}]}]\n"
}

// With Redis down, go-redis's own log lines (a pool that cannot dial)
// come out as the gateway's JSON lines at WARN, one per kind every 10 s
// however many dials fail, never as plain text on stderr.
func TestBinaryRedisLogIsJSONAndBounded(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, redisDown(t, up.Addr)+"shutdown_drain_period: 0s\n")
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	call := func() {
		if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
			t.Fatalf("call (the policy fails open): %v", err)
		}
	}
	call()
	p.logs.WaitFor(t, "dial failure of the Redis client", func(logs string) bool {
		return strings.Contains(logs, `"msg":"`+ratelimit.RedisMessage+`"`) || strings.Contains(logs, "redis: connection pool")
	})
	for range 30 {
		call()
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	n := 0
	for _, rec := range logRecords(t, p.logs.String()) {
		if rec["msg"] == ratelimit.RedisMessage {
			n++
			if rec["level"] != "WARN" || !strings.Contains(fmt.Sprint(rec["detail"]), "connection pool") {
				t.Errorf("Redis client line %v, want WARN with the client's detail", rec)
			}
		}
	}
	if n == 0 || n > 2 {
		t.Errorf("%d Redis client lines for 31 failing calls, want 1 or 2 (one per kind every 10s):\n%s", n, p.logs.String())
	}
}

// The process exits promptly once it has logged "stopped", whatever it
// held: a Redis client whose dials fail and retry, upstream and client
// connections, buffered access log lines.
func TestBinaryExitsPromptlyAfterStopped(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, redisDown(t, up.Addr)+"shutdown_drain_period: 0s\n")
	c := testingv1.NewEchoServiceClient(Dial(t, p.Addr))
	for range 10 {
		if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.logs.WaitContains(t, `"msg":"stopped"`)
	stopped := time.Now()
	if code := p.Wait(t, Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if d := time.Since(stopped); d > time.Second {
		t.Fatalf("the process exited %v after it logged stopped, want within 1s", d)
	}
}

// A flood of client-cancelled calls (HEADERS then RST_STREAM, as an HTTP/2
// rapid reset attack sends) writes at most
// logging.access_log_cancelled_per_second of their access log lines a
// second; the rest are counted (edgegate_access_log_dropped_total) and
// summed up in a line a second. The lines of other calls made meanwhile
// are all written.
func TestAccessLogCancelledFloodIsBounded(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"logging: {access_log_cancelled_per_second: 10}\n")
	const conns, perConn, normal = 12, 10, 20
	const flood = conns * perConn
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	counted := make(chan struct{})
	var countedOnce sync.Once
	t.Cleanup(func() { countedOnce.Do(func() { close(counted) }) })
	for range conns {
		wg.Go(func() {
			h, err := attack.Dial(gw.Addr, nil, []http2.Setting{})
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = h.Close() }()
			go func() { _, _ = h.Frames(Patience, func(http2.Frame) bool { return false }) }()
			for range perConn {
				id, err := h.Open(attack.GRPC(gw.Addr, "/edgegate.testing.v1.EchoService/Unary"), false)
				if err == nil {
					err = h.Fr.WriteRSTStream(id, http2.ErrCodeCancel)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			<-counted // the connection stays open until the lines are counted
		})
	}
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	for range normal {
		if _, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// Every cancelled call is either logged or summed up.
	var logged, summed int
	count := func(logs string) {
		logged, summed = 0, 0
		for _, line := range strings.Split(logs, "\n") {
			var rec struct {
				Msg     string `json:"msg"`
				Code    string `json:"code"`
				Dropped int    `json:"dropped"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch {
			case rec.Msg == accesslog.Message && rec.Code == codes.Canceled.String():
				logged++
			case rec.Msg == accesslog.DroppedMessage:
				summed += rec.Dropped
			}
		}
	}
	logs := gw.Logs.WaitFor(t, "line or summed-up count for every cancelled call", func(logs string) bool {
		count(logs)
		return logged+summed >= flood
	})
	elapsed := time.Since(start)
	countedOnce.Do(func() { close(counted) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if logged+summed != flood {
		t.Errorf("%d cancelled calls logged and %d summed up, want %d in all", logged, summed, flood)
	}
	// At most 10 lines in each window of a second the flood spanned.
	if most := 10 * (int(elapsed/time.Second) + 2); logged > most {
		t.Errorf("%d lines of cancelled calls in %v, want at most %d (10 a second)", logged, elapsed, most)
	}
	if summed == 0 {
		t.Errorf("no line sums up the dropped lines:\n%s", logs)
	}
	if got := counter(t, scrape(t, gw), "edgegate_access_log_dropped_total", nil); got != float64(summed) {
		t.Errorf("edgegate_access_log_dropped_total %v, want %d", got, summed)
	}
	ok := 0
	for _, l := range accessLines(logs) {
		if strings.Contains(l, `"code":"OK"`) {
			ok++
		}
	}
	if ok != normal {
		t.Errorf("%d access lines of the %d successful calls", ok, normal)
	}
}
