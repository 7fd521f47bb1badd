package gateway

import (
	"net/http"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
)

// httpRoutes are the HTTP routes of one snapshot.
type httpRoutes struct{}

func (g *Gateway) newHTTPRoutes(cfg *configv1.Config, snap *router.Snapshot) (*httpRoutes, error) {
	return nil, nil
}

func (h *httpRoutes) handler(r *http.Request) http.Handler { return nil }
