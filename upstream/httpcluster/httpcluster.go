// Package httpcluster is a cluster of plain HTTP servers: the
// http.RoundTripper that the gateway's HTTP routes send requests through.
// It spreads requests round robin over the healthy endpoints, speaks
// HTTP/1.1, h2c or h2 to them, over TLS and mutual TLS when configured,
// probes them with active health checks, and tries a request again on
// another endpoint when it failed before any answer and may be repeated
// (an idempotent method and no body).
package httpcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/tlsconf"
)

// Defaults of an http_clusters entry.
const (
	DefaultConnectTimeout        = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout           = 90 * time.Second
	DefaultHealthInterval        = 5 * time.Second
	DefaultHealthTimeout         = 2 * time.Second
	DefaultHealthThreshold       = 2
)

// ErrNoHealthy is the error of a request when every endpoint is down.
var ErrNoHealthy = errors.New("no healthy endpoint")

// Cluster is one HTTP cluster. It is safe for concurrent use.
type Cluster struct {
	name      string
	scheme    string
	endpoints []*endpoint
	next      atomic.Uint64
	attempts  int
	transport *http.Transport
	health    *configv1.HTTPHealthCheck
	log       *slog.Logger

	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

type endpoint struct {
	addr    string
	healthy atomic.Bool
	fails   int // consecutive failed probes (the prober's)
	passes  int // consecutive passed probes
}

// New builds the cluster of cc. Nothing is dialled until Start (health
// checks) or the first request.
func New(cc *configv1.HTTPCluster, log *slog.Logger) (*Cluster, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Cluster{
		name:     cc.GetName(),
		scheme:   "http",
		attempts: max(int(cc.GetMaxAttempts()), 1),
		health:   cc.GetHealthCheck(),
		log:      log.With(slog.String("http_cluster", cc.GetName())),
		stop:     make(chan struct{}),
	}
	for _, ep := range cc.GetEndpoints() {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, fmt.Errorf("endpoint %q is not host:port: %w", ep, err)
		}
		e := &endpoint{addr: ep}
		e.healthy.Store(true)
		c.endpoints = append(c.endpoints, e)
	}
	connect := durationOr(cc.GetConnectTimeout().AsDuration(), DefaultConnectTimeout)
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: durationOr(cc.GetResponseHeaderTimeout().AsDuration(), DefaultResponseHeaderTimeout),
		IdleConnTimeout:       durationOr(cc.GetIdleTimeout().AsDuration(), DefaultIdleTimeout),
		MaxIdleConnsPerHost:   64,
		// The client's Accept-Encoding goes upstream as it is, and the
		// answer comes back as the upstream encoded it.
		DisableCompression: true,
	}
	protocols := &http.Protocols{}
	switch cc.GetProtocol() {
	case configv1.HTTPUpstreamProtocol_HTTP_UPSTREAM_PROTOCOL_H2C:
		protocols.SetUnencryptedHTTP2(true)
	case configv1.HTTPUpstreamProtocol_HTTP_UPSTREAM_PROTOCOL_H2:
		if cc.GetTls() == nil {
			return nil, errors.New("protocol HTTP_UPSTREAM_PROTOCOL_H2 needs tls")
		}
		protocols.SetHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	t.Protocols = protocols
	if tc := cc.GetTls(); tc != nil {
		client, err := tlsconf.NewReloadingClient(tlsconf.ClientConfig{
			CAFile: tc.GetCaFile(), CertFile: tc.GetCertFile(), KeyFile: tc.GetKeyFile(), ServerName: tc.GetServerName(),
		})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c.scheme = "https"
		// A new connection verifies against the CA bundle as the file is
		// now (tlsconf reloads it).
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conf := client.Config()
			if conf.ServerName == "" {
				conf.ServerName, _, _ = net.SplitHostPort(addr)
			}
			if protocols.HTTP2() {
				conf.NextProtos = []string{"h2"}
			} else {
				conf.NextProtos = []string{"http/1.1"}
			}
			d := &tls.Dialer{NetDialer: dialer, Config: conf}
			return d.DialContext(ctx, network, addr)
		}
	}
	c.transport = t
	return c, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Scheme is "https" for a cluster with TLS, else "http".
func (c *Cluster) Scheme() string { return c.scheme }

// Start starts the cluster's health checks, if it has any; Close stops
// them.
func (c *Cluster) Start() {
	if c.health == nil {
		return
	}
	for _, e := range c.endpoints {
		c.done.Add(1)
		go c.probe(e)
	}
}

// Close stops the health checks and closes the idle connections; requests
// in flight finish.
func (c *Cluster) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.done.Wait()
		c.transport.CloseIdleConnections()
	})
}

// Healthy reports how many endpoints are in service.
func (c *Cluster) Healthy() int {
	n := 0
	for _, e := range c.endpoints {
		if e.healthy.Load() {
			n++
		}
	}
	return n
}

func (c *Cluster) probe(e *endpoint) {
	defer c.done.Done()
	h := c.health
	interval := durationOr(h.GetInterval().AsDuration(), DefaultHealthInterval)
	timeout := durationOr(h.GetTimeout().AsDuration(), DefaultHealthTimeout)
	threshold := int(h.GetThreshold())
	if threshold <= 0 {
		threshold = DefaultHealthThreshold
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok := c.check(e, h.GetPath(), timeout)
		switch {
		case ok:
			e.fails, e.passes = 0, e.passes+1
			if !e.healthy.Load() && e.passes >= threshold {
				e.healthy.Store(true)
				c.log.Info("http endpoint healthy", slog.String("endpoint", e.addr))
			}
		default:
			e.passes, e.fails = 0, e.fails+1
			if e.healthy.Load() && e.fails >= threshold {
				e.healthy.Store(false)
				c.log.Warn("http endpoint unhealthy", slog.String("endpoint", e.addr))
			}
		}
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
	}
}

func (c *Cluster) check(e *endpoint, path string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+"://"+e.addr+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "edgegate-health")
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// pick returns the next healthy endpoint not in skip, round robin.
func (c *Cluster) pick(skip []*endpoint) *endpoint {
	n := len(c.endpoints)
	start := int(c.next.Add(1) % uint64(n))
	for i := range n {
		e := c.endpoints[(start+i)%n]
		if e.healthy.Load() && !slices.Contains(skip, e) {
			return e
		}
	}
	return nil
}

// RoundTrip sends req, whose URL's scheme and host it sets, to an
// endpoint. A request that failed before any answer (no connection, a
// reset) is tried on another endpoint when it may be repeated: an
// idempotent method and no body, up to max_attempts in all.
func (c *Cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	var tried []*endpoint // at most max_attempts (≤ 5)
	var last error
	for attempt := 0; attempt < c.attempts; attempt++ {
		e := c.pick(tried)
		if e == nil {
			if last != nil {
				return nil, last
			}
			return nil, fmt.Errorf("http cluster %q: %w", c.name, ErrNoHealthy)
		}
		tried = append(tried, e)
		out := req
		if attempt > 0 {
			out = req.Clone(req.Context())
		}
		out.URL.Scheme, out.URL.Host = c.scheme, e.addr
		resp, err := c.transport.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		last = fmt.Errorf("http cluster %q, endpoint %s: %w", c.name, e.addr, err)
		if !retryable(req) || req.Context().Err() != nil {
			break
		}
	}
	return nil, last
}

// retryable reports whether req may be sent again: an idempotent method
// (RFC 9110 §9.2.2) and no body.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		return false
	}
	return (req.Body == nil || req.Body == http.NoBody) && req.ContentLength <= 0 && req.Header.Get("Upgrade") == ""
}
