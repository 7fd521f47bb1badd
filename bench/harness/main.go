// Command harness is `make bench`: it measures edgegate side by side with
// its peers on one machine, in one run, on the same upstream and load —
// direct (no proxy), nginx grpc_pass, HAProxy proto h2, and a bare
// grpc-gateway REST proxy; for the HTTP route row, nginx proxy_pass and
// HAProxy mode http — and writes a Markdown table and JSON of the
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
//
// Neither tool reads the answers closely (vegeta takes any HTTP 200 for a
// success, though a gRPC-Web status is in a trailer frame of the body and
// a REST stream can fail in its last line), so before measuring a row the
// harness makes the row's call once itself and checks the whole answer;
// a wrong answer stops the run.
//
// With -profile DIR, edgegate runs with its admin server on, and the
// first closed-loop phase of each edgegate row is profiled through it
// (CPU during the phase, allocations after it) into DIR.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

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
	baseline = flag.String("baseline", "", "also measure edgegate built from this git revision (rows \"edgegate@base\", \"edgegate+chain@base\"), for a before/after in one run; the table goes to compare.md")
	profile  = flag.String("profile", "", "write CPU and allocation profiles of each edgegate row's first closed-loop phase to this directory (enables edgegate's admin server; not for the table's figures)")
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
	if strings.HasPrefix(args[0], *bin+"/") {
		// Our builds start as from disk, whatever the build left in the
		// page cache: their RSS is in the table.
		if err := procs.Evict(args[0]); err != nil {
			return nil, err
		}
	}
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

// echoDescriptorSet writes the echo service's descriptors, imports
// included, as the binary FileDescriptorSet `buf build -o` writes, for
// the gateway built without the compiled-in API.
func echoDescriptorSet(dir string) (string, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(testingv1.File_edgegate_testing_v1_echo_proto)
	b, err := proto.Marshal(set)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "echo.binpb")
	return path, os.WriteFile(path, b, 0o600)
}

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
	admin string // edgegate's admin server (pprof), with -profile only
}

func run() error {
	if err := os.MkdirAll(*bin, 0o755); err != nil {
		return err
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
	}
	defer func() {
		for _, p := range slices.Backward(started) {
			p.stop()
		}
	}()
	for _, c := range [][]string{
		{"go", "build", "-o", *bin + "/", "./cmd/edgegate", "./cmd/shopd", "./bench/baregw"},
		{"go", "build", "-tags", "edgegate_nocompiled", "-o", *bin + "/edgegate-nocompiled", "./cmd/edgegate"},
		{"go", "build", "-C", "tools", "-o", "../" + *bin + "/", "github.com/bojand/ghz/cmd/ghz", "github.com/tsenart/vegeta/v12"},
	} {
		if out, err := buildCmd(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	if *baseline != "" {
		if err := buildBaseline(*baseline); err != nil {
			return err
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
	defer func() { _ = os.RemoveAll(dir) }()

	// The upstream: the echo service of shopd, on core 1.
	echo, legacy := freePort(), freePort()
	if _, err := start("upstream", "1", []string{"GOMAXPROCS=1"}, *bin+"/shopd", "-echo", echo,
		"-catalog", freePort(), "-orders", freePort(), "-users", freePort(), "-http", legacy); err != nil {
		return err
	}
	if err := waitPort(echo); err != nil {
		return err
	}

	token, jwks, err := jwtFixture(dir)
	if err != nil {
		return err
	}
	descriptors, err := echoDescriptorSet(dir)
	if err != nil {
		return err
	}
	chain := fmt.Sprintf(`
auth_providers: [{name: users, jwt: {jwks_file: %q}}]
rate_limits: [{name: never, key: [{client_ip: true}], limits: [{requests: 1000000000, period: 1s}]}]
`, jwks)
	var targets []target
	var dynamicREST target     // REST from descriptors loaded at run time
	var grpcGoTargets []target // native gRPC on grpc-go's server instead of the relay
	for _, gw := range []struct {
		name, extra string
		dynamic     bool // a binary without the compiled-in API, the echo service from a descriptor set
		grpcGo      bool // the listener's native_engine is grpc-go's server: a native gRPC row only
	}{
		{"edgegate", "", false, false},
		{"edgegate+chain", chain, false, false},
		{"edgegate+chain descriptors", chain + fmt.Sprintf("schema: {descriptor_sets: [%q]}\n", descriptors), true, false},
		{"edgegate grpc-go", "", false, true},
		{"edgegate+chain grpc-go", chain, false, true},
	} {
		addr := freePort()
		// The admin server stays off unless profiling: it would add to
		// the idle RSS the table reports.
		admin, adminCfg := "", "admin: {disable: true}"
		if *profile != "" {
			admin = freePort()
			adminCfg = fmt.Sprintf("admin: {address: %q}", admin)
		}
		policies := map[bool]string{true: "    auth: {providers: [users]}\n    rate_limits: [never]", false: ""}[gw.extra != ""]
		// The HTTP route of the HTTP row; a baseline build may predate
		// HTTP routes, so its config goes without them (and it gets no
		// HTTP row).
		httpRoute := fmt.Sprintf(`http_clusters: [{name: legacy, endpoints: [%q]}]
http_routes:
  - name: legacy
    match: {path_prefix: /legacy}
    cluster: legacy
    strip_prefix: true
%s
`, legacy, policies)
		engine := ""
		if gw.grpcGo {
			engine = ", native_engine: NATIVE_ENGINE_GRPC_GO"
		}
		cfg := fmt.Sprintf(`
listeners: [{address: %q%s}]
clusters: [{name: echo, endpoints: [%q]}]
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
%s
%s%s
logging: {disable_access_log: %v}
%s`, addr, engine, echo, policies, httpRoute, adminCfg, gw.extra == "", gw.extra)
		tok := ""
		if gw.extra != "" {
			tok = token
		}
		type build struct{ peer, bin, addr, admin string }
		builds := []build{{gw.name, *bin + "/edgegate", addr, admin}}
		if gw.dynamic {
			builds[0].bin = *bin + "/edgegate-nocompiled"
		} else if *baseline != "" && !gw.grpcGo {
			b := build{gw.name + "@base", *bin + "/edgegate-base", freePort(), ""}
			if admin != "" { // profiled too, on its own admin port
				b.admin = freePort()
			}
			builds = append(builds, b)
		}
		for _, b := range builds {
			file := filepath.Join(dir, b.peer+".yaml")
			c := strings.Replace(cfg, addr, b.addr, 1)
			if admin != "" {
				c = strings.Replace(c, admin, b.admin, 1)
			}
			if strings.HasSuffix(b.peer, "@base") {
				c = strings.Replace(c, httpRoute, "", 1)
			}
			if err := os.WriteFile(file, []byte(c), 0o600); err != nil {
				return err
			}
			p, err := start(b.peer, "0", []string{"GOMAXPROCS=1"}, b.bin, "serve", "-c", file)
			if err != nil {
				return err
			}
			if err := waitPort(b.addr); err != nil {
				return fmt.Errorf("%s: %w", b.peer, err)
			}
			t := target{peer: b.peer, addr: b.addr, proc: p, token: tok, admin: b.admin}
			switch {
			case gw.dynamic:
				dynamicREST = t
			case gw.grpcGo:
				grpcGoTargets = append(grpcGoTargets, t)
			default:
				targets = append(targets, t)
			}
		}
	}
	nginxAddr, haAddr, bareAddr := freePort(), freePort(), freePort()
	nginxHTTPAddr, haHTTPAddr := freePort(), freePort() // proxy_pass and mode http, for the HTTP route row
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
  upstream legacy { server %s; keepalive 64; }
  server {
    listen %s http2;
    location / { grpc_pass grpc://echo; }
  }
  server {
    listen %s http2;
    location /legacy/ {
      proxy_pass http://legacy/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering off;
    }
  }
}
`, dir, dir, echo, legacy, nginxAddr, nginxHTTPAddr), 0o600); err != nil {
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
frontend fe_http
  bind %s proto h2
  option forwardfor
  http-request replace-path /legacy(/.*)? \1
  default_backend be_http
backend be_http
  http-reuse always
  server s1 %s
`, haAddr, echo, haHTTPAddr, legacy), 0o600); err != nil {
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
	for _, a := range []string{nginxAddr, haAddr, bareAddr, nginxHTTPAddr, haHTTPAddr} {
		if err := waitPort(a); err != nil {
			return err
		}
	}
	grpcTargets := append([]target{{peer: "direct", addr: echo}}, targets...)
	grpcTargets = append(grpcTargets, grpcGoTargets...)
	grpcTargets = append(grpcTargets, target{peer: "nginx", addr: nginxAddr, proc: np}, target{peer: "haproxy", addr: haAddr, proc: hp})
	restTargets := append(slices.Clone(targets), dynamicREST, target{peer: "grpc-gateway", addr: bareAddr, proc: bp})
	// The HTTP route row: a plain HTTP request through edgegate's HTTP
	// route (default chain, and with auth and a rate limit), nginx
	// proxy_pass and HAProxy mode http, to shopd's HTTP service.
	var httpTargets []target
	for _, t := range targets {
		if !strings.HasSuffix(t.peer, "@base") {
			httpTargets = append(httpTargets, t)
		}
	}
	httpTargets = append(httpTargets, target{peer: "nginx", addr: nginxHTTPAddr, proc: np}, target{peer: "haproxy", addr: haHTTPAddr, proc: hp})

	doors := []struct {
		name    string
		targets []target
		load    func(t target, w workload, fixed bool, dir string) (float64, []float64, int64, error)
		check   func(t target, w workload) error // one call, as load makes it
	}{
		{"grpc", grpcTargets, ghz, checkGRPC},
		{"rest", restTargets, vegetaOf(restCall), checkREST},
		{"grpc-web", targets, vegetaOf(webCall), checkWeb},
		{"http", httpTargets, vegetaOf(httpCall), checkHTTP},
	}
	var rows []*row // the rows measured, no others
	for _, w := range workloads() {
		for _, d := range doors {
			if d.name == "http" && w.name != "unary 100 B" {
				continue // one row: a small request and answer
			}
			for _, t := range d.targets {
				if *only != "" && !strings.Contains(d.name+" "+w.name+" "+t.peer, *only) {
					continue
				}
				if err := d.check(t, w); err != nil {
					return fmt.Errorf("%s %s %s: wrong answer, not measured: %w", d.name, w.name, t.peer, err)
				}
				rows = append(rows, newRow(d.name, w.name, t, func(t target, fixed bool) (float64, []float64, int64, error) {
					return d.load(t, w, fixed, dir)
				}))
			}
		}
	}
	return report(measureAll(rows))
}

// workload is one kind of call, measured on every door: the gRPC method
// (and gRPC-Web path), the REST binding of it, and the request, which
// each door encodes its own way. A call is one RPC: for a server stream,
// the request and all its responses.
type workload struct {
	name   string
	method string // service/method, as ghz takes it
	path   string // the REST binding (POST, body "*")
	req    *testingv1.EchoRequest
}

func workloads() []workload {
	payload := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	var out []workload
	for _, size := range []int{100, 16 << 10} {
		out = append(out, workload{"unary " + sizeName(size), "edgegate.testing.v1.EchoService/Unary", "/v1/echo:unary",
			&testingv1.EchoRequest{Payload: payload(size)}})
	}
	return append(out, workload{"server stream 10×100 B", "edgegate.testing.v1.EchoService/ServerStream", "/v1/echo:stream",
		&testingv1.EchoRequest{Payload: payload(100), Repeat: 10}})
}

// stream is whether w is a server stream (else a unary call).
func (w workload) stream() bool { return strings.HasSuffix(w.method, "/ServerStream") }

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// load runs one phase: closed loop (fixed=false) or open loop at *rate.
// It returns calls/s, latency p50/p90/p99 (ms) and errors.
type load func(t target, fixed bool) (rps float64, lat []float64, errs int64, err error)

// row is one door × workload × peer being measured: its load, and the
// samples of the rounds run so far.
type row struct {
	door, wl string
	t        target
	l        load
	r        Result

	cpu, peak, p50, p90, p99 []float64
}

func newRow(door, wl string, t target, l load) *row {
	r := &row{door: door, wl: wl, t: t, l: l, r: Result{Door: door, Workload: wl, Peer: t.peer}}
	if t.proc != nil {
		r.r.IdleRSSKiB = rssKiB(t.proc.pids())
	}
	return r
}

// round runs one round of the row: a peak phase (CPU per call, calls/s)
// and a fixed-rate phase (latency). The first round's peak phase is the
// one profiled.
func (x *row) round(i int) {
	t := x.t
	var before int64
	if t.proc != nil {
		before = cpuTicks(t.proc.pids())
	}
	profiled := func() {}
	if i == 0 {
		profiled = profilePhase(x.door, x.wl, t)
	}
	rps, _, errs, err := x.l(t, false)
	profiled()
	if err != nil {
		log.Printf("%s %s %s: %v", x.door, x.wl, t.peer, err)
		x.r.Errors++
		return
	}
	x.r.Errors += errs
	if t.proc != nil && rps > 0 {
		ticks := cpuTicks(t.proc.pids()) - before
		calls := rps * duration.Seconds()
		x.cpu = append(x.cpu, float64(ticks)*10000/calls)
	}
	x.peak = append(x.peak, rps)
	_, lat, errs, err := x.l(t, true)
	if err != nil {
		log.Printf("%s %s %s: %v", x.door, x.wl, t.peer, err)
		x.r.Errors++
		return
	}
	x.r.Errors += errs
	x.p50, x.p90, x.p99 = append(x.p50, lat[0]), append(x.p90, lat[1]), append(x.p99, lat[2])
}

// result is the row's medians over its rounds, and its RSS now.
func (x *row) result() Result {
	r := x.r
	r.CPUPerCall, r.PeakRPS = median(x.cpu), median(x.peak)
	r.P50, r.P90, r.P99 = median(x.p50), median(x.p90), median(x.p99)
	if x.t.proc != nil {
		r.RSSKiB = rssKiB(x.t.proc.pids())
	}
	log.Printf("%-8s %-22s %-15s cpu/call %7.1fµs  peak %8.0f/s  p50 %.3fms p99 %.3fms  errors %d", r.Door, r.Workload, r.Peer, r.CPUPerCall, r.PeakRPS, r.P50, r.P99, r.Errors)
	return r
}

// measureAll runs *runs rounds over rows, interleaved: every row's first
// round, then every row's second, and so on. The budgets compare rows
// (edgegate with HAProxy, REST with gRPC-Web), and a machine whose speed
// drifts during the run (a shared host does) then shifts every row alike
// instead of the rows measured late. It returns each row's medians.
func measureAll(rows []*row) []Result {
	for i := range *runs {
		log.Printf("round %d of %d", i+1, *runs)
		for _, x := range rows {
			x.round(i)
		}
	}
	out := make([]Result, 0, len(rows))
	for _, x := range rows {
		out = append(out, x.result())
	}
	return out
}

// profileDelay is how long after a closed-loop phase starts its CPU
// profile does (the load tool's own start-up first).
const profileDelay = 500 * time.Millisecond

// profilePhase starts the CPU profile of t's closed-loop phase that is
// about to begin, when -profile is set and t has an admin server (the
// edgegate rows): profileDelay after now, for the phase's length less a
// second (at least one). The func it returns, called when the phase is
// over, waits for that profile, fetches the allocation profile, and writes
// both to -profile as <door>_<workload>_<peer>.cpu.pprof and
// .allocs.pprof, with `go tool pprof -top` of the CPU profile in .top.txt.
// A profile that fails is logged; the measurement goes on.
func profilePhase(door, wl string, t target) func() {
	if *profile == "" || t.admin == "" {
		return func() {}
	}
	base := filepath.Join(*profile, fileName(door+" "+wl+" "+t.peer))
	secs := max(int((*duration - time.Second).Seconds()), 1)
	cpu := make(chan error, 1)
	go func() {
		time.Sleep(profileDelay)
		cpu <- fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs), base+".cpu.pprof")
	}()
	return func() {
		err := <-cpu
		if err == nil {
			err = pprofTop(base+".cpu.pprof", base+".top.txt")
		}
		if err == nil {
			err = writeShares(base+".cpu.pprof", base+".shares.md")
		}
		if err != nil {
			log.Printf("%s %s %s: CPU profile: %v", door, wl, t.peer, err)
		}
		if err := fetch("http://"+t.admin+"/debug/pprof/allocs", base+".allocs.pprof"); err != nil {
			log.Printf("%s %s %s: allocation profile: %v", door, wl, t.peer, err)
		}
	}
}

// fileName is s with every rune but letters, digits, '.' and '-' made '_'
// ("grpc server stream 10×100 B edgegate+chain" →
// "grpc_server_stream_10_100_B_edgegate_chain").
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return r
		}
		return '_'
	}, s)
}

// fetch GETs url into file.
func fetch(url, file string) error {
	resp, err := http.Get(url) //nolint:gosec // G107: url is the loopback admin address of the gateway the harness started
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200q", url, resp.Status, body)
	}
	return os.WriteFile(file, body, 0o644)
}

// pprofTop writes `go tool pprof -top -nodecount=40` of a profile of the
// edgegate binary the harness built.
func pprofTop(prof, file string) error {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=40", filepath.Join(*bin, "edgegate"), prof).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		return fmt.Errorf("go tool pprof: %w: %.300s", err, stderr)
	}
	return os.WriteFile(file, out, 0o644)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ghz counts a call (a whole stream, for a server stream: ghz reads it to
// the end) as an error when it does not end with status OK.
// ghzPeakRate sets the number of calls of a closed-loop ghz phase (see
// ghz).
const ghzPeakRate = 8000

func ghz(t target, w workload, fixed bool, _ string) (float64, []float64, int64, error) {
	data, err := protojson.Marshal(w.req)
	if err != nil {
		return 0, nil, 0, err
	}
	args := []string{"-c", "1", *bin + "/ghz", "--insecure", "--proto", "proto/edgegate/testing/v1/echo.proto",
		"--import-paths", "proto,.cache/protos", "--call", w.method,
		"-d", string(data), "-O", "json", "--connections", "4", "-c", strconv.Itoa(*conc)}
	// A phase is a number of calls, not a time: when ghz's time (-z) is up
	// it cancels the calls in flight and counts them as errors ("transport
	// is closing"), which a server closing connections also causes. The
	// fixed-rate phase makes rate × duration calls; the closed loop
	// ghzPeakRate × duration (about the phase's length at the peers' peak).
	n := duration.Seconds() * ghzPeakRate
	if fixed {
		n = duration.Seconds() * float64(*rate)
		args = append(args, "--rps", strconv.Itoa(*rate))
	}
	args = append(args, "-n", strconv.Itoa(int(n)))
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
		errs += n
		log.Printf("ghz error x%d: %s", n, msg)
	}
	return rep.Rps, lat, errs, nil
}

// call is the request of one HTTP call: a POST to url, as vegeta makes it
// (and the checks).
type call struct {
	url  string
	hdr  map[string]string // with the target's bearer token
	body []byte
}

func newCall(t target, path string, body []byte, hdr ...string) call {
	c := call{url: "http://" + t.addr + path, hdr: map[string]string{}, body: body}
	for i := 0; i+1 < len(hdr); i += 2 {
		c.hdr[hdr[i]] = hdr[i+1]
	}
	if t.token != "" {
		c.hdr["Authorization"] = "Bearer " + t.token
	}
	return c
}

// restCall posts the request as JSON; a server stream comes back as
// newline-delimited JSON, read to its end.
func restCall(t target, w workload) (call, error) {
	body, err := protojson.Marshal(w.req)
	return newCall(t, w.path, body, "Content-Type", "application/json"), err
}

// webCall posts the request as one pre-framed gRPC-Web message; the
// responses and the trailer frame come back in the body, read to its end.
func webCall(t target, w workload) (call, error) {
	msg, err := proto.Marshal(w.req)
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	return newCall(t, "/"+w.method, frame, "Content-Type", "application/grpc-web+proto", "X-Grpc-Web", "1"), err
}

// httpCall posts the request as JSON to the plain HTTP service behind the
// HTTP route (its answer: a small JSON document).
func httpCall(t target, w workload) (call, error) {
	body, err := protojson.Marshal(w.req)
	return newCall(t, "/legacy/echo", body, "Content-Type", "application/json"), err
}

// checkHTTP makes vegeta's call of the HTTP route: the answer must be the
// plain HTTP service's.
func checkHTTP(t target, w workload) error {
	body, _, err := post(t, w, httpCall)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("not JSON: %w: %.200q", err, body)
	}
	if m["service"] != "legacy" || m["path"] != "/echo" {
		return fmt.Errorf("not the HTTP service's answer to /echo: %.200q", body)
	}
	return nil
}

// vegetaOf is the load of an HTTP door: vegeta making mk's call.
func vegetaOf(mk func(target, workload) (call, error)) func(target, workload, bool, string) (float64, []float64, int64, error) {
	return func(t target, w workload, fixed bool, dir string) (float64, []float64, int64, error) {
		c, err := mk(t, w)
		if err != nil {
			return 0, nil, 0, err
		}
		return vegeta(c, fixed, dir)
	}
}

func vegeta(c call, fixed bool, dir string) (float64, []float64, int64, error) {
	bodyFile := filepath.Join(dir, fmt.Sprintf("body-%d.bin", len(c.body)))
	if err := os.WriteFile(bodyFile, c.body, 0o600); err != nil {
		return 0, nil, 0, err
	}
	var tg bytes.Buffer
	fmt.Fprintf(&tg, "POST %s\n", c.url)
	for k, v := range c.hdr {
		fmt.Fprintf(&tg, "%s: %s\n", k, v)
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
	// A call is an error unless its status is HTTP 200; vegeta reads the
	// body to its end but does not look in it (a gRPC-Web status is in
	// its trailer frame, a REST stream's error after the first message in
	// its last line).
	errs := r.Requests - r.StatusCodes["200"]
	for code, n := range r.StatusCodes {
		if code != "200" {
			log.Printf("vegeta status %s x%d", code, n)
		}
	}
	for _, e := range r.Errors {
		log.Printf("vegeta error: %s", e)
	}
	return r.Throughput, []float64{float64(r.Latencies.P50) / 1e6, float64(r.Latencies.P90) / 1e6, float64(r.Latencies.P99) / 1e6}, errs, nil
}

// The checks: each makes its door's call once, as the load tool makes it,
// and reads the whole answer.

// checkGRPC makes ghz's call with grpc-go: it must end with status OK.
func checkGRPC(t target, w workload) error {
	conn, err := grpc.NewClient(t.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if t.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.token)
	}
	c := testingv1.NewEchoServiceClient(conn)
	if !w.stream() {
		r, err := c.Unary(ctx, w.req)
		if err != nil {
			return err
		}
		return echoes(w, []*testingv1.EchoResponse{r})
	}
	s, err := c.ServerStream(ctx, w.req)
	if err != nil {
		return err
	}
	var got []*testingv1.EchoResponse
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return echoes(w, got)
		}
		if err != nil {
			return fmt.Errorf("after %d messages: %w", len(got), err)
		}
		got = append(got, r)
	}
}

// checkREST makes vegeta's REST call: a unary answer is the response as
// JSON; a server stream, one {"result": response} line per message (a
// failed stream ends with an {"error": status} line, under HTTP 200).
func checkREST(t target, w workload) error {
	body, _, err := post(t, w, restCall)
	if err != nil {
		return err
	}
	if !w.stream() {
		r := new(testingv1.EchoResponse)
		if err := protojson.Unmarshal(body, r); err != nil {
			return fmt.Errorf("body: %w: %.200q", err, body)
		}
		return echoes(w, []*testingv1.EchoResponse{r})
	}
	var got []*testingv1.EchoResponse
	for line := range bytes.Lines(body) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m map[string]json.RawMessage
		r := new(testingv1.EchoResponse)
		if json.Unmarshal(line, &m) != nil || len(m) != 1 || m["result"] == nil || protojson.Unmarshal(m["result"], r) != nil {
			return fmt.Errorf("after %d messages, a line that is not {\"result\": response}: %.200q", len(got), line)
		}
		got = append(got, r)
	}
	return echoes(w, got)
}

// checkWeb makes vegeta's gRPC-Web call: the body must hold a data frame
// per response, then one trailer frame with grpc-status 0.
func checkWeb(t target, w workload) error {
	body, hdr, err := post(t, w, webCall)
	if err != nil {
		return err
	}
	var got []*testingv1.EchoResponse
	for len(body) > 0 {
		if len(body) < 5 || uint64(len(body)-5) < uint64(binary.BigEndian.Uint32(body[1:])) {
			return fmt.Errorf("after %d messages, a truncated frame: %.50q", len(got), body)
		}
		flags, frame := body[0], body[5:5+binary.BigEndian.Uint32(body[1:])]
		body = body[5+len(frame):]
		switch flags {
		case 0:
			r := new(testingv1.EchoResponse)
			if err := proto.Unmarshal(frame, r); err != nil {
				return fmt.Errorf("message %d: %w", len(got), err)
			}
			got = append(got, r)
		case 0x80:
			ok := false
			for l := range strings.Lines(string(frame)) {
				if k, v, _ := strings.Cut(l, ":"); strings.EqualFold(strings.TrimSpace(k), "grpc-status") {
					ok = strings.TrimSpace(v) == "0"
				}
			}
			if !ok || len(body) > 0 {
				return fmt.Errorf("after %d messages, trailer frame %q and %d bytes after it, want grpc-status 0 and none", len(got), frame, len(body))
			}
			return echoes(w, got)
		default:
			return fmt.Errorf("after %d messages, a frame with flags %#x", len(got), flags)
		}
	}
	return fmt.Errorf("after %d messages, no trailer frame (grpc-status header %q, grpc-message %q)", len(got), hdr.Get("Grpc-Status"), hdr.Get("Grpc-Message"))
}

// h2c speaks to the HTTP doors as vegeta -h2c does: HTTP/2 over
// cleartext, with prior knowledge.
var h2c = func() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: p}}
}()

// post makes mk's call once and returns the answer, which must be HTTP 200.
func post(t target, w workload, mk func(target, workload) (call, error)) ([]byte, http.Header, error) {
	c, err := mk(t, w)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest("POST", c.url, bytes.NewReader(c.body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := h2c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading the body: %w", resp.Proto, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s %s: %.200q", resp.Proto, resp.Status, body)
	}
	return body, resp.Header, nil
}

// echoes checks the responses of one call of w: as many as it asks for,
// in order, each with the payload sent.
func echoes(w workload, got []*testingv1.EchoResponse) error {
	want := 1
	if w.stream() {
		want = int(w.req.GetRepeat())
	}
	if len(got) != want {
		return fmt.Errorf("%d messages, want %d", len(got), want)
	}
	for i, r := range got {
		if int(r.GetIndex()) != i || !bytes.Equal(r.GetPayload(), w.req.GetPayload()) {
			return fmt.Errorf("message %d: index %d and %d bytes of payload, want index %d and the %d bytes sent", i, r.GetIndex(), len(r.GetPayload()), i, len(w.req.GetPayload()))
		}
	}
	return nil
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
	name := "latest"
	if *baseline != "" {
		name = "compare"
	}
	js, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(filepath.Join(*outDir, name+".json"), js, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on one %s machine by `make bench` (%d rounds over all the rows in turn, medians; each phase %v; open loop at %d calls/s; closed loop with %d workers). Proxies pinned to core 0 (GOMAXPROCS=1 / 1 worker / 1 thread), upstream and load on core 1. CPU is the proxy's utime+stime per call over the closed-loop phase (10 ms ticks); RSS at the end of the run (idle at its start). A server-stream call is one whole stream.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), *runs, *duration, *rate, *conc)
	b.WriteString("| door | workload | peer | CPU µs/call | peak calls/s | p50 ms | p90 ms | p99 ms | errors | RSS MiB (idle) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range all {
		cpu, rss := "—", "—"
		if r.Peer != "direct" {
			cpu = fmt.Sprintf("%.1f", r.CPUPerCall)
			rss = fmt.Sprintf("%.1f (%.1f)", float64(r.RSSKiB)/1024, float64(r.IdleRSSKiB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %d | %s |\n", r.Door, r.Workload, r.Peer, cpu, r.PeakRPS, r.P50, r.P90, r.P99, r.Errors, rss)
	}
	b.WriteString("\nBudgets (DESIGN.md), from this run:\n\n")
	b.WriteString(budgets(all))
	if *baseline != "" {
		b.WriteString(against(all))
	}
	if err := os.WriteFile(filepath.Join(*outDir, name+".md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}

// buildCmd is the command name args with cgo off: the binaries measured
// are built as the container image ships edgegate (scripts/build-static.sh),
// with no C library mapped (1.5 MiB of the RSS of a cgo build).
func buildCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// buildBaseline builds cmd/edgegate of git revision rev into
// bin/edgegate-base, from a temporary worktree.
func buildBaseline(rev string) error {
	dir, err := os.MkdirTemp("", "edgegate-base")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	wt := filepath.Join(dir, "src")
	out, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	for _, c := range [][]string{
		{"git", "worktree", "add", "--detach", wt, rev},
		{"go", "build", "-C", wt, "-o", filepath.Join(out, "edgegate-base"), "./cmd/edgegate"},
		{"git", "worktree", "remove", "--force", wt},
	} {
		if o, err := buildCmd(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("baseline %s: %s: %w\n%s", rev, strings.Join(c, " "), err, o)
		}
	}
	return nil
}

// against compares each edgegate row with the same row of the baseline
// build: the CPU per call and the p50 of both, and their ratio.
func against(all []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nAgainst %s (the same rows, built from that revision, measured in this run):\n\n", *baseline)
	b.WriteString("| door | workload | peer | CPU µs/call now | at base | ratio | p50 ms now | at base |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range all {
		if strings.HasSuffix(r.Peer, "@base") || !strings.HasPrefix(r.Peer, "edgegate") {
			continue
		}
		base, ok := find(all, r.Door, r.Workload, r.Peer+"@base")
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %.1f | %.2f | %.3f | %.3f |\n", r.Door, r.Workload, r.Peer, r.CPUPerCall, base.CPUPerCall, r.CPUPerCall/base.CPUPerCall, r.P50, base.P50)
	}
	return b.String()
}

func find(all []Result, door, wl, peer string) (Result, bool) {
	for _, r := range all {
		if r.Door == door && r.Workload == wl && r.Peer == peer {
			return r, true
		}
	}
	return Result{}, false
}

// budgets checks DESIGN.md's budgets on the unary 100 B rows; a budget
// whose rows were not all measured (-only) says so.
func budgets(all []Result) string {
	var b strings.Builder
	// budget is one line: name, the rows it reads ("door peer"), and
	// whether it holds over them, with the figures.
	budget := func(name string, rows []string, holds func(r []Result) (bool, string)) {
		var rs []Result
		for _, row := range rows {
			door, peer, _ := strings.Cut(row, " ")
			r, ok := find(all, door, "unary 100 B", peer)
			if !ok {
				fmt.Fprintf(&b, "- %s: not measured in this run\n", name)
				return
			}
			if !measured(r) {
				fmt.Fprintf(&b, "- %s: not measured (%s %s made no calls)\n", name, door, peer)
				return
			}
			rs = append(rs, r)
		}
		ok, detail := holds(rs)
		mark := "holds"
		if !ok {
			mark = "**does not hold**"
		}
		fmt.Fprintf(&b, "- %s: %s (%s)\n", name, mark, detail)
	}
	budget("native gRPC CPU/call ≤ HAProxy's (default chain)", []string{"grpc edgegate+chain", "grpc edgegate", "grpc haproxy"}, func(r []Result) (bool, string) {
		egc, eg, ha := r[0], r[1], r[2]
		return egc.CPUPerCall <= ha.CPUPerCall,
			fmt.Sprintf("edgegate+chain %.1f µs, edgegate bare %.1f µs, HAProxy %.1f µs: ratio %.2f", egc.CPUPerCall, eg.CPUPerCall, ha.CPUPerCall, egc.CPUPerCall/ha.CPUPerCall)
	})
	budget("native gRPC added p50 at the fixed rate ≤ 100 µs", []string{"grpc edgegate", "grpc direct"}, func(r []Result) (bool, string) {
		add := (r[0].P50 - r[1].P50) * 1000
		return add <= 100, fmt.Sprintf("%.0f µs over direct", add)
	})
	budget("REST CPU/call ≤ 0.8 × bare grpc-gateway (default chain)", []string{"rest edgegate+chain", "rest grpc-gateway"}, func(r []Result) (bool, string) {
		re, bg := r[0], r[1]
		return re.CPUPerCall <= 0.8*bg.CPUPerCall, fmt.Sprintf("%.1f µs vs %.1f µs: ratio %.2f", re.CPUPerCall, bg.CPUPerCall, re.CPUPerCall/bg.CPUPerCall)
	})
	budget("REST from descriptors CPU/call ≤ 0.8 × bare grpc-gateway (default chain)", []string{"rest edgegate+chain descriptors", "rest grpc-gateway"}, func(r []Result) (bool, string) {
		re, bg := r[0], r[1]
		return re.CPUPerCall <= 0.8*bg.CPUPerCall, fmt.Sprintf("%.1f µs vs %.1f µs: ratio %.2f", re.CPUPerCall, bg.CPUPerCall, re.CPUPerCall/bg.CPUPerCall)
	})
	budget("gRPC-Web CPU/call ≤ REST's", []string{"grpc-web edgegate+chain", "rest edgegate+chain"}, func(r []Result) (bool, string) {
		return r[0].CPUPerCall <= r[1].CPUPerCall, fmt.Sprintf("%.1f µs vs %.1f µs", r[0].CPUPerCall, r[1].CPUPerCall)
	})
	for _, door := range []string{"grpc", "rest", "grpc-web"} {
		budget(door+" p99 ≤ direct p99 + 1 ms", []string{door + " edgegate+chain", "grpc direct"}, func(r []Result) (bool, string) {
			return r[0].P99 <= r[1].P99+1, fmt.Sprintf("%.3f ms vs %.3f ms", r[0].P99, r[1].P99)
		})
	}
	budget("HTTP route CPU/call ≤ nginx proxy_pass (default chain)", []string{"http edgegate+chain", "http edgegate", "http nginx", "http haproxy"}, func(r []Result) (bool, string) {
		egc, eg, ng, ha := r[0], r[1], r[2], r[3]
		return egc.CPUPerCall <= ng.CPUPerCall,
			fmt.Sprintf("edgegate+chain %.1f µs, edgegate bare %.1f µs, nginx %.1f µs, HAProxy %.1f µs: ratio %.2f", egc.CPUPerCall, eg.CPUPerCall, ng.CPUPerCall, ha.CPUPerCall, egc.CPUPerCall/ng.CPUPerCall)
	})
	budget("idle RSS ≤ 40 MiB", []string{"grpc edgegate"}, func(r []Result) (bool, string) {
		return r[0].IdleRSSKiB <= 40*1024, fmt.Sprintf("%.1f MiB", float64(r[0].IdleRSSKiB)/1024)
	})
	return b.String()
}

// measured reports whether a row made calls in both its phases: a row
// whose every call failed has no figures a budget can be read from.
func measured(r Result) bool {
	ok := r.PeakRPS > 0 && r.P50 > 0 && !math.IsNaN(r.P50)
	if r.Peer != "direct" {
		ok = ok && r.CPUPerCall > 0 && !math.IsNaN(r.CPUPerCall)
	}
	return ok
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
