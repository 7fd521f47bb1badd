package frontdoor

import (
	"net/http"

	"github.com/improbable-eng/grpc-web/go/grpcweb"
)

// GRPCWeb translates gRPC-Web requests (binary and text) into gRPC calls
// on the core: the one seam where the gRPC-Web implementation can be
// swapped.
type GRPCWeb interface {
	// IsGRPCWebRequest reports whether r is a gRPC-Web call.
	IsGRPCWebRequest(r *http.Request) bool
	// ServeHTTP serves one gRPC-Web call. CORS is the caller's business.
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
	i.w.HandleGrpcWebRequest(w, r)
}
