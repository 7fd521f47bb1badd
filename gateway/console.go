package gateway

import (
	"net/http"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/console"
	"github.com/edgegate/edgegate/frontdoor"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/schema"
)

// consoleListener is the index of the listener the console calls through
// (admin.console.listener, or the first with an HTTP door), or -1 when
// none serves gRPC-Web or REST.
func consoleListener(cfg *configv1.Config) (int, error) {
	name := cfg.GetAdmin().GetConsole().GetListener()
	for i, l := range cfg.GetListeners() {
		if name != "" && l.GetName() != name {
			continue
		}
		if frontdoor.IsGRPCOnly(l) {
			if name != "" {
				return -1, config.FieldErrorf("admin.console.listener", "listener %q serves native gRPC only: the console calls over gRPC-Web or REST", name)
			}
			continue
		}
		return i, nil
	}
	if name != "" {
		return -1, config.FieldErrorf("admin.console.listener", "no listener named %q", name)
	}
	return -1, nil
}

// consoleHandler is the admin server's console, or nil when it is
// disabled. It calls through the doors of its listener (bound by Listen).
func (g *Gateway) consoleHandler() http.Handler {
	if g.cfg.GetAdmin().GetConsole().GetDisable() {
		return nil
	}
	o := console.Options{
		Registry: func() *schema.Registry { return g.proxy.Snapshot().Schema },
		Route: func(full string) (string, string, bool) {
			r := g.proxy.Snapshot().Table.Lookup(full)
			if r == nil {
				return "", "", false
			}
			return r.Name, r.Cluster, true
		},
	}
	if i, _ := consoleListener(g.cfg); i >= 0 && i < len(g.doors) && g.doors[i].HTTP != nil {
		o.Door = g.doors[i].HTTP.Handler
		o.Listener = g.cfg.GetListeners()[i].GetName()
		o.Address = g.listeners[i].Addr().String()
	}
	return console.Handler(o)
}
