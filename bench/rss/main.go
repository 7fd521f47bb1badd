// Command rss starts gateway binaries side by side with the same config and
// prints where their idle resident memory is: the executable's text, its
// read-only data (rodata, pclntab), its data, anonymous memory (heap,
// stacks, bss) and shared libraries, read from /proc/PID/smaps a while after
// start, the median and range over several samples.
//
//	go run ./bench/rss [-config min|bench|FILE] [-samples 5] [-wait 3s] [-pages 20] BIN...
//
// Each binary is started as `BIN serve -c CONFIG` with GOMAXPROCS=1, in
// turn, one sample of each per round, against an echo upstream and an HTTP
// upstream this command serves on loopback; it gets one echo call (-call)
// once its listener accepts, as bench/harness makes before it reads the
// idle RSS. Before each start the binary is dropped from the page cache
// (procs.Evict). -config bench is the config of
// the "grpc edgegate" row of `make bench` (bench/harness); -config min a
// listener, one cluster and one route. -pages N also prints, for the first
// binary, the N packages whose code is most resident (from
// /proc/PID/pagemap and the binary's symbol table).
package main

import (
	"bufio"
	"cmp"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/edgegate/edgegate/bench/internal/procs"
	"github.com/edgegate/edgegate/examples/echo"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

var (
	configFlag = flag.String("config", "bench", "min, bench, or a config file (used as it is: no call, read -wait after the start)")
	samples    = flag.Int("samples", 5, "samples of each binary")
	wait       = flag.Duration("wait", 3*time.Second, "how long after its listener accepts a sample is read")
	pages      = flag.Int("pages", 0, "print the N packages of the first binary's most resident code")
	call       = flag.Bool("call", true, "make one unary echo call through the gateway first, as bench/harness does before it reads the idle RSS")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: rss [flags] BIN...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Args()); err != nil {
		log.Fatal(err)
	}
}

func run(bins []string) error {
	dir, err := os.MkdirTemp("", "edgegate-rss")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	upstream, legacy, err := serveUpstreams()
	if err != nil {
		return err
	}
	all := make([][]breakdown, len(bins))
	var top []pkgKiB
	for round := range *samples {
		for i, bin := range bins {
			b, p, err := sample(bin, dir, upstream, legacy, round == 0 && i == 0 && *pages > 0)
			if err != nil {
				return fmt.Errorf("%s: %w", bin, err)
			}
			all[i] = append(all[i], b)
			if p != nil {
				top = p
			}
		}
	}
	fmt.Printf("config %s, GOMAXPROCS=1, one echo call: %v, read %v after the listener accepts, %d samples each (median, RSS range); KiB\n\n", *configFlag, *call, *wait, *samples)
	fmt.Println("| binary | RSS | range | anon | file | text | rodata+pclntab | data | libs |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i, bin := range bins {
		s := all[i]
		col := func(f func(breakdown) int64) int64 { return median(s, f) }
		lo := slices.MinFunc(s, func(a, b breakdown) int { return cmp.Compare(a.rss, b.rss) }).rss
		hi := slices.MaxFunc(s, func(a, b breakdown) int { return cmp.Compare(a.rss, b.rss) }).rss
		fmt.Printf("| %s | %d | %d–%d | %d | %d | %d | %d | %d | %d |\n", bin,
			col(func(b breakdown) int64 { return b.rss }), lo, hi,
			col(func(b breakdown) int64 { return b.anon }),
			col(func(b breakdown) int64 { return b.file }),
			col(func(b breakdown) int64 { return b.text }),
			col(func(b breakdown) int64 { return b.rodata }),
			col(func(b breakdown) int64 { return b.data }),
			col(func(b breakdown) int64 { return b.libs }))
	}
	if top != nil {
		fmt.Printf("\nresident sections of %s, and its code by package (first sample; KiB)\n\n", bins[0])
		for _, p := range top[:min(len(top), *pages)] {
			fmt.Printf("%6d  %s\n", p.kib, p.pkg)
		}
	}
	return nil
}

// serveUpstreams serves the echo service (gRPC) and an HTTP upstream on
// loopback for the gateways' clusters, and returns their addresses.
func serveUpstreams() (grpcAddr, httpAddr string, err error) {
	g, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: "rss"})
	go func() { _ = s.Serve(g) }()
	h, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = hs.Serve(h) }()
	return g.Addr().String(), h.Addr().String(), nil
}

// echoCall makes one unary call of the echo service through the gateway
// at addr.
func echoCall(addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Unary(ctx, &testingv1.EchoRequest{Message: "rss"})
	return err
}

// config returns the config to start a gateway listening on addr with;
// noHTTP leaves the HTTP route out of the bench config (a build that
// predates HTTP routes rejects it, as bench/harness's baseline does).
func config(addr, upstream, legacy string, noHTTP bool) (string, error) {
	base := fmt.Sprintf(`listeners: [{address: %q}]
clusters: [{name: echo, endpoints: [%q]}]
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
admin: {disable: true}
`, addr, upstream)
	switch *configFlag {
	case "min":
		return base, nil
	case "bench":
		if noHTTP {
			return base + "logging: {disable_access_log: true}\n", nil
		}
		// bench/harness's "grpc edgegate" row: the HTTP route, no access log.
		return base + fmt.Sprintf(`http_clusters: [{name: legacy, endpoints: [%q]}]
http_routes:
  - name: legacy
    match: {path_prefix: /legacy}
    cluster: legacy
    strip_prefix: true
logging: {disable_access_log: true}
`, legacy), nil
	}
	b, err := os.ReadFile(*configFlag)
	return string(b), err
}

// breakdown is one sample's resident memory, in KiB.
type breakdown struct {
	rss, anon, file          int64
	text, rodata, data, libs int64
}

func sample(bin, dir, upstream, legacy string, byPackage bool) (breakdown, []pkgKiB, error) {
	addr, err := procs.FreePort()
	if err != nil {
		return breakdown{}, nil, err
	}
	file := filepath.Join(dir, "config.yaml")
	for _, noHTTP := range []bool{false, true} {
		cfg, err := config(addr, upstream, legacy, noHTTP)
		if err != nil {
			return breakdown{}, nil, err
		}
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			return breakdown{}, nil, err
		}
		if exec.Command(bin, "validate", "-c", file).Run() == nil {
			break
		}
	}
	if err := procs.Evict(bin); err != nil {
		return breakdown{}, nil, err
	}
	cmd := exec.Command(bin, "serve", "-c", file)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return breakdown{}, nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	ours := *configFlag == "min" || *configFlag == "bench" // a FILE's listener is its own
	if ours {
		if err := procs.WaitPort(addr); err != nil {
			return breakdown{}, nil, fmt.Errorf("%w\n%s", err, out.String())
		}
	}
	if *call && ours {
		if err := echoCall(addr); err != nil {
			return breakdown{}, nil, fmt.Errorf("echo call: %w\n%s", err, out.String())
		}
	}
	time.Sleep(*wait) // the idle state being measured: nothing to wait on
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
	if err != nil {
		return breakdown{}, nil, err
	}
	b, err := readSmaps(cmd.Process.Pid, exe)
	if err != nil {
		return breakdown{}, nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	if !byPackage {
		return b, nil, nil
	}
	p, err := residentCode(cmd.Process.Pid, exe)
	return b, p, err
}

// readSmaps sums the resident memory of pid's mappings by kind; exe is the
// path of its executable.
func readSmaps(pid int, exe string) (breakdown, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return breakdown{}, err
	}
	defer func() { _ = f.Close() }()
	var b breakdown
	var kind *int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a mapping: address perms offset dev inode [path]
			path := ""
			if len(fs) >= 6 {
				path = fs[5]
			}
			perms := fs[1]
			switch {
			case path == exe && strings.Contains(perms, "x"):
				kind = &b.text
			case path == exe && strings.HasPrefix(perms, "r--"):
				kind = &b.rodata
			case path == exe:
				kind = &b.data
			case strings.HasPrefix(path, "/"):
				kind = &b.libs
			default: // heap, stacks, bss, vdso
				kind = nil
			}
			continue
		}
		if len(fs) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "Rss:":
			b.rss += n
			if kind != nil {
				*kind += n
			}
		case "Anonymous:":
			b.anon += n
		}
	}
	b.file = b.rss - b.anon
	return b, sc.Err()
}

// pkgKiB is the resident code of one package.
type pkgKiB struct {
	pkg string
	kib int64
}

// residentCode attributes the resident pages of pid's text to the packages
// of the functions on them (a page shared by several is split by bytes).
func residentCode(pid int, exe string) ([]pkgKiB, error) {
	ef, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer func() { _ = ef.Close() }()
	text := ef.Section(".text")
	syms, err := ef.Symbols()
	if err != nil || text == nil {
		return nil, errors.Join(errors.New("no symbol table or no .text"), err)
	}
	syms = slices.DeleteFunc(syms, func(s elf.Symbol) bool {
		return elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value < text.Addr || s.Value >= text.Addr+text.Size
	})
	slices.SortFunc(syms, func(a, b elf.Symbol) int { return cmp.Compare(a.Value, b.Value) })
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer func() { _ = pm.Close() }()
	const page = 4096
	bytesOf := map[string]int64{}
	entry := make([]byte, 8)
	for a := text.Addr &^ (page - 1); a < text.Addr+text.Size; a += page {
		if _, err := pm.ReadAt(entry, int64(a/page*8)); err != nil {
			return nil, err
		}
		if binary.LittleEndian.Uint64(entry)&(1<<63) == 0 { // not present
			continue
		}
		i, _ := slices.BinarySearchFunc(syms, a, func(s elf.Symbol, a uint64) int { return cmp.Compare(s.Value, a) })
		i = max(i-1, 0)
		for ; i < len(syms) && syms[i].Value < a+page; i++ {
			end := text.Addr + text.Size
			if i+1 < len(syms) {
				end = syms[i+1].Value
			}
			lo, hi := max(syms[i].Value, a), min(end, a+page)
			if hi > lo {
				bytesOf[pkgOf(syms[i].Name)] += int64(hi - lo)
			}
		}
	}
	for _, sec := range ef.Sections {
		if sec.Addr == 0 || sec.Flags&elf.SHF_ALLOC == 0 || sec.Type == elf.SHT_NOBITS {
			continue
		}
		var n int64
		for a := sec.Addr &^ (page - 1); a < sec.Addr+sec.Size; a += page {
			if _, err := pm.ReadAt(entry, int64(a/page*8)); err != nil {
				return nil, err
			}
			if binary.LittleEndian.Uint64(entry)&(1<<63) != 0 {
				n += page
			}
		}
		bytesOf["section "+sec.Name] = n
	}
	var l []pkgKiB
	for p, n := range bytesOf {
		l = append(l, pkgKiB{p, n / 1024})
	}
	slices.SortFunc(l, func(a, b pkgKiB) int { return cmp.Or(cmp.Compare(b.kib, a.kib), cmp.Compare(a.pkg, b.pkg)) })
	return l, nil
}

// pkgOf is the package path of a Go symbol name (path/to/pkg.Func.func1,
// path/to/pkg.(*T).M, type:.eq.path/to/pkg.T).
func pkgOf(sym string) string {
	slash := strings.LastIndex(sym, "/")
	rest := sym[slash+1:]
	if dot := strings.Index(rest, "."); dot >= 0 {
		return sym[:slash+1+dot]
	}
	return sym
}

func median(s []breakdown, f func(breakdown) int64) int64 {
	v := make([]int64, len(s))
	for i, b := range s {
		v[i] = f(b)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
