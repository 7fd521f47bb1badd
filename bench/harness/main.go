// Command harness is `make bench`: it measures edgegate side by side with
// its peers on one machine, in one run, on the same upstream and load —
// direct (no proxy), nginx grpc_pass, HAProxy proto h2, and a bare
// grpc-gateway REST proxy — and writes a Markdown table and JSON of the
// medians over several runs to bench/results/.
//
// Placement: every proxy is pinned to core 0 (edgegate and the bare
// gateway with GOMAXPROCS=1, nginx with one worker, HAProxy with one
// thread); the upstream and the load generators share core 1. Figures per
// door and peer: proxy CPU microseconds per call (utime+stime from /proc
// over the run, divided by the calls), peak calls/s (closed loop), p50,
// p90 and p99 at a fixed 2,000 calls/s (open loop), errors, and RSS.
// Native gRPC load comes from ghz, REST and gRPC-Web load from vegeta
// (h2c; gRPC-Web with a pre-framed body).
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/bench/internal/procs"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

var (
	runs     = flag.Int("runs", 3, "runs per measurement (medians are reported)")
	duration = flag.Duration("duration", 5*time.Second, "length of each load phase")
	rate     = flag.Int("rate", 2000, "calls per second of the open-loop latency phase")
	conc     = flag.Int("concurrency", 50, "workers of the closed-loop peak phase")
	outDir   = flag.String("out", "bench/results", "where the table and JSON go")
	bin      = flag.String("bin", ".cache/bench", "where binaries are built")
	only     = flag.String("only", "", "measure only rows whose \"door workload peer\" contains this")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// proc is a process the harness started.
type proc struct {
	name string
	cmd  *exec.Cmd
	pids func() []int // the processes whose CPU counts (nginx: its worker)
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

var started []*proc

func start(name, core string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command("taskset", append([]string{"-c", core}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(*bin, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd}
	p.pids = func() []int { return append([]int{cmd.Process.Pid}, children(cmd.Process.Pid)...) }
	started = append(started, p)
	return p, nil
}

// children lists the child processes of pid (nginx's worker).
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for f := range strings.FieldsSeq(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// cpuTicks is utime+stime of pids, in clock ticks (1/100 s).
func cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		sum += u + st
	}
	return sum
}

func rssKiB(pids []int) int64 { return procs.RSSKiB(pids...) }

func freePort() string {
	a, err := procs.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	return a
}

func waitPort(addr string) error { return procs.WaitPort(addr) }

// Result is one measurement of one peer on one workload.
type Result struct {
	Door, Workload, Peer string
	CPUPerCall           float64 // µs of proxy CPU per call (peak phase)
	PeakRPS              float64
	P50, P90, P99        float64 // ms, at the fixed rate
	Errors               int64
	RSSKiB, IdleRSSKiB   int64
}

type target struct {
	peer  string
	addr  string
	proc  *proc // nil for direct
	token string
}

func run() error {
	if err := os.MkdirAll(*bin, 0o755); err != nil {
		return err
	}
	defer func() {
		for _, p := range slices.Backward(started) {
			p.stop()
		}
	}()
	for _, c := range [][]string{
		{"go", "build", "-o", *bin + "/", "./cmd/edgegate", "./cmd/shopd", "./bench/baregw"},
		{"go", "build", "-C", "tools", "-o", "../" + *bin + "/", "github.com/bojand/ghz/cmd/ghz", "github.com/tsenart/vegeta/v12"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	for _, tool := range []string{"nginx", "haproxy", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: run `make bench-deps` (apt-get install nginx haproxy util-linux)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "edgegate-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The upstream: the echo service of shopd, on core 1.
	echo := freePort()
	if _, err := start("upstream", "1", []string{"GOMAXPROCS=1"}, *bin+"/shopd", "-echo", echo,
		"-catalog", freePort(), "-orders", freePort(), "-users", freePort()); err != nil {
		return err
	}
	if err := waitPort(echo); err != nil {
		return err
	}

	token, jwks, err := jwtFixture(dir)
	if err != nil {
		return err
	}
	var targets []target
	for _, gw := range []struct{ name, extra string }{
		{"edgegate", ""},
		{"edgegate+chain", fmt.Sprintf(`
auth_providers: [{name: users, jwt: {jwks_file: %q}}]
rate_limits: [{name: never, key: [{client_ip: true}], limits: [{requests: 1000000000, period: 1s}]}]
`, jwks)},
	} {
		addr := freePort()
		cfg := fmt.Sprintf(`
listeners: [{address: %q}]
clusters: [{name: echo, endpoints: [%q]}]
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
%s
admin: {disable: true}
logging: {disable_access_log: %v}
%s`, addr, echo, map[bool]string{true: "    auth: {providers: [users]}\n    rate_limits: [never]", false: ""}[gw.extra != ""], gw.extra == "", gw.extra)
		file := filepath.Join(dir, gw.name+".yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			return err
		}
		p, err := start(gw.name, "0", []string{"GOMAXPROCS=1"}, *bin+"/edgegate", "serve", "-c", file)
		if err != nil {
			return err
		}
		if err := waitPort(addr); err != nil {
			return fmt.Errorf("%s: %w", gw.name, err)
		}
		tok := ""
		if gw.extra != "" {
			tok = token
		}
		targets = append(targets, target{peer: gw.name, addr: addr, proc: p, token: tok})
	}
	nginxAddr, haAddr, bareAddr := freePort(), freePort(), freePort()
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), fmt.Appendf(nil, `
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %s;
  upstream echo { server %s; keepalive 64; }
  server {
    listen %s http2;
    location / { grpc_pass grpc://echo; }
  }
}
`, dir, dir, echo, nginxAddr), 0o600); err != nil {
		return err
	}
	np, err := start("nginx", "0", nil, "nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), fmt.Appendf(nil, `
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind %s proto h2
  default_backend be
backend be
  server s1 %s proto h2
`, haAddr, echo), 0o600); err != nil {
		return err
	}
	hp, err := start("haproxy", "0", nil, "haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		return err
	}
	bp, err := start("baregw", "0", []string{"GOMAXPROCS=1"}, *bin+"/baregw", "-listen", bareAddr, "-upstream", echo)
	if err != nil {
		return err
	}
	for _, a := range []string{nginxAddr, haAddr, bareAddr} {
		if err := waitPort(a); err != nil {
			return err
		}
	}
	grpcTargets := append([]target{{peer: "direct", addr: echo}}, targets...)
	grpcTargets = append(grpcTargets, target{peer: "nginx", addr: nginxAddr, proc: np}, target{peer: "haproxy", addr: haAddr, proc: hp})
	restTargets := append(slices.Clone(targets), target{peer: "grpc-gateway", addr: bareAddr, proc: bp})

	var all []Result
	for _, size := range []int{100, 16 << 10} {
		payload := make([]byte, size)
		_, _ = rand.Read(payload)
		wl := fmt.Sprintf("unary %s", sizeName(size))
		for _, t := range grpcTargets {
			all = append(all, measure("grpc", wl, t, func(t target, fixed bool) (float64, []float64, int64, error) {
				return ghz(t, payload, fixed, dir)
			}))
		}
		for _, t := range restTargets {
			all = append(all, measure("rest", wl, t, func(t target, fixed bool) (float64, []float64, int64, error) {
				return vegetaREST(t, payload, fixed, dir)
			}))
		}
		for _, t := range targets {
			all = append(all, measure("grpc-web", wl, t, func(t target, fixed bool) (float64, []float64, int64, error) {
				return vegetaWeb(t, payload, fixed, dir)
			}))
		}
	}
	return report(all)
}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// load runs one phase: closed loop (fixed=false) or open loop at *rate.
// It returns calls/s, latency p50/p90/p99 (ms) and errors.
type load func(t target, fixed bool) (rps float64, lat []float64, errs int64, err error)

// measure runs *runs rounds of a peak phase (CPU per call, calls/s) and a
// fixed-rate phase (latency), and keeps the medians.
func measure(door, wl string, t target, l load) Result {
	r := Result{Door: door, Workload: wl, Peer: t.peer}
	if *only != "" && !strings.Contains(door+" "+wl+" "+t.peer, *only) {
		return r
	}
	var cpu, peak, p50, p90, p99 []float64
	if t.proc != nil {
		r.IdleRSSKiB = rssKiB(t.proc.pids())
	}
	for range *runs {
		var before int64
		if t.proc != nil {
			before = cpuTicks(t.proc.pids())
		}
		rps, _, errs, err := l(t, false)
		if err != nil {
			log.Printf("%s %s %s: %v", door, wl, t.peer, err)
			r.Errors++
			continue
		}
		r.Errors += errs
		if t.proc != nil && rps > 0 {
			ticks := cpuTicks(t.proc.pids()) - before
			calls := rps * duration.Seconds()
			cpu = append(cpu, float64(ticks)*10000/calls)
		}
		peak = append(peak, rps)
		_, lat, errs, err := l(t, true)
		if err != nil {
			log.Printf("%s %s %s: %v", door, wl, t.peer, err)
			r.Errors++
			continue
		}
		r.Errors += errs
		p50, p90, p99 = append(p50, lat[0]), append(p90, lat[1]), append(p99, lat[2])
	}
	r.CPUPerCall, r.PeakRPS = median(cpu), median(peak)
	r.P50, r.P90, r.P99 = median(p50), median(p90), median(p99)
	if t.proc != nil {
		r.RSSKiB = rssKiB(t.proc.pids())
	}
	log.Printf("%-8s %-14s %-15s cpu/call %7.1fµs  peak %8.0f/s  p50 %.3fms p99 %.3fms  errors %d", door, wl, t.peer, r.CPUPerCall, r.PeakRPS, r.P50, r.P99, r.Errors)
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ghz(t target, payload []byte, fixed bool, dir string) (float64, []float64, int64, error) {
	data, _ := json.Marshal(map[string]string{"payload": base64.StdEncoding.EncodeToString(payload)})
	args := []string{"-c", "1", *bin + "/ghz", "--insecure", "--proto", "proto/edgegate/testing/v1/echo.proto",
		"--import-paths", "proto,.cache/protos", "--call", "edgegate.testing.v1.EchoService/Unary",
		"-d", string(data), "-z", duration.String(), "-O", "json", "--connections", "4", "-c", strconv.Itoa(*conc)}
	if fixed {
		args = append(args, "--rps", strconv.Itoa(*rate))
	}
	if t.token != "" {
		md, _ := json.Marshal(map[string]string{"authorization": "Bearer " + t.token})
		args = append(args, "-m", string(md))
	}
	args = append(args, t.addr)
	out, err := exec.Command("taskset", args...).Output()
	if err != nil && len(out) == 0 {
		return 0, nil, 0, fmt.Errorf("ghz: %w", err)
	}
	var rep struct {
		Count       int64
		Rps         float64
		LatencyDist []struct {
			Percentage int
			Latency    int64
		} `json:"latencyDistribution"`
		ErrorDist map[string]int64 `json:"errorDistribution"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return 0, nil, 0, fmt.Errorf("ghz output: %w: %.200s", err, out)
	}
	lat := make([]float64, 3)
	for _, d := range rep.LatencyDist {
		switch d.Percentage {
		case 50:
			lat[0] = float64(d.Latency) / 1e6
		case 90:
			lat[1] = float64(d.Latency) / 1e6
		case 99:
			lat[2] = float64(d.Latency) / 1e6
		}
	}
	var errs int64
	for msg, n := range rep.ErrorDist {
		// ghz cancels the calls in flight when the phase's time is up.
		if !strings.Contains(msg, "the client connection is closing") {
			errs += n
			log.Printf("ghz error x%d: %s", n, msg)
		}
	}
	return rep.Rps, lat, errs, nil
}

func vegeta(t target, method, path string, hdr map[string]string, body []byte, fixed bool, dir string) (float64, []float64, int64, error) {
	bodyFile := filepath.Join(dir, fmt.Sprintf("body-%d.bin", len(body)))
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		return 0, nil, 0, err
	}
	var tg bytes.Buffer
	fmt.Fprintf(&tg, "%s http://%s%s\n", method, t.addr, path)
	for k, v := range hdr {
		fmt.Fprintf(&tg, "%s: %s\n", k, v)
	}
	if t.token != "" {
		fmt.Fprintf(&tg, "Authorization: Bearer %s\n", t.token)
	}
	fmt.Fprintf(&tg, "@%s\n", bodyFile)
	args := []string{"-c", "1", *bin + "/vegeta", "attack", "-h2c", "-duration", duration.String(), "-keepalive"}
	if fixed {
		args = append(args, "-rate", strconv.Itoa(*rate))
	} else {
		args = append(args, "-rate", "0", "-max-workers", strconv.Itoa(*conc))
	}
	attack := exec.Command("taskset", args...)
	attack.Stdin = &tg
	res, err := attack.Output()
	if err != nil {
		return 0, nil, 0, fmt.Errorf("vegeta attack: %w", err)
	}
	rep := exec.Command(*bin+"/vegeta", "report", "-type", "json")
	rep.Stdin = bytes.NewReader(res)
	out, err := rep.Output()
	if err != nil {
		return 0, nil, 0, fmt.Errorf("vegeta report: %w", err)
	}
	var r struct {
		Requests   int64   `json:"requests"`
		Throughput float64 `json:"throughput"`
		Rate       float64 `json:"rate"`
		Latencies  struct {
			P50 int64 `json:"50th"`
			P90 int64 `json:"90th"`
			P99 int64 `json:"99th"`
		} `json:"latencies"`
		StatusCodes map[string]int64 `json:"status_codes"`
		Errors      []string         `json:"errors"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, nil, 0, err
	}
	errs := r.Requests - r.StatusCodes["200"]
	return r.Throughput, []float64{float64(r.Latencies.P50) / 1e6, float64(r.Latencies.P90) / 1e6, float64(r.Latencies.P99) / 1e6}, errs, nil
}

func vegetaREST(t target, payload []byte, fixed bool, dir string) (float64, []float64, int64, error) {
	body, _ := json.Marshal(map[string]string{"payload": base64.StdEncoding.EncodeToString(payload)})
	return vegeta(t, "POST", "/v1/echo:unary", map[string]string{"Content-Type": "application/json"}, body, fixed, dir)
}

func vegetaWeb(t target, payload []byte, fixed bool, dir string) (float64, []float64, int64, error) {
	msg, _ := proto.Marshal(&testingv1.EchoRequest{Payload: payload})
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	return vegeta(t, "POST", "/edgegate.testing.v1.EchoService/Unary",
		map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}, frame, fixed, dir)
}

// jwtFixture writes a JWKS and returns a token it verifies.
func jwtFixture(dir string) (string, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: "RS256", Use: "sig"}}})
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		return "", "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench"))
	if err != nil {
		return "", "", err
	}
	tok, err := josejwt.Signed(signer).Claims(map[string]any{"sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix()}).Serialize()
	return tok, file, err
}

func report(all []Result) error {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(filepath.Join(*outDir, "latest.json"), js, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on one %s machine by `make bench` (%d runs, medians; each phase %v; open loop at %d calls/s; closed loop with %d workers). Proxies pinned to core 0 (GOMAXPROCS=1 / 1 worker / 1 thread), upstream and load on core 1. CPU is the proxy's utime+stime per call over the closed-loop phase (10 ms ticks); RSS after the run (idle before it).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), *runs, *duration, *rate, *conc)
	b.WriteString("| door | workload | peer | CPU µs/call | peak calls/s | p50 ms | p90 ms | p99 ms | errors | RSS MiB (idle) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range all {
		if r.PeakRPS == 0 && r.Errors == 0 {
			continue // filtered out by -only
		}
		cpu, rss := "—", "—"
		if r.Peer != "direct" {
			cpu = fmt.Sprintf("%.1f", r.CPUPerCall)
			rss = fmt.Sprintf("%.1f (%.1f)", float64(r.RSSKiB)/1024, float64(r.IdleRSSKiB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %d | %s |\n", r.Door, r.Workload, r.Peer, cpu, r.PeakRPS, r.P50, r.P90, r.P99, r.Errors, rss)
	}
	b.WriteString("\nBudgets (DESIGN.md), from this run:\n\n")
	b.WriteString(budgets(all))
	if err := os.WriteFile(filepath.Join(*outDir, "latest.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}

func find(all []Result, door, wl, peer string) (Result, bool) {
	for _, r := range all {
		if r.Door == door && r.Workload == wl && r.Peer == peer {
			return r, true
		}
	}
	return Result{}, false
}

func budgets(all []Result) string {
	var b strings.Builder
	wl := "unary 100 B"
	check := func(name string, ok bool, detail string) {
		mark := "holds"
		if !ok {
			mark = "**does not hold**"
		}
		fmt.Fprintf(&b, "- %s: %s (%s)\n", name, mark, detail)
	}
	eg, ok1 := find(all, "grpc", wl, "edgegate")
	egc, ok1c := find(all, "grpc", wl, "edgegate+chain")
	ha, ok2 := find(all, "grpc", wl, "haproxy")
	di, ok3 := find(all, "grpc", wl, "direct")
	if ok1 && ok1c && ok2 {
		check("native gRPC CPU/call ≤ HAProxy's (default chain)", egc.CPUPerCall <= ha.CPUPerCall,
			fmt.Sprintf("edgegate+chain %.1f µs, edgegate bare %.1f µs, HAProxy %.1f µs: ratio %.2f", egc.CPUPerCall, eg.CPUPerCall, ha.CPUPerCall, egc.CPUPerCall/ha.CPUPerCall))
	}
	if ok1 && ok3 {
		add := (eg.P50 - di.P50) * 1000
		check("native gRPC added p50 at the fixed rate ≤ 100 µs", add <= 100, fmt.Sprintf("%.0f µs over direct", add))
	}
	re, ok4 := find(all, "rest", wl, "edgegate+chain")
	bg, ok5 := find(all, "rest", wl, "grpc-gateway")
	if ok4 && ok5 {
		check("REST CPU/call ≤ 0.8 × bare grpc-gateway (default chain)", re.CPUPerCall <= 0.8*bg.CPUPerCall,
			fmt.Sprintf("%.1f µs vs %.1f µs: ratio %.2f", re.CPUPerCall, bg.CPUPerCall, re.CPUPerCall/bg.CPUPerCall))
	}
	we, ok6 := find(all, "grpc-web", wl, "edgegate+chain")
	if ok4 && ok6 {
		check("gRPC-Web CPU/call ≤ REST's", we.CPUPerCall <= re.CPUPerCall, fmt.Sprintf("%.1f µs vs %.1f µs", we.CPUPerCall, re.CPUPerCall))
	}
	if ok3 {
		for _, door := range []string{"grpc", "rest", "grpc-web"} {
			if r, ok := find(all, door, wl, "edgegate+chain"); ok {
				check(door+" p99 ≤ direct p99 + 1 ms", r.P99 <= di.P99+1, fmt.Sprintf("%.3f ms vs %.3f ms", r.P99, di.P99))
			}
		}
	}
	if ok1 {
		check("idle RSS ≤ 40 MiB", eg.IdleRSSKiB <= 40*1024, fmt.Sprintf("%.1f MiB", float64(eg.IdleRSSKiB)/1024))
	}
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")) + fmt.Sprintf(", %d cores", countCores())
		}
	}
	return "unknown"
}

func countCores() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}
