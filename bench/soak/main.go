// Command soak runs the gateway under a fixed rate of calls on all three
// doors for a while (default 10 minutes) and samples its RSS and goroutine
// count every interval, to show whether memory stays flat. It writes
// bench/results/soak.md. `make soak` runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/bench/internal/procs"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

var (
	duration = flag.Duration("duration", 10*time.Minute, "how long to run")
	rate     = flag.Int("rate", 300, "calls per second per door")
	every    = flag.Duration("every", time.Minute, "sampling interval")
	bin      = flag.String("bin", ".cache/bench", "where the binaries are")
	out      = flag.String("out", "bench/results/soak.md", "the report")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func freePort() string {
	a, err := procs.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	return a
}

func waitPort(addr string) {
	if err := procs.WaitPort(addr); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	for _, c := range [][]string{{"go", "build", "-o", *bin + "/", "./cmd/edgegate", "./cmd/shopd"}} {
		if o, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%w\n%s", err, o)
		}
	}
	dir, err := os.MkdirTemp("", "edgegate-soak")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	echo, gw, adm := freePort(), freePort(), freePort()
	up := exec.Command(*bin+"/shopd", "-echo", echo, "-catalog", freePort(), "-orders", freePort(), "-users", freePort())
	if err := up.Start(); err != nil {
		return err
	}
	defer func() { _ = up.Process.Kill(); _ = up.Wait() }()
	waitPort(echo)
	cfg := fmt.Sprintf(`
listeners: [{address: %q}]
clusters: [{name: echo, endpoints: [%q]}]
routes: [{name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo}]
admin: {address: %q}
logging: {access_log_sample_ratio: 0}
`, gw, echo, adm)
	file := filepath.Join(dir, "soak.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return err
	}
	g := exec.Command(*bin+"/edgegate", "serve", "-c", file)
	g.Stderr = io.Discard
	if err := g.Start(); err != nil {
		return err
	}
	defer func() { _ = g.Process.Signal(os.Interrupt); _ = g.Wait() }()
	waitPort(gw)
	waitPort(adm)

	conn, err := grpc.NewClient(gw, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := testingv1.NewEchoServiceClient(conn)
	msg, _ := proto.Marshal(&testingv1.EchoRequest{Payload: make([]byte, 100)})
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	hc := &http.Client{Timeout: 5 * time.Second}
	var calls, errs atomic.Int64
	doors := map[string]func() error{
		"grpc": func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := client.Unary(ctx, &testingv1.EchoRequest{Payload: make([]byte, 100)})
			return err
		},
		"rest": func() error {
			return post(hc, "http://"+gw+"/v1/echo:unary", "application/json", []byte(`{"message":"soak"}`))
		},
		"grpc-web": func() error {
			return post(hc, "http://"+gw+"/edgegate.testing.v1.EchoService/Unary", "application/grpc-web+proto", frame)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	for _, call := range doors {
		go func() {
			tick := time.NewTicker(time.Second / time.Duration(*rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					go func() {
						calls.Add(1)
						if call() != nil {
							errs.Add(1)
						}
					}()
				}
			}
		}()
	}
	var rep strings.Builder
	fmt.Fprintf(&rep, "Soak by `make soak`, %s: %d calls/s on each of the three doors (100 B unary) for %v; the gateway's RSS and goroutines sampled every %v.\n\n| elapsed | calls | errors | RSS MiB | goroutines |\n|---|---|---|---|---|\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), *rate, *duration, *every)
	sample := func(elapsed time.Duration) {
		line := fmt.Sprintf("| %v | %d | %d | %.1f | %d |\n", elapsed.Round(time.Second), calls.Load(), errs.Load(), rss(g.Process.Pid), goroutines(adm))
		rep.WriteString(line)
		log.Print(strings.TrimSpace(line))
	}
	start := time.Now()
	sample(0)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			sample(time.Since(start))
		case <-ctx.Done():
			done = true
		}
	}
	time.Sleep(2 * time.Second) // let the last calls end
	sample(time.Since(start))
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(rep.String()), 0o644)
}

func post(hc *http.Client, url, ct string, body []byte) error {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ct)
	if strings.HasPrefix(ct, "application/grpc-web") {
		req.Header.Set("X-Grpc-Web", "1")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if strings.HasPrefix(ct, "application/grpc-web") && !bytes.Contains(b, []byte("grpc-status: 0")) && resp.Header.Get("Grpc-Status") != "0" {
		return fmt.Errorf("grpc-web call failed")
	}
	return nil
}

func rss(pid int) float64 { return float64(procs.RSSKiB(pid)) / 1024 }

func goroutines(admin string) int {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}
