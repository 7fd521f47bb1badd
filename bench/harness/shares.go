package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The parts of the Go stack a gateway call's CPU time can be charged to,
// in the order they are tried from the innermost frame out: a sample is
// charged to the first frame that belongs to one of them, so allocation
// and locking are charged to the code that asked for them.
var shareParts = []struct{ name, prefix string }{
	{"edgegate (its own code: doors, chain, proxy)", "github.com/edgegate/"},
	{"grpc-go HTTP/2 transport (framing, HPACK, reader, loopy writer)", "google.golang.org/grpc/internal/transport"},
	{"x/net HTTP/2 (Framer, HPACK: the relay's server engine and upstream client)", "golang.org/x/net/http2"},
	{"grpc-go call layer (streams, balancer, status, metadata)", "google.golang.org/grpc"},
	{"net/http (the HTTP/2 server of the REST and gRPC-Web doors)", "net/http"},
	{"net/http (the HTTP/2 server of the REST and gRPC-Web doors)", "vendor/golang.org/x/net"},
	{"protobuf, protojson, grpc-gateway", "google.golang.org/protobuf"},
	{"protobuf, protojson, grpc-gateway", "github.com/grpc-ecosystem/grpc-gateway"},
	{"log/slog (the access log)", "log/slog"},
	{"prometheus client (metrics)", "github.com/prometheus/"},
}

const (
	shareSyscall = "system calls (socket reads and writes, epoll, futex)"
	shareGC      = "runtime: background garbage collection"
	shareRuntime = "runtime: scheduler and the rest"
)

var sampleLine = regexp.MustCompile(`^\s*([\d.]+)(ms|s|us|µs)\s+(\S.*)$`)

// writeShares charges every sample of the CPU profile prof to the part of
// the stack that caused it (shareParts; system calls and background GC on
// their own) and writes the shares as a Markdown table to file: where a
// call's time goes, by library.
func writeShares(prof, file string) error {
	out, err := exec.Command("go", "tool", "pprof", "-traces", filepath.Join(*bin, "edgegate"), prof).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -traces: %w", err)
	}
	shares, total := chargeSamples(out)
	if total == 0 {
		return fmt.Errorf("%s: no samples", prof)
	}
	names := make([]string, 0, len(shares))
	for n := range shares {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return shares[names[i]] > shares[names[j]] })
	var b bytes.Buffer
	fmt.Fprintf(&b, "CPU samples: %v. Each is charged to the innermost frame of these parts.\n\n| part | share |\n|---|---|\n", total.Round(time.Millisecond))
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %.1f %% |\n", n, 100*float64(shares[n])/float64(total))
	}
	return os.WriteFile(file, b.Bytes(), 0o644)
}

// chargeSamples reads `go tool pprof -traces` output: blocks of a sample's
// value and innermost frame, then its callers, one per line.
func chargeSamples(traces []byte) (map[string]time.Duration, time.Duration) {
	shares := map[string]time.Duration{}
	var total time.Duration
	var value time.Duration
	var frames []string
	flush := func() {
		if value > 0 && len(frames) > 0 {
			shares[chargeTo(frames)] += value
			total += value
		}
		value, frames = 0, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(traces))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		if m := sampleLine.FindStringSubmatch(line); m != nil && value == 0 && frames == nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				continue
			}
			unit := map[string]time.Duration{"s": time.Second, "ms": time.Millisecond, "us": time.Microsecond, "µs": time.Microsecond}[m[2]]
			value = time.Duration(v * float64(unit))
			frames = append(frames, strings.TrimSpace(m[3]))
			continue
		}
		if value > 0 {
			if f := strings.TrimSpace(line); f != "" {
				frames = append(frames, f)
			}
		}
	}
	flush()
	return shares, total
}

// chargeTo names the part a sample with these frames (innermost first)
// is charged to.
func chargeTo(frames []string) string {
	leaf := frames[0]
	if strings.Contains(leaf, "Syscall") || strings.HasPrefix(leaf, "runtime.futex") || strings.HasPrefix(leaf, "runtime.netpoll") || strings.HasPrefix(leaf, "internal/runtime/syscall") {
		return shareSyscall
	}
	for _, f := range frames {
		if strings.HasPrefix(f, "runtime.gcBgMarkWorker") {
			return shareGC
		}
	}
	for _, f := range frames {
		for _, p := range shareParts {
			if strings.HasPrefix(f, p.prefix) {
				return p.name
			}
		}
	}
	return shareRuntime
}
