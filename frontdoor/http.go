package frontdoor

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"

	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/stack"
	"github.com/edgegate/edgegate/router"
)

// HTTPOptions are the parts of one listener's HTTP handler.
type HTTPOptions struct {
	// REST serves REST/JSON; nil when the listener has no REST door.
	REST http.Handler
	// GRPCWeb serves gRPC-Web; nil when the listener has no gRPC-Web door.
	GRPCWeb GRPCWeb
	// CORS is applied to every request when set.
	CORS *CORS
	// MaxBodyBytes bounds REST request bodies (413 above).
	MaxBodyBytes int64
	// OpenAPIPath, when set, serves OpenAPI (GET) at that path.
	OpenAPIPath string
	OpenAPI     []byte
	// AccessLog gets one line per request, after the answer is written.
	AccessLog *accesslog.Logger
	// MaxInFlight bounds the requests served at once; 0: no bound.
	MaxInFlight int64
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
	w := &statusWriter{ResponseWriter: rw}
	if n := h.inFlight.Add(1); h.o.MaxInFlight > 0 && n > h.o.MaxInFlight {
		h.shed(w, r)
	} else {
		h.serve(w, r, info)
	}
	h.inFlight.Add(-1)
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
	ctx := r.Context()
	if addr := remoteAddr(r.RemoteAddr); addr != nil {
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr, LocalAddr: localAddr(r)})
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case h.o.GRPCWeb != nil && h.o.GRPCWeb.IsGRPCWebRequest(r):
		info.Door = callinfo.DoorGRPCWeb
		if !h.checkWebBody(w, r) {
			return
		}
		ctx = callinfo.NewContext(ctx, info)
		if h.o.CORS != nil && r.Header.Get("Origin") != "" && h.o.CORS.allowed(r.Header.Get("Origin")) {
			w = &exposeWriter{ResponseWriter: w, expose: h.o.CORS.exposeList}
		}
		if router.KnownUnary(r.URL.Path) {
			// One answer message: send the answer whole when the call
			// ends, one write, instead of flushing the headers, the
			// message and the trailers one by one.
			w = holdWriter{w}
		}
		h.o.GRPCWeb.ServeHTTP(w, r.WithContext(ctx))
	case strings.HasPrefix(ct, "application/grpc"):
		// Native gRPC or gRPC-Web on a listener without that door.
		Error(w, codes.Unimplemented, http.StatusUnsupportedMediaType, fmt.Sprintf("edgegate: content type %q is not served on this listener", ct))
	case h.o.OpenAPIPath != "" && r.URL.Path == h.o.OpenAPIPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			Error(w, codes.Unimplemented, http.StatusMethodNotAllowed, "edgegate: method "+r.Method+" not allowed for "+r.URL.Path)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(h.o.OpenAPI)))
		_, _ = w.Write(h.o.OpenAPI)
	case h.o.REST != nil:
		if !h.limitBody(w, r) {
			return
		}
		ctx = callinfo.NewContext(ctx, info)
		h.o.REST.ServeHTTP(w, r.WithContext(ctx))
	default:
		Error(w, codes.NotFound, http.StatusNotFound, fmt.Sprintf("edgegate: no route for %s %s", r.Method, r.URL.Path))
	}
}

// shed answers a request over the in-flight limit: UNAVAILABLE, as
// gRPC-Web (trailers-only) or as JSON (503), with Retry-After.
func (h *handler) shed(w http.ResponseWriter, r *http.Request) {
	msg := fmt.Sprintf("edgegate: %d requests in flight, the listener's limit; retry", h.o.MaxInFlight)
	w.Header().Set("Retry-After", "1")
	if h.o.GRPCWeb != nil && h.o.GRPCWeb.IsGRPCWebRequest(r) {
		hdr := w.Header()
		hdr.Set("Content-Type", r.Header.Get("Content-Type"))
		hdr.Set("Grpc-Status", strconv.Itoa(int(codes.Unavailable)))
		hdr.Set("Grpc-Message", router.EncodeGrpcMessage(msg))
		w.WriteHeader(http.StatusOK)
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

// holdWriter ignores flushes: what is written goes out when the handler
// returns.
type holdWriter struct{ http.ResponseWriter }

func (holdWriter) Flush()                        {}
func (h holdWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

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
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	_ = r.Body.Close()
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

// checkWebBody reads a gRPC-Web request body (unary and server-streaming
// calls send it whole), bounded by MaxBodyBytes, and checks that it is
// well-formed: valid base64 in text mode, and a sequence of complete
// length-prefixed frames. A malformed body is answered here, trailers-only,
// with INVALID_ARGUMENT (RESOURCE_EXHAUSTED when too large) and a message
// that says what is wrong; nothing is forwarded. It returns true, with the
// body restored, when the body is good.
func (h *handler) checkWebBody(w http.ResponseWriter, r *http.Request) bool {
	max := h.o.MaxBodyBytes
	if max <= 0 {
		max = 4 << 20
	}
	ct := r.Header.Get("Content-Type")
	text := router.IsWebText(ct)
	limit := max + 5
	if text {
		limit = (limit + 2) / 3 * 4
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	fail := func(code codes.Code, msg string) bool {
		hdr := w.Header()
		hdr.Set("Content-Type", ct)
		hdr.Set("Grpc-Status", strconv.Itoa(int(code)))
		hdr.Set("Grpc-Message", router.EncodeGrpcMessage(msg))
		hdr.Add("Access-Control-Expose-Headers", "grpc-status, grpc-message")
		w.WriteHeader(http.StatusOK)
		return false
	}
	if err != nil {
		return fail(codes.InvalidArgument, "edgegate: reading the gRPC-Web request body: "+err.Error())
	}
	if int64(len(raw)) > limit {
		return fail(codes.ResourceExhausted, fmt.Sprintf("edgegate: gRPC-Web request body is larger than %d bytes", max))
	}
	frames := raw
	if text {
		frames, err = decodeBase64Chunks(raw)
		if err != nil {
			return fail(codes.InvalidArgument, "edgegate: malformed gRPC-Web text body: "+err.Error())
		}
	}
	if msg := checkFrames(frames); msg != "" {
		return fail(codes.InvalidArgument, "edgegate: malformed gRPC-Web body: "+msg)
	}
	// The frames go on decoded (router.WebBody): the body is not decoded
	// again, and what passed this check is what the call reads.
	r.Body = router.NewWebBody(frames)
	r.ContentLength = int64(len(frames))
	return true
}

// decodeBase64Chunks decodes gRPC-Web text: standard base64, possibly
// several padded chunks one after another.
func decodeBase64Chunks(b []byte) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		end := len(b)
		if i := bytes.IndexByte(b, '='); i >= 0 {
			end = i
			for end < len(b) && b[end] == '=' {
				end++
			}
		}
		chunk := b[:end]
		b = b[end:]
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(chunk)))
		n, err := base64.StdEncoding.Decode(dec, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, dec[:n]...)
	}
	return out, nil
}

// checkFrames returns what is wrong with a sequence of gRPC-Web request
// frames, or "".
func checkFrames(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for off := 0; off < len(b); {
		if len(b)-off < 5 {
			return fmt.Sprintf("frame header at byte %d is %d bytes, want 5", off, len(b)-off)
		}
		if b[off]&0x80 != 0 {
			return fmt.Sprintf("frame at byte %d is a trailer frame; requests carry none", off)
		}
		n := int(b[off+1])<<24 | int(b[off+2])<<16 | int(b[off+3])<<8 | int(b[off+4])
		if n > len(b)-off-5 {
			return fmt.Sprintf("frame at byte %d declares %d bytes, %d present", off, n, len(b)-off-5)
		}
		off += 5 + n
	}
	return ""
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
