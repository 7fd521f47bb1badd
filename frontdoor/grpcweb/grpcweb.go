// Package grpcweb is the gRPC-Web door, the whole protocol in one place:
// detection by content type, the checks of a request body (base64 in text
// mode, complete length-prefixed frames, the size limit), the framing of
// the answer (messages, then a trailer frame of "key: value" lines), text
// mode, trailers-only answers for errors, the headers a browser needs to
// read the answer (Access-Control-Expose-Headers), and the dispatch of a
// call: the gateway's own services (health, reflection) through
// improbable-eng's grpc-web wrapper to its grpc.Server, every proxied
// method to the in-process core, on the request's goroutine.
//
// The in-process path also serves gRPC over HTTP in the shape of gRPC over
// HTTP/2 (content type application/grpc, the status in HTTP trailers),
// with the same code.
package grpcweb

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/improbable-eng/grpc-web/go/grpcweb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/router"
)

// The gRPC-Web content types (a request's may end in +proto).
const (
	contentType     = "application/grpc-web"
	textContentType = "application/grpc-web-text"
)

// IsRequest reports whether r is a gRPC-Web call (by its content type).
func IsRequest(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), contentType)
}

// IsText reports whether a request's content type is gRPC-Web text
// (base64).
func IsText(ct string) bool {
	return strings.HasPrefix(ct, textContentType)
}

// Options are the parts of a Door.
type Options struct {
	// Core runs proxied calls: the chain and the proxy, in-process.
	Core *router.InProcess
	// Server serves the gateway's own services (health, reflection); nil
	// for none. Own lists their names; nil: every service registered on
	// Server.
	Server *grpc.Server
	Own    []string
	// MaxBodyBytes bounds a request body (RESOURCE_EXHAUSTED above); 0:
	// 4 MiB.
	MaxBodyBytes int64
	// MaxMessageBytes bounds each message either way (RESOURCE_EXHAUSTED
	// above); 0: no bound.
	MaxMessageBytes int
	// IsUnary reports whether a method ("/pkg.Service/Method") answers
	// with one message (the schema knows it so); nil: none known.
	IsUnary func(method string) bool
	// ForwardHeaders are the request headers that become call metadata
	// besides the standard ones (authorization, x-request-id, traceparent,
	// tracestate), which always do: the auth providers' headers and
	// http.grpc_web.forward_request_headers. Every other header (a
	// browser's cookie, origin, referer, sec-fetch-*, …) is left out.
	ForwardHeaders []string
	// Log gets, at debug level, the names of the headers a call's
	// metadata left out; nil: not logged.
	Log *slog.Logger
}

// standardHeaders are the request headers of a gRPC-Web call that are
// always call metadata: the standard gRPC metadata a client sends. The
// gRPC-Web protocol's own headers (content-type, grpc-timeout, the other
// grpc-* ones, x-grpc-web, x-user-agent) are not metadata; user-agent is
// the call's, for its record, and never forwarded.
var standardHeaders = []string{"authorization", "x-request-id", "traceparent", "tracestate"}

// Door serves gRPC-Web calls. It is safe for concurrent use.
type Door struct {
	o       Options
	own     map[string]bool
	wrap    *grpcweb.WrappedGrpcServer // improbable-eng's, in front of Server
	forward map[string]bool            // the headers that are metadata; nil: all (ServeCore)
}

// New returns the door of o.
func New(o Options) *Door {
	d := &Door{o: o, own: map[string]bool{}, forward: map[string]bool{}}
	for _, h := range slices.Concat(standardHeaders, o.ForwardHeaders) {
		d.forward[strings.ToLower(h)] = true
	}
	if o.MaxBodyBytes <= 0 {
		d.o.MaxBodyBytes = 4 << 20
	}
	if o.Server != nil {
		d.wrap = grpcweb.WrapServer(o.Server)
		if o.Own == nil {
			for name := range o.Server.GetServiceInfo() {
				d.own[name] = true
			}
		}
	}
	for _, name := range o.Own {
		d.own[name] = true
	}
	return d
}

// ServeHTTP serves one gRPC-Web call. CORS is the caller's business. The
// body is read and checked first: a malformed or oversized body is
// answered here, trailers-only, and nothing is forwarded. A call of a
// method known to answer with one message is written whole when it ends
// (one write instead of the headers, the message and the trailers flushed
// one by one); others are flushed message by message.
func (d *Door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	frames, st := d.ReadBody(r)
	if st != nil {
		WriteError(w, r, st)
		return
	}
	d.Serve(w, r, frames)
}

// Serve serves the call of r, whose body ReadBody has read and checked
// (frames). CORS is the caller's business.
func (d *Door) Serve(w http.ResponseWriter, r *http.Request, frames []byte) {
	if svc, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); d.own[svc] && d.wrap != nil {
		d.serveOwn(w, r, frames)
		return
	}
	if d.o.IsUnary != nil && d.o.IsUnary(r.URL.Path) {
		w = holdWriter{w}
	}
	d.serveCore(w, r, &body{frames: frames})
}

// serveOwn hands a call of the gateway's own services to improbable-eng's
// wrapper, which decodes a text body itself, as one base64 stream: it
// gets the checked frames encoded so.
func (d *Door) serveOwn(w http.ResponseWriter, r *http.Request, frames []byte) {
	var b string
	if IsText(r.Header.Get("Content-Type")) {
		b = base64.StdEncoding.EncodeToString(frames)
	} else {
		b = string(frames)
	}
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
	d.wrap.HandleGrpcWebRequest(w, r)
}

// holdWriter ignores flushes: what is written goes out when the handler
// returns.
type holdWriter struct{ http.ResponseWriter }

func (holdWriter) Flush()                        {}
func (h holdWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// WriteError answers r, a gRPC-Web request, with st alone: a trailers-only
// answer (status 200, the status in the headers, readable by a browser).
func WriteError(w http.ResponseWriter, r *http.Request, st *status.Status) {
	writeTrailersOnly(w, responseType(r.Header.Get("Content-Type")), nil, nil, st)
}
