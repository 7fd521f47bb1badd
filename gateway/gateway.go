package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	// Compressed calls: the gzip compressor registers itself.
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/edgegate/edgegate/admin"
	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/gen/openapi"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/ipfilter"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/internal/version"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/tlsconf"
)

// Gateway is a running (or ready to run) edgegate. Its methods are safe for
// concurrent use.
type Gateway struct {
	cfg       *configv1.Config
	log       *slog.Logger
	proxy     *router.Proxy
	server    *grpc.Server
	health    *health.Server
	rest      http.Handler
	grpcWeb   frontdoor.GRPCWeb
	accessLog *accesslog.Logger
	metrics   *metrics.Metrics
	tp        *sdktrace.TracerProvider // built from the config; nil otherwise

	mu        sync.Mutex
	listeners []net.Listener
	doors     []*frontdoor.Server // per listener; nil for a dedicated gRPC port
	admin     *http.Server
	adminLn   net.Listener
	serving   bool
	draining  bool

	stores   *stores
	tlsSrv   []*tlsconf.Server               // per listener; nil for plaintext
	reloadMu sync.Mutex                      // one reload at a time
	reloader func() error                    // POST /reload; nil: none
	runtime  bool                            // WithRuntime
	current  atomic.Pointer[configv1.Config] // the configuration in force
}

// New builds a gateway from cfg, a configuration loaded by package config.
// Nothing listens until Listen; upstream connections are made in the
// background. It returns an error naming the part of cfg that is wrong.
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
	}
	g.current.Store(cfg)
	g.reloader = o.reload
	g.runtime = o.runtime
	if g.runtime {
		applyRuntime(cfg, g.log)
	}
	g.stores = newStores(cfg)
	var err error
	var tp trace.TracerProvider
	if o.tpSet {
		tp = o.tp
	} else if cfg.GetTracing() != nil {
		if g.tp, err = tracing.NewProvider(context.Background(), cfg.GetTracing()); err != nil {
			return nil, err
		}
		tp = g.tp
	}
	tracer := tracing.New(tp)
	for i, l := range cfg.GetListeners() {
		var ts *tlsconf.Server
		if t := l.GetTls(); t != nil {
			if ts, err = newTLSServer(t, o.log); err != nil {
				g.closeAll()
				return nil, fmt.Errorf("listeners[%d].tls: %w", i, err)
			}
		}
		g.tlsSrv = append(g.tlsSrv, ts)
	}
	snap, err := g.buildSnapshot(cfg, nil)
	if err != nil {
		g.closeAll()
		return nil, err
	}
	fi := cfg.GetForwardedIdentity()
	identity := authint.Forward(fi.GetPrincipalKey(), fi.GetClaimsKey())
	popts := router.ProxyOptions{
		Log:          o.log,
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
	knowRoutes(g.metrics, snap.Table)
	g.metrics.SetConfig(config.Hash(cfg))
	g.metrics.SetHealth(g.clusterHealth)
	ipGlobal, err := ipfilter.New(cfg.GetIpFilter().GetAllow(), cfg.GetIpFilter().GetBlock(), config.ParsePrefix)
	if err != nil {
		g.closeAll()
		return nil, fmt.Errorf("ip_filter: %w", err)
	}
	var trusted []netip.Prefix
	for _, t := range cfg.GetTrustedProxies() {
		p, err := config.ParsePrefix(t)
		if err != nil {
			g.closeAll()
			return nil, fmt.Errorf("trusted_proxies: %w", err)
		}
		trusted = append(trusted, p)
	}
	unary, stream := chain(deps{
		log: o.log, proxy: g.proxy, accessLog: g.accessLog, tracer: tracer, metrics: g.metrics,
		strip: popts.Drop, ipGlobal: ipGlobal, trusted: trusted, tls: frontdoor.TLSState,
	}, o)
	g.server = grpc.NewServer(append(serverOptions(cfg.GetLimits()),
		grpc.Creds(frontdoor.Creds{}),
		grpc.ForceServerCodecV2(router.NewCodec()),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.UnknownServiceHandler(g.proxy.Handler()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)...)
	inProcess := router.NewInProcess(chainStream(stream), g.proxy.Handler(), int(cfg.GetLimits().GetMaxMessageBytes()))
	g.rest, err = frontdoor.NewREST(cfg.GetHttp().GetRest(), inProcess, authHeaders(cfg)...)
	if err != nil {
		g.closeAll()
		return nil, err
	}
	healthpb.RegisterHealthServer(g.server, g.health)
	if !cfg.GetDisableReflection() {
		ro := reflection.ServerOptions{Services: &reflectionServices{server: g.server, proxy: g.proxy}}
		reflectionv1.RegisterServerReflectionServer(g.server, reflection.NewServerV1(ro))
		reflectionv1alpha.RegisterServerReflectionServer(g.server, reflection.NewServer(ro))
	}
	g.grpcWeb = newGRPCWebDoor(g.server, inProcess)
	return g, nil
}

// streamWorkers is the number of long-lived goroutines that run native
// gRPC calls (grpc.NumStreamWorkers); a call that finds them all busy gets
// a goroutine of its own, as without workers. A worker's stack stays grown
// across calls, where a new goroutine's grows (and is copied) on every
// call through the chain: 11 % of a chained call's CPU in the bench
// profile (go run ./bench/harness -profile).
const streamWorkers = 64

// grpcWebDoor serves the gRPC-Web door. Calls to the gateway's own
// services (health, reflection) go through improbable-eng's translation to
// its grpc.Server; every proxied call goes to the in-process core, which
// speaks gRPC-Web itself: no grpc.Server.ServeHTTP transport and no
// translation of headers and trailers (BenchmarkGRPCWebToCore).
type grpcWebDoor struct {
	frontdoor.GRPCWeb // improbable-eng's, in front of the grpc.Server
	own               map[string]bool
	core              http.Handler
}

func newGRPCWebDoor(s *grpc.Server, core http.Handler) grpcWebDoor {
	own := make(map[string]bool)
	for name := range s.GetServiceInfo() {
		own[name] = true
	}
	return grpcWebDoor{GRPCWeb: frontdoor.NewGRPCWeb(s), own: own, core: core}
}

func (d grpcWebDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if svc, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); d.own[svc] {
		d.GRPCWeb.ServeHTTP(w, r)
		return
	}
	d.core.ServeHTTP(w, r)
}

// serverOptions are the edge limits of lim, a loaded config's limits.
func serverOptions(lim *configv1.ServerLimits) []grpc.ServerOption {
	ka := lim.GetKeepalive()
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(lim.GetMaxConcurrentStreams()),
		grpc.MaxHeaderListSize(lim.GetMaxHeaderListBytes()),
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

// Listen binds every listener of the configuration. On an error nothing is
// left bound.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.listeners) > 0 {
		return errors.New("gateway: already listening")
	}
	for i, l := range g.cfg.GetListeners() {
		ln, err := net.Listen("tcp", l.GetAddress())
		if err != nil {
			for _, prev := range g.listeners {
				_ = prev.Close()
			}
			g.listeners = nil
			return fmt.Errorf("listeners[%d] %q: %w", i, l.GetName(), err)
		}
		d := g.door(l, g.tlsSrv[i])
		if d == nil && g.tlsSrv[i] != nil {
			ln = tls.NewListener(ln, g.tlsSrv[i].TLSConfig())
		}
		g.listeners = append(g.listeners, ln)
		g.doors = append(g.doors, d)
	}
	if a := g.cfg.GetAdmin(); !a.GetDisable() {
		ln, err := net.Listen("tcp", a.GetAddress())
		if err != nil {
			for _, prev := range g.listeners {
				_ = prev.Close()
			}
			g.listeners, g.doors = nil, nil
			return fmt.Errorf("admin.address: %w", err)
		}
		g.adminLn = ln
		g.admin = &http.Server{
			Handler: admin.Handler(admin.Options{
				Registry: g.metrics.Registry,
				Ready:    g.Ready,
				Routes:   g.routesJSON,
				Config:   func() proto.Message { return g.current.Load() },
				Reload:   g.reloader,
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
	}
	return nil
}

// AdminAddr returns the admin server's bound address, or nil when it is
// disabled or not bound yet.
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

// clusterHealth reports, per cluster, whether it has a connected endpoint.
func (g *Gateway) clusterHealth() map[string]bool {
	out := map[string]bool{}
	for _, c := range g.proxy.Snapshot().Pool.Clusters() {
		out[c.Name()] = c.Ready()
	}
	return out
}

// Ready reports whether the gateway should get traffic: it serves, is not
// draining, and every cluster not marked optional has a connected
// endpoint. When not, it says why.
func (g *Gateway) Ready() (bool, string) {
	g.mu.Lock()
	serving, draining := g.serving, g.draining
	g.mu.Unlock()
	switch {
	case draining:
		return false, "draining"
	case !serving:
		return false, "not serving yet"
	}
	health := g.clusterHealth()
	var down []string
	for _, c := range g.current.Load().GetClusters() {
		if !c.GetOptional() && !health[c.GetName()] {
			down = append(down, c.GetName())
		}
	}
	if len(down) > 0 {
		slices.Sort(down)
		return false, "no healthy endpoint in cluster(s) " + strings.Join(down, ", ")
	}
	return true, ""
}

type routeJSON struct {
	Name             string `json:"name"`
	Match            string `json:"match"`
	Cluster          string `json:"cluster"`
	Timeout          string `json:"timeout,omitempty"`
	DisableAccessLog bool   `json:"disable_access_log,omitempty"`
}

type restRouteJSON struct {
	HTTP    string `json:"http"`
	Path    string `json:"path"`
	Method  string `json:"method"`
	Cluster string `json:"cluster,omitempty"`
}

// routesJSON is the route table and the REST bindings, for /routes.
func (g *Gateway) routesJSON() any {
	t := g.proxy.Snapshot().Table
	out := struct {
		Routes []routeJSON     `json:"routes"`
		REST   []restRouteJSON `json:"rest"`
	}{Routes: []routeJSON{}, REST: []restRouteJSON{}}
	for _, r := range t.Routes() {
		rj := routeJSON{Name: r.Name, Match: r.Match(), Cluster: r.Cluster, DisableAccessLog: r.DisableAccessLog}
		if r.Timeout > 0 {
			rj.Timeout = r.Timeout.String()
		}
		out.Routes = append(out.Routes, rj)
	}
	for _, hr := range frontdoor.RESTRoutes() {
		rr := restRouteJSON{HTTP: hr.Verb, Path: hr.Path, Method: hr.FullMethod}
		if r := t.Lookup(hr.FullMethod); r != nil {
			rr.Cluster = r.Cluster
		}
		out.REST = append(out.REST, rr)
	}
	return out
}

// door returns the server of a listener that shares its port between
// doors, or nil for a dedicated native gRPC port.
func (g *Gateway) door(l *configv1.Listener, ts *tlsconf.Server) *frontdoor.Server {
	protos := map[configv1.Protocol]bool{}
	for _, p := range l.GetProtocols() {
		protos[p] = true
	}
	if len(protos) == 1 && protos[configv1.Protocol_PROTOCOL_GRPC] {
		return nil
	}
	hc := g.cfg.GetHttp()
	lim := g.cfg.GetLimits()
	opts := frontdoor.HTTPOptions{
		CORS:         frontdoor.NewCORS(hc.GetCors()),
		MaxBodyBytes: int64(hc.GetMaxBodyBytes()),
		AccessLog:    g.accessLog,
		MaxInFlight:  int64(hc.GetMaxInFlight()),
	}
	if protos[configv1.Protocol_PROTOCOL_REST] {
		opts.REST = g.rest
		if !hc.GetDisableOpenapi() {
			opts.OpenAPIPath, opts.OpenAPI = hc.GetOpenapiPath(), openapi.Spec
		}
	}
	if protos[configv1.Protocol_PROTOCOL_GRPC_WEB] {
		opts.GRPCWeb = g.grpcWeb
	}
	protocols := &http.Protocols{}
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	d := &frontdoor.Server{
		HTTP: &http.Server{
			Handler:           frontdoor.NewHTTPHandler(opts),
			ReadHeaderTimeout: hc.GetReadHeaderTimeout().AsDuration(),
			IdleTimeout:       hc.GetIdleTimeout().AsDuration(),
			MaxHeaderBytes:    int(lim.GetMaxHeaderListBytes()),
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
			ConnContext:       frontdoor.ConnContext,
			Protocols:         protocols,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams: int(lim.GetMaxConcurrentStreams()),
			},
		},
		SniffTimeout: lim.GetConnectionTimeout().AsDuration(),
		Log:          g.log,
	}
	if ts != nil {
		d.TLS = ts.TLSConfig()
	}
	if protos[configv1.Protocol_PROTOCOL_GRPC] {
		d.GRPC = g.server
	}
	return d
}

// Addrs returns the bound address of every listener, in configuration
// order (useful with port 0).
func (g *Gateway) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]net.Addr, len(g.listeners))
	for i, ln := range g.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Serve serves on every bound listener (binding them first if Listen was
// not called) until Shutdown or Stop, then returns nil; or it returns the
// first listener's error.
func (g *Gateway) Serve() error {
	g.mu.Lock()
	if len(g.listeners) == 0 {
		g.mu.Unlock()
		if err := g.Listen(); err != nil {
			return err
		}
		g.mu.Lock()
	}
	g.serving = true
	lns, doors := g.listeners, g.doors
	g.mu.Unlock()
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	g.mu.Lock()
	adm, admLn := g.admin, g.adminLn
	g.mu.Unlock()
	if adm != nil {
		g.log.Info("admin listening", slog.String("address", admLn.Addr().String()))
		go func() { _ = adm.Serve(admLn) }()
	}
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		g.log.Info("listening", slog.String("listener", g.cfg.GetListeners()[i].GetName()), slog.String("address", ln.Addr().String()))
		if d := doors[i]; d != nil {
			go func() { errc <- d.Serve(ln) }()
		} else {
			go func() { errc <- g.server.Serve(ln) }()
		}
	}
	var first error
	for range lns {
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) && first == nil {
			first = err
			g.Stop()
		}
	}
	return first
}

// Shutdown drains the gateway: it reports NOT_SERVING on the health
// service, stops accepting connections and waits for calls in flight to
// finish. When ctx ends first, the remaining calls are cancelled. Upstream
// connections are closed last.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	g.health.Shutdown()
	doors := g.activeDoors()
	for _, d := range doors {
		d.StopAccepting()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(doors))
	for i, d := range doors {
		wg.Go(func() { errs[i] = d.Shutdown(ctx) })
	}
	done := make(chan struct{})
	go func() {
		g.server.GracefulStop()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		g.server.Stop()
		<-done
		err = ctx.Err()
	}
	wg.Wait()
	if err == nil {
		err = errors.Join(errs...)
	}
	g.closeListeners()
	if cerr := g.proxy.Snapshot().Pool.Close(); cerr != nil && err == nil {
		err = cerr
	}
	g.closeTelemetry(ctx)
	return err
}

// closeAll releases what New built, when New fails.
func (g *Gateway) closeAll() {
	if s := g.proxy; s != nil {
		_ = s.Snapshot().Pool.Close()
	}
	if g.stores != nil {
		g.stores.close()
	}
	for _, ts := range g.tlsSrv {
		if ts != nil {
			ts.Close()
		}
	}
}

// closeTelemetry stops the admin server and flushes queued spans.
func (g *Gateway) closeTelemetry(ctx context.Context) {
	g.mu.Lock()
	adm := g.admin
	g.mu.Unlock()
	if adm != nil {
		_ = adm.Close()
	}
	g.stores.close()
	for _, ts := range g.tlsSrv {
		if ts != nil {
			ts.Close()
		}
	}
	if rp, ok := g.proxy.Snapshot().Policies.(*routePolicies); ok {
		rp.close()
	}
	if g.tp != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := g.tp.Shutdown(fctx); err != nil {
			g.log.Warn("flushing spans", slog.String("error", err.Error()))
		}
	}
}

// Stop ends every call and connection at once and closes the upstreams.
func (g *Gateway) Stop() {
	g.health.Shutdown()
	for _, d := range g.activeDoors() {
		d.Close()
	}
	g.server.Stop()
	g.closeListeners()
	_ = g.proxy.Snapshot().Pool.Close()
	g.closeTelemetry(context.Background())
}

func (g *Gateway) activeDoors() []*frontdoor.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*frontdoor.Server
	for _, d := range g.doors {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

func (g *Gateway) closeListeners() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.serving {
		for _, ln := range g.listeners {
			_ = ln.Close()
		}
		if g.adminLn != nil {
			_ = g.adminLn.Close()
		}
	}
}

// Metrics returns the gateway's Prometheus collectors.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Table returns the route table new calls use.
func (g *Gateway) Table() *router.Table { return g.proxy.Snapshot().Table }
