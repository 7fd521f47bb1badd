package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor/httproute"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/upstream/httpcluster"
)

// httpRoutes are the HTTP routes of one snapshot and the clusters they
// send to.
type httpRoutes struct {
	routes   *httproute.Routes
	clusters []*httpcluster.Cluster
}

// newHTTPRoutes builds the HTTP clusters and routes of cfg; the clusters'
// health checks start unless in a dry run. The routes run through the
// chain of the gateway (g.httpCore), whose resolve step finds them in the
// snapshot's table with their policies. It returns nil without HTTP
// routes.
func (g *Gateway) newHTTPRoutes(cfg *configv1.Config, snap *router.Snapshot) (*httpRoutes, error) {
	if len(cfg.GetHttpRoutes()) == 0 && len(cfg.GetHttpClusters()) == 0 {
		return nil, nil
	}
	h := &httpRoutes{}
	var errs []error
	byName := map[string]*httpcluster.Cluster{}
	for i, cc := range cfg.GetHttpClusters() {
		p := fmt.Sprintf("http_clusters[%d]", i)
		if _, dup := byName[cc.GetName()]; dup {
			errs = append(errs, config.FieldErrorf(p+".name", "duplicate HTTP cluster name %q", cc.GetName()))
			continue
		}
		c, err := httpcluster.New(cc, g.log)
		if err != nil {
			errs = append(errs, &config.FieldError{Path: p, Err: err})
			continue
		}
		byName[cc.GetName()] = c
		h.clusters = append(h.clusters, c)
	}
	routes, rerrs := httproute.New(cfg, byName, httproute.Options{Core: g.httpCore, Inject: g.inject, Drop: g.drop, Log: g.log})
	errs = append(errs, rerrs...)
	h.routes = routes
	if err := errors.Join(errs...); err != nil {
		h.close()
		return nil, err
	}
	if !snap.Policies.DryRun {
		for _, c := range h.clusters {
			c.Start()
		}
	}
	return h, nil
}

func (h *httpRoutes) handler(r *http.Request) http.Handler {
	if h == nil {
		return nil
	}
	if rt := h.routes.Match(r); rt != nil {
		return rt
	}
	return nil
}

func (h *httpRoutes) close() {
	if h == nil {
		return
	}
	for _, c := range h.clusters {
		c.Close()
	}
}
