package gateway

import (
	"slices"
	"strings"

	"github.com/edgegate/edgegate/schema"
)

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
	if down := g.clustersDown(true); len(down) > 0 {
		return false, "no healthy endpoint in cluster(s) " + strings.Join(down, ", ")
	}
	return true, ""
}

// clustersDown names, sorted, the clusters of the configuration in force
// without a connected endpoint; required leaves out the optional ones.
func (g *Gateway) clustersDown(required bool) []string {
	health := g.clusterHealth()
	var down []string
	for _, c := range g.current.Load().GetClusters() {
		if (!required || !c.GetOptional()) && !health[c.GetName()] {
			down = append(down, c.GetName())
		}
	}
	slices.Sort(down)
	return down
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
	Source  string `json:"source"`
}

// routesJSON is the route table and the REST bindings, for /routes.
func (g *Gateway) routesJSON() any {
	t := g.proxy.Snapshot().Table
	out := struct {
		Routes []routeJSON     `json:"routes"`
		REST   []restRouteJSON `json:"rest"`
	}{Routes: []routeJSON{}, REST: []restRouteJSON{}}
	for _, r := range append(slices.Clone(t.Routes()), t.HTTPRoutes()...) {
		rj := routeJSON{Name: r.Name, Match: r.Match(), Cluster: r.Cluster, DisableAccessLog: r.DisableAccessLog}
		if r.Kind == "http" {
			rj.Cluster = "http:" + r.Cluster
		}
		if r.Timeout > 0 {
			rj.Timeout = r.Timeout.String()
		}
		out.Routes = append(out.Routes, rj)
	}
	for _, b := range g.proxy.Snapshot().Schema.Bindings() {
		rr := restRouteJSON{HTTP: b.Verb, Path: b.Path, Method: b.Method.Full, Source: schema.BindingSource(b)}
		if r := t.Lookup(b.Method.Full); r != nil {
			rr.Cluster = r.Cluster
		}
		out.REST = append(out.REST, rr)
	}
	return out
}
