package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	// Compressed calls: the gzip and zstd compressors register themselves.
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	"github.com/edgegate/edgegate/frontdoor/httproute"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/internal/callinfo"
	_ "github.com/edgegate/edgegate/internal/grpczstd"
	"github.com/edgegate/edgegate/internal/version"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/policy"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/schema/openapi"
	"github.com/edgegate/edgegate/tlsconf"
	"github.com/edgegate/edgegate/upstream"
)

// New builds a gateway from cfg, a configuration loaded by package config.
// Nothing listens until Listen; upstream connections are made in the
// background. It returns an error naming the part of cfg that is wrong
// (a *config.FieldError where a field is; config.Place gives it its line).
func New(cfg *configv1.Config, opts ...Option) (*Gateway, error) {
	o := &options{log: slog.Default()}
	for _, opt := range opts {
		opt(o)
	}
	if !o.accessSet {
		o.accessLog = o.log
		if cfg.GetLogging().GetDisableAccessLog() {
			o.accessLog = nil
		}
	}
	g := &Gateway{
		cfg:       cfg,
		log:       o.log,
		health:    health.NewServer(),
		accessLog: accesslog.New(o.accessLog, cfg.GetLogging().GetAccessLogSampleRatio()),
		metrics:   metrics.New(version.Version),
		reloader:  o.reload,
		runtime:   o.runtime,
	}
	g.accessLog.LimitCancelled(int(cfg.GetLogging().GetAccessLogCancelledPerSecond()), g.metrics.AccessLogDropped)
	g.current.Store(cfg)
	g.life, g.stopLife = context.WithCancel(context.Background())
	g.schemaDirty = make(chan struct{}, 1)
	g.compiled = schema.CompiledFiles()
	if o.compSet {
		g.compiled = o.compiled
	}
	if err := g.build(cfg, o); err != nil {
		g.closeAll()
		return nil, err
	}
	if !o.dryRun {
		if g.runtime {
			applyRuntime(cfg, g.log)
		}
		go g.followSchema()
	}
	return g, nil
}

// Check builds the gateway of cfg as New does, in a dry run, and releases
// it: certificates and keys, JWKS files, CEL rules, cluster targets and TLS
// files, every policy's configuration. It serves nothing, starts no
// refresher, and reaches no network (a JWKS URL is not fetched, no
// upstream is dialled). A configuration that passes builds in New, except
// for what only the network can tell.
func Check(cfg *configv1.Config, opts ...Option) error {
	g, err := New(cfg, append(opts, withDryRun())...)
	if err != nil {
		return err
	}
	g.closeAll()
	return nil
}

// Describe builds the gateway of cfg in a dry run, as Check does, and
// returns its route table and the registry of the APIs it routes. Unlike
// Check it reads the clusters that serve their descriptors by server
// reflection, once each (in parallel, each within its timeout); one that
// cannot be read is logged and left out.
func Describe(cfg *configv1.Config, opts ...Option) (*router.Table, *schema.Registry, error) {
	g, err := New(cfg, append(opts, withDryRun(), withReflection())...)
	if err != nil {
		return nil, nil, err
	}
	defer g.closeAll()
	snap := g.proxy.Snapshot()
	return snap.Table, snap.Schema, nil
}

// build builds every part of the gateway from cfg; on an error, what it
// built is released by closeAll.
func (g *Gateway) build(cfg *configv1.Config, o *options) error {
	var errs []error
	for i, l := range cfg.GetListeners() {
		var ts *tlsconf.Server
		if t := l.GetTls(); t != nil {
			var err error
			if ts, err = newTLSServer(t, g.log); err != nil {
				errs = append(errs, &config.FieldError{Path: fmt.Sprintf("listeners[%d].tls", i), Err: err})
			}
		}
		g.tlsSrv = append(g.tlsSrv, ts)
	}
	trusted, err := trustedProxies(cfg)
	errs = append(errs, err)
	_, err = consoleListener(cfg)
	errs = append(errs, err)
	var tp trace.TracerProvider
	switch {
	case o.tpSet:
		tp = o.tp
	case cfg.GetTracing() != nil && !o.dryRun:
		var err error
		if g.tp, err = tracing.NewProvider(context.Background(), cfg.GetTracing()); err != nil {
			errs = append(errs, &config.FieldError{Path: "tracing", Err: err})
		} else {
			tp = g.tp
		}
	}
	g.policies, err = newPolicies(cfg, policy.Deps{Log: g.log, Metrics: g.metrics, DryRun: o.dryRun})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// The clusters read by server reflection are read before the schema
	// is built (not in a dry run: nothing is dialled).
	failed := o.dryRun || errors.Join(errs...) != nil
	if !failed || (o.reflection && errors.Join(errs...) == nil) {
		ws, err := g.prepareWatches(cfg)
		if err != nil {
			return err
		}
		g.adoptWatches(ws)
	}
	// The snapshot is built even when the parts above failed, so that
	// every error of the configuration is reported at once.
	snap, err := g.buildSnapshot(cfg, nil, failed, g.watch.sets())
	if err := errors.Join(append(errs, err)...); err != nil {
		if snap != nil {
			snap.Policies.Close()
		}
		return err
	}
	fi := cfg.GetForwardedIdentity()
	identity := authint.Forward(fi.GetPrincipalKey(), fi.GetClaimsKey())
	tracer := tracing.New(tp)
	popts := router.ProxyOptions{
		Log:          g.log,
		UpstreamDone: g.metrics.UpstreamDone,
		Drop:         []string{fi.GetPrincipalKey(), fi.GetClaimsKey()},
		Inject: func(ctx context.Context, md metadata.MD) {
			if tracer != nil {
				tracing.Inject(ctx, md)
			}
			identity(ctx, md)
		},
	}
	g.proxy = router.NewProxy(snap, popts)
	g.metrics.SetConfig(config.Hash(cfg))
	g.metrics.SetHealth(g.clusterHealth)
	unary, stream := chain(deps{
		log: g.log, proxy: g.proxy, accessLog: g.accessLog, tracer: tracer, metrics: g.metrics,
		strip: popts.Drop, maxHeader: int(cfg.GetLimits().GetMaxHeaderListBytes()), trusted: trusted, policies: g.policies,
	}, o)
	lim := cfg.GetLimits()
	g.server = grpc.NewServer(append(serverOptions(lim),
		grpc.Creds(frontdoor.Creds{}),
		grpc.ForceServerCodecV2(router.NewCodec()),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.UnknownServiceHandler(g.proxy.Handler()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)...)
	g.core = router.NewInProcess(chainStream(stream), g.proxy.Handler())
	g.httpCore = router.NewInProcess(chainStream(stream), httproute.Handler)
	g.inject, g.drop = popts.Inject, popts.Drop
	// The gateway's own services, on grpc.Server and on the native door
	// of the listeners that use the relay.
	own := &frontdoor.Services{}
	g.native = &frontdoor.NativeDoor{
		Stream: chainStream(stream), Unary: chainUnary(unary), Handler: g.proxy.Handler(), Services: own,
		MaxMessageBytes: int(lim.GetMaxMessageBytes()),
		IsUnary:         func(m string) bool { return g.proxy.Snapshot().Schema.IsUnary(m) },
	}
	for _, r := range []grpc.ServiceRegistrar{g.server, own} {
		healthpb.RegisterHealthServer(r, g.health)
		if !cfg.GetDisableReflection() {
			ro := reflection.ServerOptions{
				Services:           &reflectionServices{server: g.server, proxy: g.proxy},
				DescriptorResolver: schemaResolver{g.proxy},
			}
			reflectionv1.RegisterServerReflectionServer(r, reflection.NewServerV1(ro))
			reflectionv1alpha.RegisterServerReflectionServer(r, reflection.NewServer(ro))
		}
	}
	d, err := g.buildDoors(cfg, snap)
	if err != nil {
		return err
	}
	g.httpDoors.Store(d)
	if g.edge, err = g.buildEdge(cfg); err != nil {
		return err
	}
	g.metrics.KnowMethods(g.knownMethods(snap))
	g.rest = restDispatch{g, callinfo.RecordHTTPForwarding(restCurrent{g})}
	g.grpcWeb = grpcweb.New(grpcweb.Options{
		Core:            g.core,
		Server:          g.server,
		IsUnary:         func(m string) bool { return g.proxy.Snapshot().Schema.IsUnary(m) },
		MaxBodyBytes:    int64(cfg.GetHttp().GetMaxBodyBytes()),
		MaxMessageBytes: int(lim.GetMaxMessageBytes()),
		ForwardHeaders:  append(authint.Headers(cfg), cfg.GetHttp().GetGrpcWeb().GetForwardRequestHeaders()...),
		Log:             g.log,
	})
	return nil
}

// trustedProxies are the prefixes of cfg's trusted_proxies.
func trustedProxies(cfg *configv1.Config) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, t := range cfg.GetTrustedProxies() {
		p, err := config.ParsePrefix(t)
		if err != nil {
			return nil, &config.FieldError{Path: fmt.Sprintf("trusted_proxies[%d]", i), Err: err}
		}
		out = append(out, p)
	}
	return out, nil
}

// streamWorkers is the number of long-lived goroutines that run native
// gRPC calls (grpc.NumStreamWorkers); a call that finds them all busy gets
// a goroutine of its own, as without workers. A worker's stack stays grown
// across calls, where a new goroutine's grows (and is copied) on every
// call through the chain: 11 % of a chained call's CPU in the bench
// profile (go run ./bench/harness -profile).
const streamWorkers = 64

// serverOptions are the edge limits of lim, a loaded config's limits.
func serverOptions(lim *configv1.ServerLimits) []grpc.ServerOption {
	ka := lim.GetKeepalive()
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(lim.GetMaxConcurrentStreams()),
		// Header lists up to the block limit reach the chain, which
		// refuses one over max_header_list_bytes on its own stream.
		grpc.MaxHeaderListSize(lim.GetMaxHeaderBlockBytes()),
		grpc.MaxRecvMsgSize(int(lim.GetMaxMessageBytes())),
		grpc.MaxSendMsgSize(int(lim.GetMaxMessageBytes())),
		grpc.ConnectionTimeout(lim.GetConnectionTimeout().AsDuration()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             ka.GetMinPingInterval().AsDuration(),
			PermitWithoutStream: ka.GetPermitWithoutStream(),
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     ka.GetMaxConnectionIdle().AsDuration(),
			MaxConnectionAge:      ka.GetMaxConnectionAge().AsDuration(),
			MaxConnectionAgeGrace: ka.GetMaxConnectionAgeGrace().AsDuration(),
			Time:                  ka.GetTime().AsDuration(),
			Timeout:               ka.GetTimeout().AsDuration(),
		}),
	}
}

// newTLSServer builds a listener's TLS termination (certificates by SNI,
// mutual TLS, reload from disk).
func newTLSServer(t *configv1.ListenerTLS, log *slog.Logger) (*tlsconf.Server, error) {
	sc := tlsconf.ServerConfig{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientCAFile: t.GetClientCaFile(),
		CRLFile:      t.GetCrlFile(),
	}
	if t.GetMinVersion() == configv1.TLSVersion_TLS_VERSION_1_3 {
		sc.MinVersion = tls.VersionTLS13
	}
	switch t.GetClientAuth() {
	case configv1.ClientAuth_CLIENT_AUTH_REQUEST:
		sc.ClientAuth = tlsconf.ClientAuthRequest
	case configv1.ClientAuth_CLIENT_AUTH_REQUIRE:
		sc.ClientAuth = tlsconf.ClientAuthRequire
	}
	for _, c := range t.GetCertificates() {
		sc.Certs = append(sc.Certs, tlsconf.CertFiles{CertFile: c.GetCertFile(), KeyFile: c.GetKeyFile()})
	}
	return tlsconf.NewServer(sc, tlsconf.WithLogger(log))
}

// buildSnapshot compiles the reloadable part of cfg (policies, routes,
// clusters, the schema with the discovered descriptor sets) into a routing
// snapshot, sharing the clusters of reuse (may be nil) whose settings did
// not change. In a dry run the clusters are checked, not dialled.
func (g *Gateway) buildSnapshot(cfg *configv1.Config, reuse *upstream.Pool, dryRun bool, discovered []schema.FileSet) (*router.Snapshot, error) {
	b := policy.NewBuild(cfg, g.log, dryRun)
	var errs []error
	for _, p := range g.policies {
		errs = append(errs, p.Compile(b))
	}
	table, err := router.Compile(cfg, b)
	errs = append(errs, err)
	var pool *upstream.Pool
	var reg *schema.Registry
	if table != nil {
		reg, err = g.buildSchema(cfg, table, discovered)
		errs = append(errs, err)
		if reg != nil {
			errs = append(errs, g.buildComposites(cfg, table, reg))
		}
		retry := retryMethods(cfg, table, reg)
		specs := make([]upstream.Spec, len(cfg.GetClusters()))
		for i, c := range cfg.GetClusters() {
			specs[i] = upstream.Spec{Config: c, RetryMethods: retry[c.GetName()], Log: g.log}
		}
		if dryRun || errors.Join(errs...) != nil {
			// Checked, not dialled: in a dry run, or when the snapshot
			// fails anyway (its other errors are reported with these).
			errs = append(errs, upstream.Check(specs))
		} else if pool, err = upstream.New(specs, reuse); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		b.Close()
		return nil, err
	}
	return &router.Snapshot{Table: table, Pool: pool, Schema: reg, Policies: b}, nil
}

// retryMethods lists, per cluster with a retry policy, the methods its
// retries apply to: the schema's routed methods of the cluster that are
// marked NO_SIDE_EFFECTS or IDEMPOTENT and take one request message, and
// the methods the policy names.
func retryMethods(cfg *configv1.Config, table *router.Table, reg *schema.Registry) map[string][]string {
	policy := map[string]*configv1.RetryPolicy{}
	out := map[string][]string{}
	for _, c := range cfg.GetClusters() {
		if c.GetRetry() != nil {
			policy[c.GetName()] = c.GetRetry()
			for _, m := range c.GetRetry().GetMethods() {
				out[c.GetName()] = append(out[c.GetName()], "/"+strings.TrimPrefix(m, "/"))
			}
		}
	}
	if len(policy) == 0 || reg == nil {
		return out
	}
	for _, s := range reg.Services() {
		for _, m := range s.Methods {
			rt := table.Lookup(m.Full)
			if rt == nil || policy[rt.Cluster] == nil || !m.Safe() {
				continue
			}
			out[rt.Cluster] = append(out[rt.Cluster], m.Full)
		}
	}
	for k, v := range out {
		slices.Sort(v)
		out[k] = slices.Compact(v)
	}
	return out
}

// buildDoors builds the HTTP doors of snap, a snapshot of cfg: its REST
// handler and its OpenAPI document.
func (g *Gateway) buildDoors(cfg *configv1.Config, snap *router.Snapshot) (*httpDoors, error) {
	rc := cfg.GetHttp().GetRest()
	rest, err := frontdoor.NewREST(rc, g.core, snap.Schema, authint.Headers(cfg)...)
	if err != nil {
		return nil, &config.FieldError{Path: "schema", Err: err}
	}
	d := &httpDoors{rest: rest}
	if d.edge, err = g.newEdgeRoutes(cfg, snap); err != nil {
		return nil, err
	}
	if d.edge != nil {
		snap.Policies.OnClose(d.edge.close)
	}
	if cfg.GetHttp().GetOpenapiPath() != "" {
		if d.openapi, err = OpenAPI(cfg, snap.Schema); err != nil {
			return nil, &config.FieldError{Path: "schema", Err: err}
		}
	}
	return d, nil
}

// OpenAPI is the OpenAPI 3.1 document of the REST bindings of reg, the
// schema of cfg, as cfg's REST door writes JSON.
func OpenAPI(cfg *configv1.Config, reg *schema.Registry) ([]byte, error) {
	rc := cfg.GetHttp().GetRest()
	return openapi.Generate(reg, openapi.Options{
		Title:             "edgegate",
		Version:           version.Version,
		UseProtoNames:     rc.GetUseProtoNames(),
		EnumsAsNumbers:    rc.GetEnumsAsNumbers(),
		EmitUnpopulated:   rc.GetEmitUnpopulated(),
		StreamContentType: "application/json",
	})
}
