package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/compress"
	"github.com/edgegate/edgegate/frontdoor/static"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// embedded are the file sets a static mount may name with embedded.
var embedded = map[string]func() fs.FS{"welcome": static.Welcome}

// buildEdge builds the HTTP offloads of cfg that are fixed at start: the
// compression of answers. The static mounts and HTTP routes come with
// each snapshot's doors (newEdgeRoutes).
func (g *Gateway) buildEdge(cfg *configv1.Config) (frontdoor.EdgeOptions, error) {
	c, err := compress.New(cfg.GetHttp().GetCompression())
	if err != nil {
		return frontdoor.EdgeOptions{}, &config.FieldError{Path: "http.compression", Err: err}
	}
	return frontdoor.EdgeOptions{
		Compress: c,
		Route: func(r *http.Request) http.Handler {
			if e := g.doorsNow().edge; e != nil {
				return e.handler(r)
			}
			return nil
		},
	}, nil
}

// edgeRoutes are the static mounts and HTTP routes of one snapshot. The
// routing precedence of a request that is neither gRPC-Web nor the
// OpenAPI document: the HTTP routes in configuration order, then the
// static mounts, then the REST bindings. The paths they claim may not
// overlap (checkClaims), so that the order only decides between HTTP
// routes.
type edgeRoutes struct {
	mounts []*static.Mount
	http   *httpRoutes
}

func (e *edgeRoutes) handler(r *http.Request) http.Handler {
	if h := e.http.handler(r); h != nil {
		return h
	}
	for _, m := range e.mounts {
		if m.Matches(r.URL.Path) {
			return m
		}
	}
	return nil
}

// close releases the mounts' directories and the HTTP clusters.
func (e *edgeRoutes) close() {
	for _, m := range e.mounts {
		_ = m.Close()
	}
	e.http.close()
}

// newEdgeRoutes builds the static mounts and HTTP routes of snap, a
// snapshot of cfg, and checks that the paths they and the REST bindings
// claim do not overlap. It returns nil when cfg has neither.
func (g *Gateway) newEdgeRoutes(cfg *configv1.Config, snap *router.Snapshot) (*edgeRoutes, error) {
	hc := cfg.GetHttp()
	if len(hc.GetStatic()) == 0 && len(cfg.GetHttpRoutes()) == 0 {
		return nil, nil
	}
	e := &edgeRoutes{}
	var errs []error
	for i, sc := range hc.GetStatic() {
		p := fmt.Sprintf("http.static[%d]", i)
		o := static.Options{Prefix: sc.GetPathPrefix(), SPAFallback: sc.GetSpaFallback(), CacheControl: sc.GetCacheControl()}
		switch {
		case (sc.GetDir() == "") == (sc.GetEmbedded() == ""):
			errs = append(errs, &config.FieldError{Path: p, Err: static.ErrNoFiles})
		case sc.GetDir() != "":
			m, err := static.Dir(sc.GetDir(), o)
			if err != nil {
				errs = append(errs, &config.FieldError{Path: p + ".dir", Err: err})
				continue
			}
			e.mounts = append(e.mounts, m)
		default:
			files, ok := embedded[sc.GetEmbedded()]
			if !ok {
				errs = append(errs, config.FieldErrorf(p+".embedded", "no embedded file set %q (known: welcome)", sc.GetEmbedded()))
				continue
			}
			o.FS = files()
			e.mounts = append(e.mounts, static.New(o))
		}
	}
	hr, err := g.newHTTPRoutes(cfg, snap)
	errs = append(errs, err)
	e.http = hr
	errs = append(errs, checkClaims(cfg, snap))
	if err := errors.Join(errs...); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// claim is a path space one entry serves: a prefix (ending in "/", or the
// exact path when exact).
type claim struct {
	prefix string
	exact  bool
	path   string // the configuration field, "" for a REST binding
	what   string // for messages
}

// head is the literal part of a path template up to its first variable
// or wildcard, cut at its last "/"; exact when it has none.
func head(tmpl string) (string, bool) {
	i := strings.IndexAny(tmpl, "{*:")
	if i < 0 {
		return tmpl, true
	}
	return tmpl[:strings.LastIndexByte(tmpl[:i], '/')+1], false
}

func (a claim) overlaps(b claim) bool {
	switch {
	case a.exact && b.exact:
		return a.prefix == b.prefix
	case a.exact:
		return strings.HasPrefix(a.prefix+"/", b.prefix)
	case b.exact:
		return strings.HasPrefix(b.prefix+"/", a.prefix)
	}
	return strings.HasPrefix(a.prefix, b.prefix) || strings.HasPrefix(b.prefix, a.prefix)
}

// checkClaims refuses a configuration in which a request path could be
// for two of: a REST binding of a routed method, the OpenAPI document, a
// static mount, an HTTP route (HTTP routes may overlap each other: the
// first that matches wins). Each error names both entries; one in the
// file is an error at its field (file:line:col).
func checkClaims(cfg *configv1.Config, snap *router.Snapshot) error {
	var claims []claim
	hc := cfg.GetHttp()
	for i, sc := range hc.GetStatic() {
		claims = append(claims, claim{prefix: sc.GetPathPrefix(), path: fmt.Sprintf("http.static[%d].path_prefix", i), what: "static mount " + sc.GetPathPrefix()})
	}
	for i, rc := range cfg.GetHttpRoutes() {
		m := rc.GetMatch()
		p := fmt.Sprintf("http_routes[%d].match", i)
		if pp := m.GetPathPrefix(); pp != "" {
			claims = append(claims, claim{prefix: strings.TrimSuffix(pp, "/") + "/", path: p + ".path_prefix", what: fmt.Sprintf("HTTP route %q (path_prefix %s)", rc.GetName(), pp)})
			claims = append(claims, claim{prefix: strings.TrimSuffix(pp, "/"), exact: true, path: p + ".path_prefix", what: fmt.Sprintf("HTTP route %q (path_prefix %s)", rc.GetName(), pp)})
		}
		if pt := m.GetPathTemplate(); pt != "" {
			h, exact := head(pt)
			claims = append(claims, claim{prefix: h, exact: exact, path: p + ".path_template", what: fmt.Sprintf("HTTP route %q (path_template %s)", rc.GetName(), pt)})
		}
	}
	if !hc.GetDisableOpenapi() && hc.GetOpenapiPath() != "" {
		claims = append(claims, claim{prefix: hc.GetOpenapiPath(), exact: true, path: "http.openapi_path", what: "the OpenAPI document " + hc.GetOpenapiPath()})
	}
	var rest []claim
	if snap != nil {
		for _, b := range snap.Schema.Bindings() {
			if snap.Table.Lookup(b.Method.Full) == nil {
				continue
			}
			h, exact := head(b.Path)
			rest = append(rest, claim{prefix: h, exact: exact, what: fmt.Sprintf("REST binding %s %s (%s, %s)", b.Verb, b.Path, strings.TrimPrefix(b.Method.Full, "/"), schema.BindingSource(b))})
		}
	}
	var errs []error
	seen := map[[2]string]bool{}
	for i, a := range claims {
		for _, b := range claims[i+1:] {
			if a.path == b.path || kindOf(a.path) == "http_routes" && kindOf(b.path) == "http_routes" || !a.overlaps(b) {
				continue
			}
			if k := [2]string{a.path, b.path}; !seen[k] {
				seen[k] = true
				errs = append(errs,
					config.FieldErrorf(a.path, "%s overlaps %s (%s): a request could be for either", a.what, b.what, b.path),
					config.FieldErrorf(b.path, "%s overlaps %s (%s): a request could be for either", b.what, a.what, a.path))
			}
		}
		if a.path == "http.openapi_path" || seen[[2]string{a.path}] {
			continue
		}
		for _, b := range rest {
			if a.overlaps(b) {
				seen[[2]string{a.path}] = true
				errs = append(errs, config.FieldErrorf(a.path, "%s overlaps %s: a request could be for either", a.what, b.what))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func kindOf(path string) string {
	k, _, _ := strings.Cut(path, "[")
	return k
}
