package gateway

import (
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/console"
	"github.com/edgegate/edgegate/frontdoor"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/clientip"
	"github.com/edgegate/edgegate/router"
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

// publicConsole is the console of http.console, served at its
// path_prefix on the HTTP side of every listener that serves gRPC-Web or
// REST, for the snapshot snap: its page, assets and api/ answer only
// requests that http.console.auth authenticates and authorizes (else 401
// with WWW-Authenticate, or 403, with a google.rpc.Status JSON body), and
// the page calls the listener's own doors, where each route's auth
// applies. It returns nil without http.console.
func publicConsole(cfg *configv1.Config, snap *router.Snapshot) http.Handler {
	pc := cfg.GetHttp().GetConsole()
	if pc == nil || snap == nil {
		return nil
	}
	pol := auth.Global(snap.Policies.Global())
	trusted, _ := trustedProxies(cfg) // an error fails the configuration elsewhere
	h := console.Handler(console.Options{
		Registry: func() *schema.Registry { return snap.Schema },
		Route: func(full string) (string, string, bool) {
			if r := snap.Table.Lookup(full); r != nil {
				return r.Name, r.Cluster, true
			}
			return "", "", false
		},
		Prefix:   pc.GetPathPrefix(),
		CallBase: "/",
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := make(metadata.MD, len(r.Header)+3)
		for k, vs := range r.Header {
			md[strings.ToLower(k)] = vs
		}
		md[":authority"] = []string{r.Host}
		md[":method"] = []string{r.Method}
		md[":path"] = []string{r.URL.RequestURI()}
		client := clientip.Of(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted)
		_, challenge, err := auth.Check(r.Context(), pol, auth.Request{MD: md, TLS: r.TLS}, consoleMethod, client.String())
		if err != nil {
			if challenge != "" {
				w.Header().Set("WWW-Authenticate", challenge)
			}
			frontdoor.WriteStatus(w, status.Convert(err), 0)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// consoleMethod is what a CEL rule of http.console.auth sees as method.
const consoleMethod = "/edgegate.console/Console"
