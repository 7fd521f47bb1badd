package frontdoor

import (
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// Headers every CORS configuration allows and exposes.
var (
	baseAllowedHeaders = []string{"content-type", "authorization", "x-request-id", "x-grpc-web", "x-user-agent", "grpc-timeout", "traceparent", "tracestate"}
	// retry-after and www-authenticate: a page reads why the gateway
	// refused it (a shed, a rate limit, an auth refusal) and when to retry;
	// x-edgegate-partial: that a composite's answer lacks a leg.
	baseExposedHeaders = []string{"grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id", "retry-after", "www-authenticate", "x-edgegate-partial"}
)

// CORS answers preflight requests and marks responses for allowed origins;
// the HTTP handler refuses requests from other origins (admits).
type CORS struct {
	anyOrigin   bool
	origins     map[string]bool
	allowHdrs   string
	exposeHdrs  string
	exposeList  []string
	maxAge      string
	credentials bool
	serveOthers bool
}

// NewCORS compiles c; nil (CORS off) when c is nil.
func NewCORS(c *configv1.CORS) *CORS {
	if c == nil {
		return nil
	}
	out := &CORS{origins: map[string]bool{}, credentials: c.GetAllowCredentials(), serveOthers: c.GetServeOtherOrigins()}
	for _, o := range c.GetAllowedOrigins() {
		if o == "*" {
			out.anyOrigin = true
		}
		out.origins[strings.TrimSuffix(o, "/")] = true
	}
	allow := append(slices.Clone(baseAllowedHeaders), lower(c.GetAllowedHeaders())...)
	out.exposeList = append(slices.Clone(baseExposedHeaders), lower(c.GetExposedHeaders())...)
	out.allowHdrs = strings.Join(allow, ", ")
	out.exposeHdrs = strings.Join(out.exposeList, ", ")
	out.maxAge = strconv.Itoa(int(c.GetMaxAge().AsDuration().Seconds()))
	return out
}

func lower(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

func (c *CORS) allowed(origin string) bool {
	return c.anyOrigin || c.origins[origin]
}

// admits reports whether r may be served: it has no Origin, or an allowed
// one, or its own (a browser sends Origin with a same-origin POST too), or
// serve_other_origins is set.
func (c *CORS) admits(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || c.serveOthers || c.allowed(origin) || sameOrigin(origin, r)
}

// sameOrigin reports whether origin is r's own: the scheme of r's
// connection (https when the front door terminated TLS) and r's Host,
// default ports made explicit.
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http"
	if OverTLS(r.Context()) {
		scheme = "https"
	}
	host, ok := strings.CutPrefix(strings.ToLower(origin), scheme+"://")
	return ok && host != "" && hostPort(host, scheme) == hostPort(strings.ToLower(r.Host), scheme)
}

// hostPort is host[:port] with the scheme's default port when it has none.
func hostPort(h, scheme string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), port)
}

// handle applies CORS to r. It returns true when it answered r itself (a
// preflight); a request from another origin it leaves to admits.
func (c *CORS) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	preflight := isPreflight(r)
	if !c.allowed(origin) {
		if preflight {
			Error(w, codes.PermissionDenied, http.StatusForbidden, "edgegate: origin "+strconv.Quote(origin)+" is not allowed")
			return true
		}
		return false // no CORS headers: the browser withholds the answer
	}
	if c.anyOrigin && !c.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", c.allowHdrs)
		h.Set("Access-Control-Max-Age", c.maxAge)
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h.Set("Access-Control-Expose-Headers", c.exposeHdrs)
	return false
}

// mark adds to w the CORS headers of an answer to r from an allowed
// origin (none for another origin, or without CORS: c nil), for an answer
// the handler makes before handle runs.
func (c *CORS) mark(w http.ResponseWriter, r *http.Request) {
	if c == nil || isPreflight(r) {
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && c.allowed(origin) {
		c.handle(w, r)
	}
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" && r.Header.Get("Origin") != ""
}

// exposeWriter keeps the configured exposed headers in
// Access-Control-Expose-Headers when the wrapped handler rewrites it (the
// gRPC-Web door lists the response's own headers there).
type exposeWriter struct {
	http.ResponseWriter
	expose []string
	done   bool
}

func (e *exposeWriter) WriteHeader(code int) {
	if !e.done {
		e.done = true
		h := e.Header()
		have := map[string]bool{}
		var list []string
		for _, v := range h.Values("Access-Control-Expose-Headers") {
			for p := range strings.SplitSeq(v, ",") {
				p = strings.ToLower(strings.TrimSpace(p))
				if p != "" && !have[p] {
					have[p] = true
					list = append(list, p)
				}
			}
		}
		for _, p := range e.expose {
			if !have[p] {
				have[p] = true
				list = append(list, p)
			}
		}
		h.Set("Access-Control-Expose-Headers", strings.Join(list, ", "))
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exposeWriter) Write(b []byte) (int, error) {
	if !e.done {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(b)
}

func (e *exposeWriter) Flush() {
	if f, ok := e.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *exposeWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
