// Package upstream is the gateway's side of its upstream clusters, from
// each cluster's configuration. A cluster keeps one grpc-go client
// connection, whose balancer picks the endpoint of every call
// (Cluster.Pick: load balancing, health checks, outlier ejection, the
// static host:port list or dns:/// target); the calls themselves go over
// the gateway's own HTTP/2 client (internal/h2client), one multiplexed
// connection per endpoint (Invoke, NewStream: TLS, keepalive, message
// limits, compression, retries).
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	// The least_request_experimental balancer registers itself.
	_ "google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	// Client-side health checking (healthCheckConfig) registers itself.
	_ "google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/tlsconf"
)

// Cluster is one upstream cluster: its balancer's connection and its
// calls' connections. It is safe for concurrent use.
type Cluster struct {
	name     string
	conn     *grpc.ClientConn
	key      string // what the cluster was dialled from; equal keys can share it
	max      int64
	inFlight atomic.Int64
	outliers *outliers // nil without outlier detection
	picks    *picks    // the balancer's picker, for Pick
	pickID   string    // the cluster's id in the pick balancer's config

	// The routed calls' own transport (call.go, conns.go).
	frames     *conns
	retries    *retries
	scheme     string // http or https
	authority  string // what grpc-go's client sent as :authority
	compressor encoding.Compressor
	maxMsg     int
}

// Report tells the cluster how a call to endpoint ended (outlier
// detection); it does nothing for clusters without it.
func (c *Cluster) Report(endpoint string, code codes.Code) {
	if c.outliers != nil {
		c.outliers.report(endpoint, code)
	}
}

// Ejected lists the endpoints outlier detection has taken out now.
func (c *Cluster) Ejected() []string {
	if c.outliers == nil {
		return nil
	}
	return c.outliers.ejectedNow()
}

func (c *Cluster) close() error {
	if c.outliers != nil {
		c.outliers.close()
	}
	c.picks.close()
	unregister(c.pickID)
	c.frames.close()
	return c.conn.Close()
}

// MaxConcurrent is the cluster's limit of calls in flight; 0: none.
func (c *Cluster) MaxConcurrent() int64 { return c.max }

// AcquireSlot counts a call in flight, or returns false when the cluster
// is at its limit. Every true must be matched by ReleaseSlot.
func (c *Cluster) AcquireSlot() bool {
	n := c.inFlight.Add(1)
	if c.max > 0 && n > c.max {
		c.inFlight.Add(-1)
		return false
	}
	return true
}

// ReleaseSlot ends a call counted by AcquireSlot.
func (c *Cluster) ReleaseSlot() { c.inFlight.Add(-1) }

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Conn returns the cluster's connection.
func (c *Cluster) Conn() *grpc.ClientConn { return c.conn }

// Ready reports whether the cluster has at least one connected endpoint.
func (c *Cluster) Ready() bool { return c.conn.GetState() == connectivity.Ready }

// Pool is the set of clusters of one configuration. It is immutable after
// New and safe for concurrent use; a nil *Pool has no clusters.
type Pool struct {
	clusters map[string]*Cluster
}

// Spec is what a cluster is dialled from: its configuration, and the
// methods (“/pkg.Service/Method”) its retry policy applies to, which the
// gateway derives from the routes and the methods' descriptors.
type Spec struct {
	Config       *configv1.Cluster
	RetryMethods []string
	// Log gets the cluster's events (outlier ejections); nil: slog.Default().
	Log *slog.Logger
}

func (s Spec) key() string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(s.Config)
	return string(b) + "\x00" + strings.Join(s.RetryMethods, ",")
}

// New dials every cluster of specs (connections are made in the
// background) with opts added to each dial. A cluster of reuse (may be nil)
// whose spec is unchanged is shared, connection and all, instead of dialled
// again. It returns an error naming the cluster for a bad TLS file or
// target; nothing new is left open then.
func New(specs []Spec, reuse *Pool, opts ...grpc.DialOption) (*Pool, error) {
	p := &Pool{clusters: make(map[string]*Cluster, len(specs))}
	for i, sp := range specs {
		key := sp.key()
		if reuse != nil {
			if old := reuse.clusters[sp.Config.GetName()]; old != nil && old.key == key {
				p.clusters[old.name] = old
				continue
			}
		}
		c, err := dial(sp, key, opts)
		if err != nil {
			p.CloseExcept(reuse)
			return nil, clusterError(i, sp, err)
		}
		p.clusters[c.name] = c
	}
	return p, nil
}

// Check does what New does for specs, but dials nothing: it reads every
// cluster's TLS files and checks its target and service config, for a
// dry run (edgegate validate).
func Check(specs []Spec, opts ...grpc.DialOption) error {
	for i, sp := range specs {
		conn, _, err := newConn(sp, "", opts)
		if err != nil {
			return clusterError(i, sp, err)
		}
		_ = conn.Close()
	}
	return nil
}

// clusterError is err, of the cluster of specs[i], at its place in the
// configuration: its tls section for a TLS file that does not load.
func clusterError(i int, sp Spec, err error) error {
	path := fmt.Sprintf("clusters[%d]", i)
	if _, ok := errors.AsType[tlsError](err); ok {
		path += ".tls"
	}
	return &config.FieldError{Path: path, Err: fmt.Errorf("cluster %q: %w", sp.Config.GetName(), err)}
}

// tlsError is a cluster's TLS files failing to load.
type tlsError struct{ err error }

func (e tlsError) Error() string { return "tls: " + e.err.Error() }
func (e tlsError) Unwrap() error { return e.err }

// CloseExcept closes the connections of p that keep (may be nil) does not
// share.
func (p *Pool) CloseExcept(keep *Pool) {
	if p == nil {
		return
	}
	for name, c := range p.clusters {
		if keep != nil && keep.clusters[name] == c {
			continue
		}
		_ = c.close()
	}
}

// Get returns the cluster called name, or nil.
func (p *Pool) Get(name string) *Cluster {
	if p == nil {
		return nil
	}
	return p.clusters[name]
}

// Clusters returns every cluster, in no particular order.
func (p *Pool) Clusters() []*Cluster {
	if p == nil {
		return nil
	}
	out := make([]*Cluster, 0, len(p.clusters))
	for _, c := range p.clusters {
		out = append(out, c)
	}
	return out
}

// Close closes every connection; calls still open on them fail. A nil
// pool (a dry run's) has none.
func (p *Pool) Close() error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, c := range p.clusters {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}

// serviceConfig is the gRPC service config of a cluster: load balancing,
// health checks, retries of its safe methods and the retry budget. With a
// pickID (the cluster's in the pick balancer's registry) the configured
// balancer is the child of the pick balancer, for Cluster.Pick.
func serviceConfig(sp Spec, pickID string) string {
	cc := sp.Config
	sc := map[string]any{}
	var lb map[string]any
	switch cc.GetLoadBalancing() {
	case configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST:
		lb = map[string]any{"pick_first": map[string]any{}}
	case configv1.LoadBalancing_LOAD_BALANCING_LEAST_REQUEST:
		lb = map[string]any{"least_request_experimental": map[string]any{"choiceCount": 2}}
	default:
		lb = map[string]any{"round_robin": map[string]any{}}
	}
	if pickID != "" {
		lb = pickLBConfig(pickID, lb)
	}
	sc["loadBalancingConfig"] = []any{lb}
	if hc := cc.GetHealthCheck(); hc != nil {
		sc["healthCheckConfig"] = map[string]any{"serviceName": hc.GetServiceName()}
	}
	if rp := cc.GetRetry(); rp != nil && len(sp.RetryMethods) > 0 {
		var names []any
		for _, m := range sp.RetryMethods {
			svc, meth, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
			names = append(names, map[string]any{"service": svc, "method": meth})
		}
		sc["methodConfig"] = []any{map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          rp.GetMaxAttempts(),
				"initialBackoff":       "0.02s",
				"maxBackoff":           "0.5s",
				"backoffMultiplier":    2,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}}
		sc["retryThrottling"] = map[string]any{"maxTokens": 10, "tokenRatio": rp.GetBudgetRatio()}
	}
	b, _ := json.Marshal(sc)
	return string(b)
}

// Dial makes a connection of its own to the cluster of sp, as New would
// (same target, TLS, balancing and limits), for a caller that talks to
// the cluster apart from its routed calls (server reflection). The caller
// closes it.
func Dial(sp Spec, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	conn, _, err := newConn(sp, "", opts)
	if err != nil {
		return nil, err
	}
	conn.Connect()
	return conn, nil
}

// ServiceConfig returns the service config JSON a spec is dialled with,
// its balancer as configured (a cluster of New runs it as the child of
// the balancer that serves Cluster.Pick).
func ServiceConfig(sp Spec) string { return serviceConfig(sp, "") }

func dial(sp Spec, key string, extra []grpc.DialOption) (*Cluster, error) {
	picks := newPicks()
	pickID := register(picks)
	conn, r, err := newConn(sp, pickID, extra)
	if err != nil {
		unregister(pickID)
		return nil, err
	}
	cc := sp.Config
	c := &Cluster{name: cc.GetName(), conn: conn, key: key, max: int64(cc.GetMaxConcurrentCalls()), picks: picks, pickID: pickID}
	if err := c.initFrames(sp); err != nil {
		_ = conn.Close()
		unregister(pickID)
		return nil, err
	}
	drop := c.frames.drop
	picks.gone.Store(&drop)
	conn.Connect()
	if od := cc.GetOutlierDetection(); od != nil && r != nil {
		c.outliers = newOutliers(r, cc.GetEndpoints(), od)
		if sp.Log != nil {
			c.outliers.log = sp.Log.With(slog.String("cluster", cc.GetName()))
		}
	}
	return c, nil
}

// callOptions are the call options of every call to the cluster of cc:
// its message limits and the compression of what the gateway sends it.
func callOptions(cc *configv1.Cluster) []grpc.CallOption {
	maxMsg := int(cc.GetMaxMessageBytes())
	opts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)}
	if c := cc.GetCompression(); c != "" {
		opts = append(opts, grpc.UseCompressor(c))
	}
	return opts
}

// newConn makes the client connection of sp, idle (nothing is dialled
// until Connect), and the resolver of its static endpoints (nil for a
// dns:/// target). A pickID ("": none) runs its balancer under the pick
// balancer, for the cluster registered with that id.
func newConn(sp Spec, pickID string, extra []grpc.DialOption) (*grpc.ClientConn, *manual.Resolver, error) {
	cc := sp.Config
	creds, err := transportCredentials(cc.GetTls())
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig(sp, pickID)),
		grpc.WithDefaultCallOptions(callOptions(cc)...),
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
	var r *manual.Resolver
	if eps := cc.GetEndpoints(); len(eps) == 1 && strings.HasPrefix(eps[0], "dns:///") {
		target = eps[0]
	} else {
		// Static endpoints: a resolver of this cluster's own, so that no
		// global registration is needed and every endpoint is balanced over.
		r = manual.NewBuilderWithScheme("edgegate")
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
		return nil, nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, r, nil
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
	tc, err := tlsconf.NewReloadingClient(tlsconf.ClientConfig{
		CAFile:     t.GetCaFile(),
		CertFile:   t.GetCertFile(),
		KeyFile:    t.GetKeyFile(),
		ServerName: t.GetServerName(),
	})
	if err != nil {
		return nil, tlsError{err}
	}
	return tlsCreds{client: tc, info: credentials.NewTLS(tc.Config()).Info()}, nil
}

// tlsCreds are grpc-go's TLS credentials made afresh for each connection
// from the cluster's tlsconf.Client, so that a connection made after the CA
// bundle file was replaced verifies against the new bundle, with no reload
// or restart (the client certificate is re-read by the Client itself).
type tlsCreds struct {
	client *tlsconf.Client
	info   credentials.ProtocolInfo
}

func (c tlsCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.client.Config()).ClientHandshake(ctx, authority, conn)
}

func (tlsCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("upstream: client TLS credentials cannot serve")
}

func (c tlsCreds) Info() credentials.ProtocolInfo          { return c.info }
func (c tlsCreds) Clone() credentials.TransportCredentials { return c }
func (tlsCreds) OverrideServerName(string) error {
	return errors.New("upstream: set clusters[].tls.server_name instead")
}
