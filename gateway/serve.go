package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/admin"
	"github.com/edgegate/edgegate/frontdoor"
)

// Listen binds every listener of the configuration. On an error nothing is
// left bound.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.listeners) > 0 {
		return errors.New("gateway: already listening")
	}
	unbind := func() {
		for _, prev := range g.listeners {
			_ = prev.Close()
		}
		g.listeners, g.doors = nil, nil
	}
	for i, l := range g.cfg.GetListeners() {
		ln, err := net.Listen("tcp", l.GetAddress())
		if err != nil {
			unbind()
			return fmt.Errorf("listeners[%d] %q: %w", i, l.GetName(), err)
		}
		var tc *tls.Config
		if ts := g.tlsSrv[i]; ts != nil {
			tc = ts.TLSConfig()
		}
		d := frontdoor.NewServer(frontdoor.ListenerOptions{
			Listener: l, HTTP: g.cfg.GetHttp(), Limits: g.cfg.GetLimits(), TLS: tc,
			GRPC: g.server, Native: g.native, REST: g.rest, GRPCWeb: g.grpcWeb, OpenAPI: func() []byte { return g.doorsNow().openapi },
			Edge: g.edge, AccessLog: g.accessLog, Log: g.log, WAF: g.newFirewall(i),
		})
		g.listeners = append(g.listeners, ln)
		g.doors = append(g.doors, d)
	}
	if a := g.cfg.GetAdmin(); !a.GetDisable() {
		ln, err := net.Listen("tcp", a.GetAddress())
		if err != nil {
			unbind()
			return fmt.Errorf("admin.address: %w", err)
		}
		g.adminLn = ln
		g.admin = &http.Server{
			Handler: admin.Handler(admin.Options{
				Registry: g.metrics.Registry,
				Ready:    g.Ready,
				Routes:   g.routesJSON,
				Schema:   g.readySchema,
				Config:   func() proto.Message { return g.current.Load() },
				Reload:   g.reloader,
				Purge:    g.purgeCache,
				Console:  g.consoleHandler(),
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
	}
	return nil
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
	adm, admLn := g.admin, g.adminLn
	g.mu.Unlock()
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	go g.reportUnreachable()
	if adm != nil {
		g.log.Info("admin listening", slog.String("address", admLn.Addr().String()))
		go func() { _ = adm.Serve(admLn) }()
	}
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		g.log.Info("listening", slog.String("listener", g.cfg.GetListeners()[i].GetName()), slog.String("address", ln.Addr().String()))
		d := doors[i]
		go func() { errc <- d.Serve(ln) }()
	}
	if g.runtime {
		releaseStartup()
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

// Drain starts the drain period: from now on /readyz answers 503
// ("draining") and the gRPC health service NOT_SERVING, so that load
// balancers stop sending new calls, while the listeners keep accepting and
// serving connections as before. Shutdown ends it.
func (g *Gateway) Drain() {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	g.health.Shutdown()
}

// Shutdown drains the gateway: it reports NOT_SERVING on the health
// service, stops accepting connections and waits for calls in flight to
// finish. When ctx ends first, the remaining calls are cancelled. Upstream
// connections and the policies are closed last.
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
	if cerr := g.release(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Stop ends every call and connection at once and releases the rest.
func (g *Gateway) Stop() {
	g.health.Shutdown()
	for _, d := range g.activeDoors() {
		d.Close()
	}
	g.server.Stop()
	g.closeListeners()
	_ = g.release(context.Background())
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

// release closes, once, what the gateway holds besides its listeners: the
// admin server, the current snapshot's upstreams and policy instances, the
// policies, the TLS reloaders, and the tracer (its queued spans flushed,
// bounded by ctx and 5 s).
func (g *Gateway) release(ctx context.Context) error {
	g.mu.Lock()
	adm, done := g.admin, g.closed
	g.closed = true
	g.mu.Unlock()
	if done {
		return nil
	}
	g.stopLife()
	g.reloadMu.Lock()
	g.watch.closeExcept(nil)
	g.reloadMu.Unlock()
	if adm != nil {
		_ = adm.Close()
	}
	var err error
	if g.proxy != nil {
		snap := g.proxy.Snapshot()
		err = snap.Pool.Close()
		snap.Policies.Close()
	}
	for _, p := range g.policies {
		_ = p.Close()
	}
	for _, ts := range g.tlsSrv {
		if ts != nil {
			ts.Close()
		}
	}
	if g.tp != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ferr := g.tp.Shutdown(fctx); ferr != nil {
			g.log.Warn("flushing spans", slog.String("error", ferr.Error()))
		}
	}
	return err
}

// closeAll releases what New built, when New fails or after a dry run.
func (g *Gateway) closeAll() { _ = g.release(context.Background()) }

// reportUnreachable logs, once the clusters have had their connect
// timeout to connect, the ones that did not: a start with unreachable
// upstreams is said, not only a "ready". It ends early when every cluster
// connects or the gateway stops.
func (g *Gateway) reportUnreachable() {
	var wait time.Duration
	for _, c := range g.current.Load().GetClusters() {
		wait = max(wait, c.GetConnectTimeout().AsDuration())
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		g.mu.Lock()
		stopped := g.closed || g.draining
		g.mu.Unlock()
		down := g.clustersDown(false)
		switch {
		case stopped || len(down) == 0:
			return
		case time.Now().Before(deadline):
			continue
		case len(down) == len(g.current.Load().GetClusters()):
			g.log.Warn("no upstream cluster is reachable: every routed call gets UNAVAILABLE until one connects",
				slog.String("clusters", strings.Join(down, ", ")), slog.Duration("waited", wait))
		default:
			g.log.Warn("upstream clusters not reachable: their calls get UNAVAILABLE until they connect",
				slog.String("clusters", strings.Join(down, ", ")), slog.Duration("waited", wait))
		}
		return
	}
}
