// Package procs holds what the benchmark harness and the soak share:
// loopback ports and /proc readings of the processes they start.
package procs

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FreePort returns a loopback address nothing listens on.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// WaitPort waits up to 5 s for addr to accept connections.
func WaitPort(addr string) error {
	for range 200 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s does not accept connections", addr)
}

// RSSKiB is the resident memory of pids, from /proc.
func RSSKiB(pids ...int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// Evict drops the executable bin (a path, or a name looked up in PATH)
// from the page cache, so that a process started from it reads it as one
// started after boot does. How much of a file one fault maps depends on
// how its pages came into the cache: a binary the linker has just written
// showed up to 5 MiB more resident read-only data than the same binary
// read from disk (go run ./bench/rss, 2026-12-01).
func Evict(bin string) error {
	path, err := exec.LookPath(bin)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil { // dirty pages stay in the cache
		return fmt.Errorf("evict %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s: %w", path, err)
	}
	return nil
}
