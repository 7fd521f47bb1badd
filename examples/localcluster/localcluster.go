// Package localcluster runs edgegate as a replica set on one machine, all
// on loopback: a redis-server, the example backends (shopd), N gateway
// replicas (the built binary, one config each, sharing the Redis) and
// HAProxy in TCP mode in front of them, health-checking each replica's
// admin /readyz. Check drives load through HAProxy on the three doors and
// proves, from the replicas' own metrics, that they behave as one gateway:
// one global rate limit, and a rolling restart with no failed call.
// `make cluster` and `make cluster-check` (scripts/cluster) and a test in
// test/ use it.
package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says what to run and where.
type Options struct {
	// Dir holds the config files and the logs; it must exist.
	Dir string
	// Edgegate, Shopd: the binaries (bin/edgegate, bin/shopd).
	Edgegate, Shopd string
	// Replicas is the number of gateway replicas; default 3.
	Replicas int
	// Limit is the requests per hour of the global rate limit that Check
	// holds the replicas to (the "cluster" policy on the echo service's
	// Unary method, keyed by the x-tenant header); default 600.
	Limit int
	// DrainPeriod is each replica's shutdown_drain_period: longer than
	// HAProxy takes to see a draining replica (2 failed checks 100ms
	// apart). Default 1s.
	DrainPeriod time.Duration
	// Log receives one line per step; nil: discarded.
	Log io.Writer
}

// Cluster is a running local cluster.
type Cluster struct {
	opts     Options
	LB       string // HAProxy's frontend: every door of the gateway
	Stats    string // HAProxy's stats page (host:port)
	Redis    string
	Replicas []*Replica
	procs    []*proc // redis, shopd, haproxy
}

// Replica is one gateway replica.
type Replica struct {
	Name   string // edgegate-1 …
	Addr   string // its public listener
	Admin  string // its admin listener (/readyz, /metrics)
	Config string // its config file
	p      *proc
}

// proc is a process of the cluster, its stderr and stdout in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Log != nil {
		fmt.Fprintf(c.opts.Log, "cluster: "+format+"\n", args...)
	}
}

// freeAddr returns a loopback address with a port free now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	a := ln.Addr().String()
	return a, ln.Close()
}

func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// start runs name (its output appended to Dir/name.log).
func (c *Cluster) start(name string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(filepath.Join(c.opts.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // G204: the cluster's own programs, from Options
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("localcluster: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); _ = f.Close(); close(p.done) }()
	return p, nil
}

// tail is the last n lines of the file at path, on one line.
func tail(path string, n int) string {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the cluster's own log
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}

// stop sends sig and waits for the process to exit (SIGKILL after d).
func (p *proc) stop(sig syscall.Signal, d time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Start starts the cluster and waits until every replica is ready and
// HAProxy sees all of them up. On error, what started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Limit <= 0 {
		opts.Limit = 600
	}
	if opts.DrainPeriod <= 0 {
		opts.DrainPeriod = time.Second
	}
	c := &Cluster{opts: opts}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	addrs, err := freeAddrs(7 + 2*opts.Replicas)
	if err != nil {
		return nil, err
	}
	c.Redis, c.LB, c.Stats = addrs[0], addrs[1], addrs[2]
	backends := addrs[3:7] // catalog, orders, users, echo
	rp, err := c.start("redis", "redis-server", "--port", port(c.Redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, rp)
	sp, err := c.start("shopd", opts.Shopd, "-catalog", backends[0], "-orders", backends[1], "-users", backends[2], "-echo", backends[3])
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, sp)
	for i := range opts.Replicas {
		r := &Replica{Name: fmt.Sprintf("edgegate-%d", i+1), Addr: addrs[7+2*i], Admin: addrs[8+2*i]}
		r.Config = filepath.Join(opts.Dir, r.Name+".yaml")
		if err := os.WriteFile(r.Config, []byte(replicaConfig(r, backends, c.Redis, opts)), 0o600); err != nil {
			return nil, err
		}
		c.Replicas = append(c.Replicas, r)
	}
	hcfg := filepath.Join(opts.Dir, "haproxy.cfg")
	if err := os.WriteFile(hcfg, []byte(haproxyConfig(c)), 0o600); err != nil {
		return nil, err
	}
	for _, r := range c.Replicas {
		if err := c.startReplica(r); err != nil {
			return nil, err
		}
	}
	hp, err := c.start("haproxy", "haproxy", "-db", "-f", hcfg)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, hp)
	for _, r := range c.Replicas {
		if err := c.waitReady(ctx, r); err != nil {
			return nil, err
		}
	}
	c.logf("redis %s, shopd %s, haproxy %s (stats http://%s/stats)", c.Redis, strings.Join(backends, ","), c.LB, c.Stats)
	return c, nil
}

// replicaConfig is one replica's config: the embedded default's routes,
// the echo service's Unary method under the global limit, the drain
// period, its own ports.
func replicaConfig(r *Replica, b []string, redis string, o Options) string {
	return fmt.Sprintf(`# %[1]s of the local cluster (make cluster).
listeners:
  - {name: public, address: %[2]q}
admin: {address: %[3]q}
shutdown_drain_period: %[4]dms
shutdown_grace_period: 10s
clusters:
  - {name: catalog, endpoints: [%[5]q]}
  - {name: orders, endpoints: [%[6]q]}
  - {name: users, endpoints: [%[7]q]}
  - {name: echo, endpoints: [%[8]q]}
routes:
  - {name: catalog, match: {service: shop.catalog.v1.CatalogService}, cluster: catalog, timeout: 10s, cache: {ttl: 60s}}
  - {name: orders, match: {package: shop.orders}, cluster: orders, timeout: 10s}
  - {name: users-chat, match: {method: shop.users.v1.UsersService/Chat}, cluster: users}
  - {name: users, match: {service: shop.users.v1.UsersService}, cluster: users, timeout: 5s}
  - {name: echo-limited, match: {method: edgegate.testing.v1.EchoService/Unary}, cluster: echo, rate_limits: [cluster]}
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
http:
  rest: {forward_request_headers: [x-tenant]}
  grpc_web: {forward_request_headers: [x-tenant]}
rate_limits:
  - name: cluster
    key: [{header: x-tenant}]
    limits: [{requests: %[9]d, period: 1h}]
    backend: RATE_LIMIT_BACKEND_REDIS
redis: {address: %[10]q, timeout: 250ms}
# The response cache: a memory tier per replica and a Redis tier they share.
cache: {redis: true}
`, r.Name, r.Addr, r.Admin, o.DrainPeriod.Milliseconds(), b[0], b[1], b[2], b[3], o.Limit, redis)
}

// haproxyConfig: TCP mode, round robin over the replicas, each checked on
// its admin /readyz every 100ms (down after 2 failures, up after 2
// passes). No retry of a refused connect to another replica (retries 0):
// the drain period alone keeps new connections off a stopping replica.
func haproxyConfig(c *Cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4096
defaults
  mode tcp
  timeout connect 1s
  timeout client 1m
  timeout server 1m
  retries 0
listen stats
  mode http
  bind %s
  stats enable
  stats uri /stats
frontend gateway
  bind %s
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 100ms fall 2 rise 2
`, c.Stats, c.LB)
	for _, r := range c.Replicas {
		fmt.Fprintf(&b, "  server %s %s check port %s\n", r.Name, r.Addr, port(r.Admin))
	}
	return b.String()
}

func (c *Cluster) startReplica(r *Replica) error {
	p, err := c.start(r.Name, c.opts.Edgegate, "serve", "-c", r.Config)
	if err != nil {
		return err
	}
	r.p = p
	return nil
}

// waitReady waits until r's /readyz answers 200 and HAProxy reports it UP.
func (c *Cluster) waitReady(ctx context.Context, r *Replica) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if r.p != nil {
			select {
			case <-r.p.done:
				log := filepath.Join(c.opts.Dir, r.Name+".log")
				return fmt.Errorf("localcluster: %s exited: %w (%s ends: %s)", r.Name, r.p.err, log, tail(log, 5))
			default:
			}
		}
		if code, _ := get(ctx, "http://"+r.Admin+"/readyz"); code == http.StatusOK {
			if st, _ := c.serverStatus(ctx); st[r.Name] == "UP" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			st, _ := c.serverStatus(context.WithoutCancel(ctx))
			return fmt.Errorf("localcluster: %s not ready and up in HAProxy within 30s (HAProxy: %v)", r.Name, st)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverStatus is HAProxy's view of each replica ("UP", "DOWN", …), from
// its stats CSV.
func (c *Cluster) serverStatus(ctx context.Context) (map[string]string, error) {
	code, body := get(ctx, "http://"+c.Stats+"/stats;csv")
	if code != http.StatusOK {
		return nil, fmt.Errorf("localcluster: HAProxy stats: HTTP %d", code)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) > 17 && f[0] == "replicas" && f[1] != "BACKEND" {
			out[f[1]] = strings.Fields(f[17] + " ")[0] // "UP", "DOWN", "UP 1/2"…
		}
	}
	return out, nil
}

func get(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, string(b)
}

// Restart sends r SIGTERM (the drain period, then the grace period), waits
// for it to exit, starts it again on the same ports and waits until it is
// ready and HAProxy has it up.
func (c *Cluster) Restart(ctx context.Context, r *Replica) error {
	c.logf("%s: SIGTERM", r.Name)
	r.p.stop(syscall.SIGTERM, 30*time.Second)
	if r.p.err != nil {
		var ee *exec.ExitError
		if !errors.As(r.p.err, &ee) || ee.ExitCode() != 0 {
			return fmt.Errorf("localcluster: %s exited after SIGTERM: %w", r.Name, r.p.err)
		}
	}
	if err := c.startReplica(r); err != nil {
		return err
	}
	if err := c.waitReady(ctx, r); err != nil {
		return err
	}
	c.logf("%s: restarted, ready and up", r.Name)
	return nil
}

// Stop stops every process (the gateways with SIGINT: no drain period).
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, r := range c.Replicas {
		if r.p != nil {
			wg.Go(func() { r.p.stop(syscall.SIGINT, 15*time.Second) })
		}
	}
	wg.Wait()
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(syscall.SIGTERM, 5*time.Second)
	}
}
