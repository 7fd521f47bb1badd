// Package testredis runs a real redis-server for tests: on a free loopback
// port, without persistence, killed when the test ends, and restartable on
// the same port (to test a Redis outage and recovery); and, built of such
// servers, a Redis Cluster of three masters (StartCluster) and a master
// with a replica watched by Redis Sentinel (StartSentinel).
package testredis

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Server is a redis-server owned by one test.
type Server struct {
	t    testing.TB
	Addr string // 127.0.0.1:port, the same across restarts
	dir  string
	args func(port string) []string // the command line after "redis-server"
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server for t and waits until it accepts
// connections. The test fails (it never skips) when redis-server is not
// installed: `make test-deps` installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	return launch(t, nil)
}

// StartWith starts a redis-server as Start does, with args added to its
// command line (redis.conf directives as flags, one argument per word:
// "--user", "alice", "on", ">pw", "~*", "+@all"; "--tls-port", "{port}", "--port", "0": "{port}" is replaced by the
// server's port). A server whose port is TLS only is
// waited on by TCP; CLI does not speak TLS.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	return launch(t, func(_, port string) ([]string, []string) {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.ReplaceAll(a, "{port}", port)
		}
		return nil, out
	})
}

// launch starts a redis-server with the common flags and the ones extra
// adds for a port (nil: none): first before them (a config file), then
// after them.
func launch(t testing.TB, extra func(dir, port string) (first, then []string)) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not on PATH (%v): run `make test-deps` to install it", err)
	}
	s := &Server{t: t, dir: t.TempDir()}
	s.args = func(port string) []string {
		var first, then []string
		if extra != nil {
			first, then = extra(s.dir, port)
		}
		args := append(slices.Clone(first), "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
		return append(args, then...)
	}
	t.Cleanup(s.Kill)
	var err error
	for range 3 {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		s.Addr = ln.Addr().String()
		_ = ln.Close()
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", err)
	return nil
}

// Port is the server's port, as a string.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return port
}

func (s *Server) start() error {
	cmd := exec.Command("redis-server", s.args(s.Port())...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	for range 250 {
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start (see %s)", s.Addr, filepath.Join(s.dir, "redis.log"))
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			s.cmd, s.done = cmd, done
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("redis-server on %s did not accept connections within 5s", s.Addr)
}

// Log is the server's log file as it is now.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// CLI runs redis-cli against the server with args and returns its output
// (trimmed). The test fails when redis-cli fails.
func (s *Server) CLI(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", s.Port()}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("redis-cli -p %s %v: %v\n%s", s.Port(), args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Kill stops the server at once (SIGKILL), like a crash.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restarting redis-server: %v", err)
}
