// Package httproute is the gateway's plain HTTP routes: requests matched
// by host, path prefix or template, method and headers, run through the
// gateway's one policy chain (IP lists, authentication and rules, rate
// limits, access log, metrics, tracing) as a call of the route, then
// reverse-proxied (net/http/httputil.ReverseProxy with Rewrite) to an
// HTTP cluster (package upstream/httpcluster).
//
// The proxy strips the hop-by-hop headers, replaces the forwarding
// headers (X-Forwarded-For, -Proto, -Host, X-Real-IP, Forwarded) with the
// ones the gateway's trusted-proxy rule computed, adds the trace context
// and the forwarded identity, streams bodies both ways without buffering
// (every write of the upstream is flushed), and passes WebSocket (and
// other) upgrades through.
package httproute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/callmeta"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/upstream/httpcluster"
)

// Options are what the routes are built with.
type Options struct {
	// Core runs the chain with Handler as its handler.
	Core *router.InProcess
	// Inject adds what the proxy adds to every forwarded call (trace
	// context, forwarded identity) to md; nil: nothing.
	Inject func(ctx context.Context, md metadata.MD)
	// Drop are the identity header names a client may not send.
	Drop []string
	// Log gets the proxy's errors (at debug level: the caller gets them).
	Log *slog.Logger
}

// Routes are the HTTP routes of one configuration, in its order.
type Routes struct {
	list []*Route
	o    Options
}

// Route is one HTTP route.
type Route struct {
	name    string
	m       *matcher
	strip   string // the prefix removed from the upstream path; "" for none
	cluster *httpcluster.Cluster
	proxy   *httputil.ReverseProxy
	o       *Options
}

// New builds the HTTP routes of cfg (loaded; names filled in) sending to
// clusters, by name. Errors name their field path.
func New(cfg *configv1.Config, clusters map[string]*httpcluster.Cluster, o Options) (*Routes, []error) {
	rs := &Routes{o: o}
	if rs.o.Log == nil {
		rs.o.Log = slog.Default()
	}
	var errs []error
	for i, rc := range cfg.GetHttpRoutes() {
		p := fmt.Sprintf("http_routes[%d]", i)
		m, err := newMatcher(rc.GetMatch(), p+".match")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := clusters[rc.GetCluster()]
		if c == nil {
			errs = append(errs, config.FieldErrorf(p+".cluster", "no http_clusters entry %q", rc.GetCluster()))
			continue
		}
		rt := &Route{name: rc.GetName(), m: m, cluster: c, o: &rs.o}
		if rc.GetStripPrefix() {
			if m.prefix == "" {
				errs = append(errs, config.FieldErrorf(p+".strip_prefix", "needs match.path_prefix"))
				continue
			}
			rt.strip = strings.TrimSuffix(m.prefix, "/")
		}
		rt.proxy = &httputil.ReverseProxy{
			Rewrite:       rt.rewrite,
			Transport:     c,
			FlushInterval: -1, // every write at once: streams both ways
			ErrorHandler:  rt.proxyError,
			ModifyResponse: func(resp *http.Response) error {
				if c, _ := resp.Request.Context().Value(callKey{}).(*call); c != nil && c.timer != nil {
					c.timer.Stop()
				}
				return nil
			},
			ErrorLog: slog.NewLogLogger(rs.o.Log.Handler(), slog.LevelDebug),
		}
		rs.list = append(rs.list, rt)
	}
	return rs, errs
}

// Match returns the first route that r is for, or nil.
func (rs *Routes) Match(r *http.Request) *Route {
	if rs == nil {
		return nil
	}
	for _, rt := range rs.list {
		if rt.m.matches(r) {
			return rt
		}
	}
	return nil
}

// Name is the route's name.
func (rt *Route) Name() string { return rt.name }

type callKey struct{}

// call is one request on an HTTP route, from the door to the chain's
// handler.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	route  *Route
	stream *stream
	wrote  bool        // the proxy answered (the door must not)
	err    error       // the proxy's failure, as a status, for the call record
	timer  *time.Timer // the route's timeout, until the answer's headers; nil: none
}

// ServeHTTP runs r, whose context carries its call record, through the
// chain as a call of the route; the chain's handler (Handler) proxies it.
// A refusal of the chain is answered with its status (the mapped HTTP
// status, a google.rpc.Status JSON body, and the headers the chain set:
// rate limit headers, Retry-After, WWW-Authenticate), and nothing is
// forwarded.
func (rt *Route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if info := callinfo.FromContext(r.Context()); info != nil {
		info.Door = callinfo.DoorHTTP
		info.SetClientForwarding(callinfo.HTTPForwarding(r.Header, r.Host))
	}
	md := make(metadata.MD, len(r.Header)+3)
	for k, vs := range r.Header {
		md[strings.ToLower(k)] = append([]string(nil), vs...)
	}
	// The request line for the policies (CEL rules read headers[":method"]
	// and headers[":path"]), as HTTP/2 carries it.
	md[":authority"] = []string{r.Host}
	md[":method"] = []string{r.Method}
	md[":path"] = []string{r.URL.RequestURI()}
	c := &call{w: w, r: r, route: rt}
	s := &stream{method: router.HTTPMethodPrefix + rt.name, call: c}
	c.stream = s
	ctx := router.WithHTTPRoute(context.WithValue(r.Context(), callKey{}, c), rt.name)
	s.ctx = grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(ctx, md), callmeta.TransportStream{S: s})
	err := rt.o.Core.Serve(s, s.method, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true})
	if err != nil && !c.wrote {
		s.writeHeader()
		frontdoor.WriteStatus(w, status.Convert(err), 0)
	}
}

// Handler is the chain's handler of the calls of HTTP routes: it proxies
// the call's request to its route's cluster, within the route's timeout,
// and returns the proxy's failure (UNAVAILABLE, DEADLINE_EXCEEDED) after
// answering it.
func Handler(_ any, ss grpc.ServerStream) error {
	ctx := ss.Context()
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return status.Error(codes.Internal, "edgegate: not a call of an HTTP route")
	}
	_, rt := router.FromContext(ctx)
	if rt == nil {
		return status.Errorf(codes.NotFound, "edgegate: HTTP route %q is not in the configuration in force", c.route.name)
	}
	if rt.Timeout > 0 {
		// The timeout bounds the wait for the answer's headers, not the
		// body that follows (a stream, a WebSocket).
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		c.timer = time.AfterFunc(rt.Timeout, func() { cancel(context.DeadlineExceeded) })
		defer c.timer.Stop()
	}
	if info := callinfo.FromContext(ctx); info != nil {
		info.SetRoute(rt.Name, "http:"+rt.Cluster, rt.DisableAccessLog)
	}
	c.stream.writeHeader()
	c.wrote = true
	c.route.proxy.ServeHTTP(c.w, c.r.WithContext(ctx))
	return c.err
}

// rewrite makes the upstream request: the client's Host kept, the prefix
// stripped, the forwarding headers the gateway's, the identity headers
// the gateway's only, the trace context added.
func (rt *Route) rewrite(pr *httputil.ProxyRequest) {
	ctx := pr.In.Context()
	out := pr.Out
	out.Host = pr.In.Host
	out.URL.Scheme, out.URL.Host = rt.cluster.Scheme(), rt.cluster.Name()
	if rt.strip != "" {
		p := strings.TrimPrefix(out.URL.Path, rt.strip)
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		out.URL.Path, out.URL.RawPath = p, ""
	}
	h := out.Header
	h.Del("Forwarded")
	h.Del("X-Real-Ip")
	for _, k := range rt.o.Drop {
		if k != "" {
			h.Del(k)
		}
	}
	md := metadata.MD{}
	if info := callinfo.FromContext(ctx); info != nil {
		for k, vs := range info.ForwardHeaders {
			md[k] = vs
		}
	}
	if rt.o.Inject != nil {
		rt.o.Inject(ctx, md)
	}
	for k, vs := range md {
		h[http.CanonicalHeaderKey(k)] = vs
	}
}

// proxyError answers a request the cluster did not answer: 504
// (DEADLINE_EXCEEDED) when the route's timeout or the cluster's
// response_header_timeout passed, 503 (UNAVAILABLE) when no endpoint is
// healthy, else 502 (UNAVAILABLE).
func (rt *Route) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	c, _ := r.Context().Value(callKey{}).(*call)
	var ne net.Error
	var st *status.Status
	code := http.StatusBadGateway
	switch {
	case errors.Is(context.Cause(r.Context()), context.DeadlineExceeded):
		st = status.New(codes.DeadlineExceeded, fmt.Sprintf("edgegate: HTTP route %q: the upstream did not answer within the route's timeout", rt.name))
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		st = status.New(codes.Canceled, "edgegate: the client went away")
		code = 499
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		st = status.New(codes.DeadlineExceeded, fmt.Sprintf("edgegate: HTTP route %q: the upstream did not answer in time", rt.name))
		code = http.StatusGatewayTimeout
	case errors.Is(err, httpcluster.ErrNoHealthy):
		st = status.New(codes.Unavailable, fmt.Sprintf("edgegate: HTTP route %q: no healthy endpoint in cluster %q", rt.name, rt.cluster.Name()))
		code = http.StatusServiceUnavailable
	default:
		st = status.New(codes.Unavailable, fmt.Sprintf("edgegate: HTTP route %q: the upstream cannot be reached", rt.name))
	}
	rt.o.Log.Debug("http route upstream error", slog.String("route", rt.name), slog.Any("err", err))
	if c != nil {
		c.err = st.Err()
	}
	frontdoor.WriteStatus(w, st, code)
}

// stream is the chain's view of an HTTP route's call: it carries the
// headers the chain sets (rate limit headers, x-request-id) to the answer;
// it has no messages.
type stream struct {
	ctx    context.Context
	method string
	call   *call
	callmeta.Meta
}

func (s *stream) Context() context.Context { return s.ctx }
func (s *stream) Method() string           { return s.method }

func (s *stream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *stream) SendMsg(any) error {
	return status.Error(codes.Internal, "edgegate: an HTTP route's call has no messages")
}

func (s *stream) RecvMsg(any) error {
	return status.Error(codes.Internal, "edgegate: an HTTP route's call has no messages")
}

// writeHeader puts the headers the chain set on the answer, once.
func (s *stream) writeHeader() {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.HeaderSent {
		return
	}
	s.HeaderSent = true
	h := s.call.w.Header()
	for k, vs := range s.Header {
		if k == "" || k[0] == ':' {
			continue
		}
		h[http.CanonicalHeaderKey(k)] = vs
	}
}
