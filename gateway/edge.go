package gateway

import (
	"net/http"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/compress"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// edgeRoutes are the static mounts and HTTP routes of one snapshot.
type edgeRoutes struct {
	route func(r *http.Request) http.Handler
}

// buildEdge builds the HTTP offloads of cfg that are fixed at start: the
// compression of answers; the static mounts and HTTP routes come with
// each snapshot's doors.
func (g *Gateway) buildEdge(cfg *configv1.Config) (frontdoor.EdgeOptions, error) {
	c, err := compress.New(cfg.GetHttp().GetCompression())
	if err != nil {
		return frontdoor.EdgeOptions{}, &config.FieldError{Path: "http.compression", Err: err}
	}
	return frontdoor.EdgeOptions{
		Compress: c,
		Route: func(r *http.Request) http.Handler {
			if e := g.doorsNow().edge; e != nil {
				return e.route(r)
			}
			return nil
		},
	}, nil
}
