package test

// Tests of scripts/run.sh (make run) and of the Makefile's run target. They
// are self-contained: they build what run.sh runs into a temporary directory
// (run.sh takes the binaries from EDGEGATE, SHOPD and GRPCURL), put every
// port on loopback, and bound every wait.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scriptBins builds bin/edgegate, bin/shopd and the pinned grpcurl into a
// temporary directory and returns run.sh's environment naming them.
func scriptBins(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "github.com/edgegate/edgegate/cmd/edgegate", "github.com/edgegate/edgegate/cmd/shopd"},
		{"build", "-C", "../tools", "-o", filepath.Join(dir, "grpcurl"), "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
	} {
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return []string{
		"EDGEGATE=" + filepath.Join(dir, "edgegate"),
		"SHOPD=" + filepath.Join(dir, "shopd"),
		"GRPCURL=" + filepath.Join(dir, "grpcurl"),
	}
}

// scriptOutput is run.sh's stdout and stderr, written by several processes.
type scriptOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *scriptOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *scriptOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// scriptRun is a running scripts/run.sh.
type scriptRun struct {
	cmd  *exec.Cmd
	out  *scriptOutput
	done chan struct{}
	err  error
}

// startScript runs scripts/run.sh with env added to the test's environment,
// in a process group of its own that is killed at the end of the test.
func startScript(t *testing.T, env ...string) *scriptRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "bash", "../scripts/run.sh")
	cmd.Env = append(os.Environ(), env...)
	r := &scriptRun{cmd: cmd, out: &scriptOutput{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	})
	return r
}

// exit waits up to d for run.sh to exit and returns its exit code.
func (r *scriptRun) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("run.sh still running after %v; output:\n%s", d, r.out)
	}
	if ee, ok := errors.AsType[*exec.ExitError](r.err); ok {
		return ee.ExitCode()
	}
	if r.err != nil {
		t.Fatalf("run.sh: %v", r.err)
	}
	return 0
}

// waitOutput waits up to d for run.sh to print want.
func (r *scriptRun) waitOutput(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(r.out.String(), want) {
		select {
		case <-r.done:
			t.Fatalf("run.sh exited (%v) without printing %q; output:\n%s", r.err, want, r.out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run.sh did not print %q within %v; output:\n%s", want, d, r.out)
		}
	}
}

// loopbackPort returns a 127.0.0.1 address that was free a moment ago.
func loopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// shopSetup is a config for run.sh like the embedded default, on ports of
// the test's: the gateway's listener and admin, and shopd's five backends.
type shopSetup struct {
	listen, admin string
	backends      [5]string // catalog, orders, users, echo, legacy (HTTP)
}

func newShopSetup(t *testing.T) *shopSetup {
	s := &shopSetup{listen: loopbackPort(t), admin: loopbackPort(t)}
	for i := range s.backends {
		s.backends[i] = loopbackPort(t)
	}
	return s
}

// env writes the config and returns run.sh's CONFIG and SHOPD_FLAGS.
func (s *shopSetup) env(t *testing.T) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "edgegate.yaml")
	yaml := fmt.Sprintf(`listeners: [{name: pub, address: %q}]
admin: {address: %q}
clusters:
  - {name: catalog, endpoints: [%q]}
  - {name: orders, endpoints: [%q]}
  - {name: users, endpoints: [%q]}
  - {name: echo, endpoints: [%q]}
routes:
  - {match: {service: shop.catalog.v1.CatalogService}, cluster: catalog}
  - {match: {package: shop.orders}, cluster: orders}
  - {match: {service: shop.users.v1.UsersService}, cluster: users}
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
http_clusters:
  - {name: legacy, endpoints: [%q]}
http_routes:
  - {name: legacy, match: {path_prefix: /legacy}, cluster: legacy, strip_prefix: true}
http:
  compression: {}
  static:
    - {path_prefix: /welcome/, embedded: welcome}
`, s.listen, s.admin, s.backends[0], s.backends[1], s.backends[2], s.backends[3], s.backends[4])
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"CONFIG=" + file,
		fmt.Sprintf("SHOPD_FLAGS=-catalog %s -orders %s -users %s -echo %s -http %s", s.backends[0], s.backends[1], s.backends[2], s.backends[3], s.backends[4]),
	}
}

func TestRunScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	bins := scriptBins(t)

	// make run CONFIG=FILE serves FILE and prints the commands with the
	// address of its first listener (read from edgegate validate); Ctrl-C
	// stops the gateway and the backends.
	t.Run("config", func(t *testing.T) {
		s := newShopSetup(t)
		env := s.env(t)
		r := startScript(t, append(append(env, bins...), "GATEWAY_ADDR=")...)
		r.waitOutput(t, "Ctrl-C stops both.", 30*time.Second)
		out := r.out.String()
		file := strings.TrimPrefix(env[0], "CONFIG=")
		for _, want := range []string{
			"edgegate is serving grpc, grpc-web, rest on " + s.listen + " (config: " + file + ")",
			"curl -s http://" + s.listen + "/v1/shelves/1/books/1",
			"-plaintext " + s.listen + " list",
			"routes -c " + file,
			"curl -s " + s.admin + "/readyz",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("run.sh output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "127.0.0.1:8080") {
			t.Errorf("run.sh output names the default config's 127.0.0.1:8080:\n%s", out)
		}
		c, err := net.DialTimeout("tcp", s.listen, time.Second)
		if err != nil {
			t.Fatalf("nothing listens on %s: %v", s.listen, err)
		}
		_ = c.Close()
		// The quickstart's offloads: the static page, the HTTP route to
		// shopd's plain HTTP service, a compressed answer.
		if r := get(t, "http://"+s.listen+"/welcome/", nil); r.code != http.StatusOK || !strings.Contains(string(r.body), "edgegate") {
			t.Errorf("/welcome/: HTTP %d %.60q", r.code, r.body)
		}
		if r := get(t, "http://"+s.listen+"/legacy/status", nil); r.code != http.StatusOK || !strings.Contains(string(r.body), `"service":"legacy"`) {
			t.Errorf("/legacy/status: HTTP %d %.60q", r.code, r.body)
		}
		if r := get(t, "http://"+s.listen+"/openapi.json", map[string]string{"Accept-Encoding": "gzip"}); r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("/openapi.json: HTTP %d, Content-Encoding %q, want gzip", r.code, r.header.Get("Content-Encoding"))
		}
		if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := r.exit(t, 20*time.Second); code == 0 {
			t.Errorf("run.sh exit code %d after SIGINT, want non-zero", code)
		}
		for _, a := range append([]string{s.listen, s.admin}, s.backends[:]...) {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s still in use after run.sh stopped: %v", a, err)
				continue
			}
			_ = ln.Close()
		}
	})

	// The gateway's port taken (by a listener of the test's): run.sh exits
	// non-zero at once with edgegate's bind error, never saying it serves.
	t.Run("gateway_port_taken", func(t *testing.T) {
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = held.Close() }()
		s := newShopSetup(t)
		s.listen = held.Addr().String()
		start := time.Now()
		r := startScript(t, append(s.env(t), bins...)...)
		code := r.exit(t, Patience)
		out := r.out.String()
		if code == 0 {
			t.Errorf("run.sh exit code 0 with %s taken", s.listen)
		}
		for _, want := range []string{
			"[edgegate] ", "listen tcp " + s.listen + ": bind: address already in use",
			"make run: edgegate exited (status 1) before the gateway was ready",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("run.sh output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "is serving") {
			t.Errorf("run.sh says the gateway serves:\n%s", out)
		}
		t.Logf("run.sh exited %d after %v", code, time.Since(start).Round(time.Millisecond))
	})

	// A port of shopd's taken: the same, with shopd's error. Also when
	// shopd fails while the gateway is still starting, before it has set
	// up its SIGINT handler (a background job of run.sh starts with
	// SIGINT ignored): run.sh still stops it and exits. That stand-in
	// gateway validates with the real one and then only waits, as a
	// gateway loading its config does.
	starting := filepath.Join(t.TempDir(), "edgegate-starting")
	script := "#!/usr/bin/env bash\nif [ \"$1\" = serve ]; then exec sleep 120; fi\nexec " + strings.TrimPrefix(bins[0], "EDGEGATE=") + " \"$@\"\n"
	if err := os.WriteFile(starting, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  []string
	}{
		{"shopd_port_taken", nil},
		{"shopd_fails_gateway_starting", []string{"EDGEGATE=" + starting}},
	} {
		t.Run(c.name, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = held.Close() }()
			s := newShopSetup(t)
			s.backends[1] = held.Addr().String()
			r := startScript(t, append(append(s.env(t), bins...), c.env...)...)
			code := r.exit(t, Patience)
			out := r.out.String()
			if code == 0 {
				t.Errorf("run.sh exit code 0 with %s taken", s.backends[1])
			}
			for _, want := range []string{
				"[shopd] shopd: orders: listen tcp " + s.backends[1] + ": bind: address already in use",
				"make run: shopd exited (status 1) before the gateway was ready",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("run.sh output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "is serving") {
				t.Errorf("run.sh says the gateway serves:\n%s", out)
			}
		})
	}

	// A gateway that runs but never gets ready (a cluster no backend
	// serves): run.sh gives up after STARTUP_TIMEOUT with /readyz's reason.
	t.Run("not_ready", func(t *testing.T) {
		s := newShopSetup(t)
		env := s.env(t)
		nowhere := loopbackPort(t)
		env[1] = strings.Replace(env[1], "-users "+s.backends[2], "-users "+nowhere, 1)
		r := startScript(t, append(append(env, bins...), "STARTUP_TIMEOUT=2")...)
		code := r.exit(t, 10*time.Second)
		out := r.out.String()
		if code == 0 {
			t.Errorf("run.sh exit code 0 with the users cluster unreachable")
		}
		if want := "make run: edgegate is not ready after 2s: " + s.admin + "/readyz: HTTP 503"; !strings.Contains(out, want) || !strings.Contains(out, "no healthy endpoint in cluster(s) users") {
			t.Errorf("run.sh output lacks %q and the cluster:\n%s", want, out)
		}
		if strings.Contains(out, "is serving") {
			t.Errorf("run.sh says the gateway serves:\n%s", out)
		}
	})

	// GATEWAY_ADDR must be the config's first listener.
	t.Run("gateway_addr_mismatch", func(t *testing.T) {
		s := newShopSetup(t)
		r := startScript(t, append(append(s.env(t), bins...), "GATEWAY_ADDR=127.0.0.1:1")...)
		if code := r.exit(t, 10*time.Second); code == 0 {
			t.Errorf("run.sh exit code 0 with a GATEWAY_ADDR not the listener's")
		}
		if want := "GATEWAY_ADDR=127.0.0.1:1 is not the config's first listener, " + s.listen; !strings.Contains(r.out.String(), want) {
			t.Errorf("run.sh output lacks %q:\n%s", want, r.out)
		}
	})
}

// make run passes CONFIG and GATEWAY_ADDR to run.sh, and make help
// documents them.
func TestMakeRunPassesVariables(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-C", "..", "-n", "-s", "run", "CONFIG=my.yaml", "GATEWAY_ADDR=127.0.0.1:9000").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	if want := "CONFIG='my.yaml' GATEWAY_ADDR='127.0.0.1:9000' ./scripts/run.sh"; !strings.Contains(string(out), want) {
		t.Errorf("make -n run lacks %q:\n%s", want, out)
	}
	out, err = exec.Command("make", "-C", "..", "-s", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	for _, want := range []string{"CONFIG=FILE", "GATEWAY_ADDR=H:P"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make help lacks %s:\n%s", want, out)
		}
	}
}
