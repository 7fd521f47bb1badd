package frontdoor

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/stack"
)

// HTTPOptions are the parts of one listener's HTTP handler.
type HTTPOptions struct {
	// REST serves REST/JSON; nil when the listener has no REST door.
	REST http.Handler
	// GRPCWeb serves gRPC-Web; nil when the listener has no gRPC-Web door.
	GRPCWeb *grpcweb.Door
	// CORS is applied to every request when set.
	CORS *CORS
	// MaxBodyBytes bounds REST request bodies (413 above).
	MaxBodyBytes int64
	// OpenAPIPath, when set, serves OpenAPI (GET) at that path: the
	// document OpenAPI returns (the configuration in force's).
	OpenAPIPath string
	OpenAPI     func() []byte
	// AccessLog gets one line per request, after the answer is written.
	AccessLog *accesslog.Logger
	// MaxInFlight bounds the requests served at once, counted once their
	// body has arrived; 0: no bound.
	MaxInFlight int64
	// BodyTimeout bounds how long a request's body may take to arrive
	// (408 after); 0: no bound.
	BodyTimeout time.Duration
	// MaxHeaderListBytes bounds a request's header list, counted as
	// HTTP/2 counts one (431 above); 0: no bound.
	MaxHeaderListBytes int
	// WAF, when set, inspects every REST, gRPC-Web, static and HTTP route
	// request, its body read, before it is served.
	WAF Firewall
	// Edge is what serves in front of the REST door (edge.go): answer
	// compression, static mounts and HTTP routes.
	Edge EdgeOptions
}

// NewHTTPHandler returns the handler of one listener's HTTP requests: CORS
// first, then gRPC-Web by content type, the OpenAPI spec by path, and REST
// for the rest. Each request's context carries its call record (door) and
// its peer, so the core's chain sees them as it sees native calls'.
func NewHTTPHandler(o HTTPOptions) http.Handler {
	return &handler{o: o}
}

type handler struct {
	o        HTTPOptions
	inFlight atomic.Int64
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	stack.Grow() // net/http runs each request on a new goroutine
	info := &callinfo.Info{
		Door:       callinfo.DoorREST,
		Start:      time.Now(),
		Peer:       r.RemoteAddr,
		UserAgent:  r.UserAgent(),
		HTTPMethod: r.Method,
		HTTPPath:   r.URL.Path,
	}
	rw, finish := sseErrors(rw, r)
	defer finish()
	w := &statusWriter{ResponseWriter: rw}
	if msg := framingRefusal(r); msg != "" {
		h.o.CORS.mark(w, r)
		h.refuseFraming(w, r, msg)
	} else if n := headerListSize(r); h.o.MaxHeaderListBytes > 0 && n > h.o.MaxHeaderListBytes {
		h.o.CORS.mark(w, r)
		h.refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("edgegate: request header list is %d bytes, over the limit of %d (limits.max_header_list_bytes)", n, h.o.MaxHeaderListBytes)))
	} else {
		h.serve(w, r, info)
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if info.EndHTTP(w.code) {
		h.o.AccessLog.Write(r.Context(), info, w.code)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, info *callinfo.Info) {
	if h.o.CORS != nil && h.o.CORS.handle(w, r) {
		return
	}
	if h.o.CORS != nil && !h.o.CORS.admits(r) {
		h.refuseOrigin(w, r)
		return
	}
	if h.o.CORS == nil && isPreflight(r) {
		// A browser asks before a cross-origin call; without http.cors
		// nothing answers it, and the browser only says the call failed.
		Error(w, codes.PermissionDenied, http.StatusForbidden, fmt.Sprintf(
			"edgegate: CORS preflight from origin %q, but CORS is not configured: list the origin in http.cors.allowed_origins", r.Header.Get("Origin")))
		return
	}
	ctx := r.Context()
	if addr := remoteAddr(r.RemoteAddr); addr != nil {
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr, LocalAddr: localAddr(r)})
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case h.o.GRPCWeb != nil && grpcweb.IsRequest(r):
		info.Door = callinfo.DoorGRPCWeb
		ctx = callinfo.NewContext(ctx, info)
		if h.o.CORS != nil && r.Header.Get("Origin") != "" && h.o.CORS.allowed(r.Header.Get("Origin")) {
			w = &exposeWriter{ResponseWriter: w, expose: h.o.CORS.exposeList}
		}
		done := h.bodyDeadline(w)
		frames, st := h.o.GRPCWeb.ReadBody(r)
		if late := done(); st != nil && late {
			st = bodyTimeout(w)
		}
		if st != nil {
			grpcweb.WriteError(w, r, st)
			return
		}
		if release, ok := h.slot(w, r); ok {
			defer release()
			w, inspected, ok := h.inspect(w, r, info, frames)
			if !ok {
				return
			}
			defer inspected()
			h.o.GRPCWeb.Serve(w, r.WithContext(ctx), frames)
		}
	case strings.HasPrefix(ct, "application/grpc"):
		// Native gRPC or gRPC-Web on a listener without that door.
		Error(w, codes.Unimplemented, http.StatusUnsupportedMediaType, fmt.Sprintf("edgegate: content type %q is not served on this listener", ct))
	case h.o.OpenAPIPath != "" && r.URL.Path == h.o.OpenAPIPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			Error(w, codes.Unimplemented, http.StatusMethodNotAllowed, "edgegate: method "+r.Method+" not allowed for "+r.URL.Path)
			return
		}
		if release, ok := h.slot(w, r); ok {
			defer release()
			w, done := h.compressed(w, r) // edge.go
			defer done()
			w.Header().Set("Content-Type", "application/json")
			doc := h.o.OpenAPI()
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			_, _ = w.Write(doc)
		}
	default:
		// Compression, compressed bodies, static mounts and HTTP routes
		// (edge.go), then REST.
		h.serveEdge(w, r.WithContext(callinfo.NewContext(ctx, info)))
	}
}

// serveREST serves r, whose context carries its call record, with the REST
// door, or answers 404 when the listener has none.
func (h *handler) serveREST(w http.ResponseWriter, r *http.Request) {
	if h.o.REST == nil {
		Error(w, codes.NotFound, http.StatusNotFound, fmt.Sprintf("edgegate: no route for %s %s", r.Method, r.URL.Path))
		return
	}
	if !h.limitBody(w, r) || !h.jsonBody(w, r) {
		return
	}
	if release, ok := h.slot(w, r); ok {
		defer release()
		w, inspected, ok := h.inspect(w, r, callinfo.FromContext(r.Context()), nil)
		if !ok {
			return
		}
		defer inspected()
		h.o.REST.ServeHTTP(w, r)
	}
}

// refuseOrigin answers a request from an origin CORS does not admit:
// PERMISSION_DENIED, as gRPC-Web (trailers-only) or as JSON (403).
func (h *handler) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	st := status.New(codes.PermissionDenied, fmt.Sprintf("edgegate: origin %q is not allowed: list it in http.cors.allowed_origins", r.Header.Get("Origin")))
	if h.o.GRPCWeb != nil && grpcweb.IsRequest(r) {
		grpcweb.WriteError(w, r, st)
		return
	}
	WriteStatus(w, st, http.StatusForbidden)
}

// slot takes one of the listener's in-flight slots for r, whose body (if
// any) has arrived; when they are all taken it answers r (shed) and
// returns false. release gives the slot back.
func (h *handler) slot(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if n := h.inFlight.Add(1); h.o.MaxInFlight > 0 && n > h.o.MaxInFlight {
		h.inFlight.Add(-1)
		h.shed(w, r)
		return nil, false
	}
	return func() { h.inFlight.Add(-1) }, true
}

// bodyDeadline bounds the reading of the request's body by BodyTimeout;
// done, called when the body is read, lifts the bound and reports whether
// it was reached.
func (h *handler) bodyDeadline(w http.ResponseWriter) (done func() bool) {
	if h.o.BodyTimeout <= 0 {
		return func() bool { return false }
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(h.o.BodyTimeout)
	if rc.SetReadDeadline(deadline) != nil {
		return func() bool { return false }
	}
	return func() bool {
		late := !time.Now().Before(deadline)
		_ = rc.SetReadDeadline(time.Time{})
		return late
	}
}

// bodyTimeout is the answer to a request whose body did not arrive within
// the body timeout (408; an HTTP/1.1 connection closes after it, its body
// left unread).
func bodyTimeout(w http.ResponseWriter) *status.Status {
	w.Header().Set("Connection", "close")
	return status.New(codes.DeadlineExceeded, "edgegate: the request body did not arrive within http.request_body_timeout")
}

// refuse answers r with st: trailers-only for gRPC-Web, else JSON with
// the HTTP status code.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, code int, st *status.Status) {
	if h.o.GRPCWeb != nil && grpcweb.IsRequest(r) {
		grpcweb.WriteError(w, r, st)
		return
	}
	WriteStatus(w, st, code)
}

// headerListSize is the size of r's header list as HTTP/2 counts one
// (RFC 9113 §6.5.2: each field's name and value and 32 bytes), the
// pseudo-header fields included.
func headerListSize(r *http.Request) int {
	n := len(r.Method) + len(r.Host) + len(r.URL.RequestURI()) + len("https") + 4*32 + 4*len(":method")
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// refuseFraming answers an HTTP/1.1 request whose framing is refused (see
// framingRefusal): INVALID_ARGUMENT, as gRPC-Web (trailers-only) or as
// JSON (400), and the connection is closed after the answer.
func (h *handler) refuseFraming(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Connection", "close")
	st := status.New(codes.InvalidArgument, msg)
	if h.o.GRPCWeb != nil && grpcweb.IsRequest(r) {
		grpcweb.WriteError(w, r, st)
		return
	}
	WriteStatus(w, st, http.StatusBadRequest)
}

// shed answers a request over the in-flight limit: UNAVAILABLE, as
// gRPC-Web (trailers-only) or as JSON (503), with Retry-After.
func (h *handler) shed(w http.ResponseWriter, r *http.Request) {
	msg := fmt.Sprintf("edgegate: %d requests in flight, the listener's limit; retry", h.o.MaxInFlight)
	w.Header().Set("Retry-After", "1")
	if h.o.GRPCWeb != nil && grpcweb.IsRequest(r) {
		grpcweb.WriteError(w, r, status.New(codes.Unavailable, msg))
		return
	}
	Error(w, codes.Unavailable, http.StatusServiceUnavailable, msg)
}

// statusWriter remembers the status of the answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// limitBody reads a REST body of at most MaxBodyBytes into memory, so that
// an oversized body is refused with 413 before anything is forwarded. It
// answers the request itself and returns false when the body is refused.
func (h *handler) limitBody(w http.ResponseWriter, r *http.Request) bool {
	max := h.o.MaxBodyBytes
	if max <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	tooLarge := func() bool {
		Error(w, codes.InvalidArgument, http.StatusRequestEntityTooLarge, fmt.Sprintf("edgegate: request body is larger than %d bytes", max))
		return false
	}
	if r.ContentLength > max {
		return tooLarge()
	}
	done := h.bodyDeadline(w)
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	_ = r.Body.Close()
	if late := done(); err != nil && late {
		WriteStatus(w, bodyTimeout(w), http.StatusRequestTimeout)
		return false
	}
	if err != nil {
		Error(w, codes.InvalidArgument, http.StatusBadRequest, "edgegate: reading the request body: "+err.Error())
		return false
	}
	if int64(len(body)) > max {
		return tooLarge()
	}
	r.Body = restBody{bytes.NewReader(body), body}
	r.ContentLength = int64(len(body))
	return true
}

// jsonBody refuses a REST request whose body is not JSON by its content
// type (application/json or application/*+json, parameters allowed; a
// request without a body needs none, and a binding whose body is a
// google.api.HttpBody takes any): 415, with Accept, before anything
// is forwarded. A browser sends a cross-site text/plain or form body
// without asking first (no preflight); refused here, it never reaches the
// API. It answers the request itself and returns false when it refuses.
func (h *handler) jsonBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	types := r.Header.Values("Content-Type")
	if len(types) == 1 && isJSON(types[0]) {
		return true
	}
	if raw, ok := h.o.REST.(interface{ AcceptsRawBody(*http.Request) bool }); ok && raw.AcceptsRawBody(r) {
		return true // a google.api.HttpBody: any content type
	}
	got := "none"
	if len(types) > 0 {
		got = strconv.Quote(strings.Join(types, ", "))
	}
	w.Header().Set("Accept", "application/json")
	Error(w, codes.InvalidArgument, http.StatusUnsupportedMediaType, "edgegate: a REST request body must be JSON (Content-Type: application/json); its content type is "+got)
	return false
}

// isJSON reports whether a Content-Type value is JSON: application/json or
// application/*+json, with any parameters.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || len(sub) > len("+json") && strings.HasSuffix(sub, "+json"))
}

func remoteAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return nil
}
