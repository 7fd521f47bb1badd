package frontdoor

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"

	"github.com/improbable-eng/grpc-web/go/grpcweb"

	"github.com/edgegate/edgegate/router"
)

// GRPCWeb translates gRPC-Web requests (binary and text) into gRPC calls
// on the core: the one seam where the gRPC-Web implementation can be
// swapped.
type GRPCWeb interface {
	// IsGRPCWebRequest reports whether r is a gRPC-Web call.
	IsGRPCWebRequest(r *http.Request) bool
	// ServeHTTP serves one gRPC-Web call. CORS is the caller's business.
	// The door has read and checked the body: r.Body is a
	// *router.WebBody, the frames decoded from base64 for gRPC-Web text
	// (the content type still says text, for the answer).
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}

// NewGRPCWeb returns the gRPC-Web door in front of h, a handler of gRPC
// over HTTP requests (application/grpc, the status in trailers; a
// grpc.Server, or router.InProcess), built on
// github.com/improbable-eng/grpc-web.
func NewGRPCWeb(h http.Handler) GRPCWeb {
	return improbable{grpcweb.WrapHandler(h)}
}

type improbable struct{ w *grpcweb.WrappedGrpcServer }

func (i improbable) IsGRPCWebRequest(r *http.Request) bool { return i.w.IsGrpcWebRequest(r) }

func (i improbable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b, ok := r.Body.(*router.WebBody); ok && router.IsWebText(r.Header.Get("Content-Type")) {
		// improbable-eng's wrapper decodes a text body itself, as one
		// base64 stream: give it the checked frames encoded so.
		enc := base64.StdEncoding.EncodeToString(b.Frames())
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
	}
	i.w.HandleGrpcWebRequest(w, r)
}
