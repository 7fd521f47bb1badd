// Package upstream keeps one gRPC client connection per upstream cluster:
// its endpoints (static host:port lists or a dns:/// target), load
// balancing, TLS, message size limits and keepalive, all from the cluster's
// configuration.
package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// Cluster is one upstream cluster and its connection. It is safe for
// concurrent use.
type Cluster struct {
	name string
	conn *grpc.ClientConn
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Conn returns the cluster's connection.
func (c *Cluster) Conn() *grpc.ClientConn { return c.conn }

// Ready reports whether the cluster has at least one connected endpoint.
func (c *Cluster) Ready() bool { return c.conn.GetState() == connectivity.Ready }

// Pool is the set of clusters of one configuration. It is immutable after
// New and safe for concurrent use.
type Pool struct {
	clusters map[string]*Cluster
}

// New dials every cluster of cfgs (lazily: connections are made in the
// background) with opts added to each dial. It returns an error naming the
// cluster for a bad TLS file or target; nothing is left open then.
func New(cfgs []*configv1.Cluster, opts ...grpc.DialOption) (*Pool, error) {
	p := &Pool{clusters: make(map[string]*Cluster, len(cfgs))}
	for i, cc := range cfgs {
		c, err := dial(cc, opts)
		if err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("clusters[%d] %q: %w", i, cc.GetName(), err)
		}
		p.clusters[cc.GetName()] = c
	}
	return p, nil
}

// Get returns the cluster called name, or nil.
func (p *Pool) Get(name string) *Cluster { return p.clusters[name] }

// Clusters returns every cluster, in no particular order.
func (p *Pool) Clusters() []*Cluster {
	out := make([]*Cluster, 0, len(p.clusters))
	for _, c := range p.clusters {
		out = append(out, c)
	}
	return out
}

// Close closes every connection; calls still open on them fail.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.clusters {
		errs = append(errs, c.conn.Close())
	}
	return errors.Join(errs...)
}

func dial(cc *configv1.Cluster, extra []grpc.DialOption) (*Cluster, error) {
	creds, err := transportCredentials(cc.GetTls())
	if err != nil {
		return nil, err
	}
	lb := "round_robin"
	if cc.GetLoadBalancing() == configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST {
		lb = "pick_first"
	}
	maxMsg := int(cc.GetMaxMessageBytes())
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, lb)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  250 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   5 * time.Second,
			},
			MinConnectTimeout: cc.GetConnectTimeout().AsDuration(),
		}),
		grpc.WithUserAgent("edgegate"),
		// Never idle: the connection state is the cluster's health
		// (readiness, metrics), and the first call after a lull should not
		// wait for a reconnect.
		grpc.WithIdleTimeout(0),
	}
	if ka := cc.GetKeepalive(); ka != nil {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                ka.GetTime().AsDuration(),
			Timeout:             ka.GetTimeout().AsDuration(),
			PermitWithoutStream: ka.GetPermitWithoutStream(),
		}))
	}
	target := ""
	if eps := cc.GetEndpoints(); len(eps) == 1 && strings.HasPrefix(eps[0], "dns:///") {
		target = eps[0]
	} else {
		// Static endpoints: a resolver of this cluster's own, so that no
		// global registration is needed and every endpoint is balanced over.
		r := manual.NewBuilderWithScheme("edgegate")
		addrs := make([]resolver.Address, len(eps))
		for i, ep := range eps {
			addrs[i] = resolver.Address{Addr: ep}
		}
		r.InitialState(resolver.State{Endpoints: endpointsOf(addrs)})
		opts = append(opts, grpc.WithResolvers(r))
		target = "edgegate:///" + cc.GetName()
	}
	opts = append(opts, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	conn.Connect()
	return &Cluster{name: cc.GetName(), conn: conn}, nil
}

func endpointsOf(addrs []resolver.Address) []resolver.Endpoint {
	out := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = resolver.Endpoint{Addresses: []resolver.Address{a}}
	}
	return out
}

func transportCredentials(t *configv1.UpstreamTLS) (credentials.TransportCredentials, error) {
	if t == nil {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.GetServerName()}
	if f := t.GetCaFile(); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", f)
		}
		tc.RootCAs = pool
	}
	return credentials.NewTLS(tc), nil
}
