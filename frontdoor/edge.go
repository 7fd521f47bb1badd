package frontdoor

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/frontdoor/compress"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// EdgeOptions are the HTTP offloads in front of the REST door.
type EdgeOptions struct {
	// Compress compresses the answers of the REST door, the static mounts
	// and the HTTP routes; nil: none.
	Compress *compress.Compressor
	// Route returns the handler of the static mount or HTTP route that r
	// is for, in the configuration in force, or nil when r is the REST
	// door's; nil: none. The handler gets r with its body decoded.
	Route func(r *http.Request) http.Handler
}

// serveEdge serves a request that is neither gRPC-Web nor the OpenAPI
// spec, whose context carries its call record: its answer compressed as
// the client accepts, its compressed body decoded (at most
// http.max_body_bytes of it decoded: 413 above, and nothing forwarded),
// then by the static mount or HTTP route it is for, or by the REST door.
func (h *handler) serveEdge(w http.ResponseWriter, r *http.Request) {
	e := h.o.Edge
	w, done := h.compressed(w, r)
	defer done()
	if compress.IsEncoded(r) && !h.decodeBody(w, r) {
		return
	}
	if e.Route != nil {
		if next := e.Route(r); next != nil {
			if release, ok := h.slot(w, r); ok {
				defer release()
				w, inspected, ok := h.inspect(w, r, callinfo.FromContext(r.Context()), nil)
				if !ok {
					return
				}
				defer inspected()
				next.ServeHTTP(w, r)
			}
			return
		}
	}
	h.serveREST(w, r)
}

// compressed returns the writer of r's answer on w, compressed as the
// client accepts when compression is configured; done ends the answer.
func (h *handler) compressed(w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, done func()) {
	if h.o.Edge.Compress == nil {
		return w, func() {}
	}
	cw := h.o.Edge.Compress.Wrap(w, r)
	return cw, func() { _ = cw.Close() }
}

// decodeBody decodes r's compressed body (compress.DecodeBody), bounded
// by MaxBodyBytes (by 256 MiB without one). It answers the request itself
// and returns false when it refuses the body: 413 for one that decodes
// larger than the bound, 415 for an encoding it does not know, 400 for a
// corrupt one.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request) bool {
	limit := h.o.MaxBodyBytes
	if limit <= 0 {
		limit = 256 << 20
	}
	done := h.bodyDeadline(w)
	err := compress.DecodeBody(r, limit)
	late := done()
	switch {
	case err == nil:
		return true
	case late:
		WriteStatus(w, bodyTimeout(w), http.StatusRequestTimeout)
	case errors.Is(err, compress.ErrTooLarge):
		Error(w, codes.InvalidArgument, http.StatusRequestEntityTooLarge, fmt.Sprintf("edgegate: request body is larger than %d bytes decoded (http.max_body_bytes)", limit))
	case errors.Is(err, compress.ErrUnsupported):
		w.Header().Set("Accept-Encoding", "gzip, zstd, br")
		Error(w, codes.InvalidArgument, http.StatusUnsupportedMediaType, "edgegate: "+err.Error()+"; the gateway decodes gzip, zstd and br")
	default:
		Error(w, codes.InvalidArgument, http.StatusBadRequest, "edgegate: "+err.Error())
	}
	return false
}
