// Package testredis runs a real redis-server for tests: on a free loopback
// port, without persistence, killed when the test ends, and restartable on
// the same port (to test a Redis outage and recovery).
package testredis

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is a redis-server owned by one test.
type Server struct {
	t    testing.TB
	Addr string // 127.0.0.1:port, the same across restarts
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server for t and waits until it accepts
// connections. The test fails (it never skips) when redis-server is not
// installed: `make test-deps` installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not on PATH (%v): run `make test-deps` to install it", err)
	}
	s := &Server{t: t, dir: t.TempDir()}
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

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
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
