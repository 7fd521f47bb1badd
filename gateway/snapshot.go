package gateway

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/upstream"
)

// buildSnapshot compiles the reloadable part of cfg (routes, clusters,
// policies) into a routing snapshot, sharing the clusters of reuse (may be
// nil) whose settings did not change.
func (g *Gateway) buildSnapshot(cfg *configv1.Config, reuse *upstream.Pool) (*router.Snapshot, error) {
	table, err := router.Compile(cfg)
	if err != nil {
		return nil, err
	}
	retry := retryMethods(cfg, table)
	specs := make([]upstream.Spec, len(cfg.GetClusters()))
	for i, c := range cfg.GetClusters() {
		specs[i] = upstream.Spec{Config: c, RetryMethods: retry[c.GetName()], Log: g.log}
	}
	pool, err := upstream.New(specs, reuse, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(router.NewCodec())))
	if err != nil {
		return nil, err
	}
	policies, err := g.compilePolicies(cfg)
	if err != nil {
		pool.CloseExcept(reuse)
		return nil, err
	}
	return &router.Snapshot{Table: table, Pool: pool, Policies: policies}, nil
}

// retryMethods lists, per cluster with a retry policy, the methods its
// retries apply to: the compiled-in methods routed to it that are marked
// NO_SIDE_EFFECTS or IDEMPOTENT and take one request message, and the
// methods the policy names.
func retryMethods(cfg *configv1.Config, table *router.Table) map[string][]string {
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
	if len(policy) == 0 {
		return out
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				full := "/" + string(sd.FullName()) + "/" + string(md.Name())
				rt := table.Lookup(full)
				if rt == nil || policy[rt.Cluster] == nil || md.IsStreamingClient() {
					continue
				}
				opts, _ := md.Options().(*descriptorpb.MethodOptions)
				switch opts.GetIdempotencyLevel() {
				case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
					out[rt.Cluster] = append(out[rt.Cluster], full)
				}
			}
		}
		return true
	})
	for k, v := range out {
		slices.Sort(v)
		out[k] = slices.Compact(v)
	}
	return out
}

// knowRoutes tells metrics the exact-method routes' methods.
func knowRoutes(m *metrics.Metrics, t *router.Table) {
	var exact []string
	for _, r := range t.Routes() {
		if r.Kind == "method" {
			exact = append(exact, r.Pattern)
		}
	}
	m.KnowMethods(metrics.ExactMethods(exact))
}

// Reload makes cfg, loaded by package config, the configuration in force:
// routes (with their auth rules and IP lists), clusters (those whose
// settings did not change keep their connections), rate limits, auth
// providers, concurrency limits and the runtime settings. It is built and
// checked whole first; on an error nothing changes, the error is returned,
// logged and counted. Calls in flight finish on the configuration they
// started with; clusters no longer used are closed after the last of them.
// The listeners, edge limits, global IP lists, trusted proxies, forwarded
// identity keys and the HTTP, admin, tracing, logging and Redis settings
// are fixed at start: a change to them is logged and ignored until a
// restart.
func (g *Gateway) Reload(cfg *configv1.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.proxy.Snapshot()
	snap, err := g.buildSnapshot(cfg, old.Pool)
	if err != nil {
		g.metrics.Reloaded(false)
		g.log.Error("config reload failed; the configuration in force stays", slog.String("error", err.Error()))
		return fmt.Errorf("reload: %w", err)
	}
	if fixed := fixedChanges(g.cfg, cfg); len(fixed) > 0 {
		g.log.Warn("config reload: these settings take effect at the next restart", slog.String("keys", strings.Join(fixed, ", ")))
	}
	old.OnIdle = func() {
		old.Pool.CloseExcept(snap.Pool)
		if rp, ok := old.Policies.(*routePolicies); ok {
			rp.close()
		}
	}
	knowRoutes(g.metrics, snap.Table)
	if g.runtime {
		applyRuntime(cfg, g.log)
	}
	g.current.Store(cfg)
	g.proxy.Swap(snap)
	g.metrics.Reloaded(true)
	hash := config.Hash(cfg)
	g.metrics.SetConfig(hash)
	g.log.Info("config reloaded", slog.String("hash", hash), slog.Int("routes", len(cfg.GetRoutes())), slog.Int("clusters", len(cfg.GetClusters())))
	return nil
}

// fixedChanges names the settings that differ between a and b but are
// fixed at start.
func fixedChanges(a, b *configv1.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		x, y proto.Message
	}{
		{"limits", a.GetLimits(), b.GetLimits()},
		{"http", a.GetHttp(), b.GetHttp()},
		{"admin", a.GetAdmin(), b.GetAdmin()},
		{"tracing", a.GetTracing(), b.GetTracing()},
		{"logging", a.GetLogging(), b.GetLogging()},
		{"redis", a.GetRedis(), b.GetRedis()},
		{"ip_filter", a.GetIpFilter(), b.GetIpFilter()},
		{"forwarded_identity", a.GetForwardedIdentity(), b.GetForwardedIdentity()},
	} {
		if !proto.Equal(f.x, f.y) {
			out = append(out, f.name)
		}
	}
	if !slices.Equal(a.GetTrustedProxies(), b.GetTrustedProxies()) {
		out = append(out, "trusted_proxies")
	}
	if len(a.GetListeners()) != len(b.GetListeners()) {
		out = append(out, "listeners")
	} else {
		for i := range a.GetListeners() {
			if !proto.Equal(a.GetListeners()[i], b.GetListeners()[i]) {
				out = append(out, "listeners")
				break
			}
		}
	}
	return out
}
