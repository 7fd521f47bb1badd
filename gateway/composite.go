package gateway

import (
	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/aggregate"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/tracing"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// tableRoutes is what aggregate.Compile asks of a route table.
type tableRoutes struct {
	t         *router.Table
	reflected map[string]bool // the clusters read by reflection
}

func (r tableRoutes) Pending(m string) bool {
	rt := r.t.Lookup(m)
	return rt != nil && r.reflected[rt.Cluster]
}

func (r tableRoutes) Routed(m string) bool { return r.t.Lookup(m) != nil }

func (r tableRoutes) HasRoute(name string) bool { return routeNamed(r.t, name) != nil }

func routeNamed(t *router.Table, name string) *router.Route {
	for _, rt := range t.Routes() {
		if rt.Name == name {
			return rt
		}
	}
	return nil
}

// buildComposites compiles cfg's composite endpoints against reg and
// makes them the local methods of table: each one's call passes the chain
// with a route of its own (carrying the policies of the route it names),
// and its legs run through the gateway's in-process connection, the chain
// again for each.
func (g *Gateway) buildComposites(cfg *configv1.Config, table *router.Table, reg *schema.Registry) error {
	reflected := map[string]bool{}
	for _, c := range cfg.GetClusters() {
		reflected[c.GetName()] = c.GetReflection() != nil
	}
	set, err := aggregate.Compile(cfg, reg, tableRoutes{table, reflected})
	if err != nil {
		return err
	}
	for _, name := range set.Pending() {
		g.log.Warn("composite not served yet: a method of its legs has no descriptors until its cluster's server reflection is read", "composite", name)
	}
	if len(set.List()) == 0 {
		return nil
	}
	local := map[string]*router.Local{}
	for _, c := range set.List() {
		rt := &router.Route{Name: c.Name, Kind: "composite", Pattern: c.Method[1:]}
		if named := routeNamed(table, c.Route); named != nil {
			rt.Policies = named.Policies
		}
		l := &router.Local{Route: rt, Handler: g.compositeHandler(c)}
		for _, leg := range c.Legs {
			l.Legs = append(l.Legs, router.LocalLeg{Name: leg.Name, Method: leg.Method, Optional: leg.Optional, After: leg.After, FanOut: leg.FanOut})
		}
		local[c.Method] = l
	}
	table.SetLocal(local)
	return nil
}

// compositeHandler serves c's calls in place of the proxy.
func (g *Gateway) compositeHandler(c *aggregate.Composite) grpc.StreamHandler {
	return func(_ any, ss grpc.ServerStream) error {
		return c.Serve(ss, aggregate.Options{Conn: g.core, Inject: tracing.Inject})
	}
}
