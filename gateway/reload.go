package gateway

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// Reload makes cfg, loaded by package config, the configuration in force:
// routes (with their policies: auth rules, IP lists, rate limits),
// clusters (those whose settings did not change keep their connections),
// auth providers, concurrency limits and the runtime settings. It is built
// and checked whole first; on an error nothing changes, the error is
// returned, logged and counted. Calls in flight finish on the
// configuration they started with; clusters no longer used, and the old
// configuration's policy instances, are closed after the last of them.
// The listeners, edge limits, global IP lists, trusted proxies, forwarded
// identity keys and the HTTP, admin, tracing, logging and Redis settings
// are fixed at start: a change to them is logged and ignored until a
// restart.
func (g *Gateway) Reload(cfg *configv1.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	ws, err := g.prepareWatches(cfg)
	if err == nil {
		if err = g.swap(cfg, ws); err != nil {
			ws.closeExcept(g.watch)
		}
	}
	if err != nil {
		g.metrics.Reloaded(false)
		g.log.Error("config reload failed; the configuration in force stays", slog.String("error", err.Error()))
		return fmt.Errorf("reload: %w", err)
	}
	g.adoptWatches(ws)
	if fixed := fixedChanges(g.cfg, cfg); len(fixed) > 0 {
		g.log.Warn("config reload: these settings take effect at the next restart", slog.String("keys", strings.Join(fixed, ", ")))
	}
	g.metrics.Reloaded(true)
	g.log.Info("config reloaded", slog.String("hash", config.Hash(cfg)), slog.Int("routes", len(cfg.GetRoutes())), slog.Int("clusters", len(cfg.GetClusters())))
	return nil
}

// swap builds the snapshot of cfg, with the descriptor sets ws last read,
// and its HTTP doors, and puts them in force; on an error nothing changes.
// The snapshot before is released after its last call.
func (g *Gateway) swap(cfg *configv1.Config, ws watches) error {
	old := g.proxy.Snapshot()
	snap, err := g.buildSnapshot(cfg, old.Pool, false, ws.sets())
	if err != nil {
		return err
	}
	d, err := g.buildDoors(cfg, snap)
	if err != nil {
		snap.Pool.CloseExcept(old.Pool)
		snap.Policies.Close()
		return err
	}
	old.OnIdle = func() {
		old.Pool.CloseExcept(snap.Pool)
		old.Policies.Close()
	}
	g.metrics.KnowMethods(g.knownMethods(snap))
	if g.runtime {
		applyRuntime(cfg, g.log)
	}
	g.current.Store(cfg)
	g.httpDoors.Store(d)
	g.proxy.Swap(snap)
	g.metrics.SetConfig(config.Hash(cfg))
	return nil
}

// fixedHTTP is the part of cfg's http section fixed at start: all of it
// but the static mounts, which every snapshot builds anew.
func fixedHTTP(cfg *configv1.Config) proto.Message {
	h := proto.CloneOf(cfg.GetHttp())
	if h != nil {
		h.Static = nil
	}
	return h
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
		{"http", fixedHTTP(a), fixedHTTP(b)},
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
