package frontdoor

import (
	"net/http"

	"github.com/improbable-eng/grpc-web/go/grpcweb"
	"google.golang.org/grpc"
)

// GRPCWeb translates gRPC-Web requests (binary and text) into calls on the
// core grpc.Server: the one seam where the gRPC-Web implementation can be
// swapped.
type GRPCWeb interface {
	// IsGRPCWebRequest reports whether r is a gRPC-Web call.
	IsGRPCWebRequest(r *http.Request) bool
	// ServeHTTP serves one gRPC-Web call. CORS is the caller's business.
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}

// NewGRPCWeb returns the gRPC-Web door of s, built on
// github.com/improbable-eng/grpc-web. The calls it makes run s's
// interceptor chain like native ones.
func NewGRPCWeb(s *grpc.Server) GRPCWeb {
	return improbable{grpcweb.WrapServer(s)}
}

type improbable struct{ w *grpcweb.WrappedGrpcServer }

func (i improbable) IsGRPCWebRequest(r *http.Request) bool { return i.w.IsGrpcWebRequest(r) }

func (i improbable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.w.HandleGrpcWebRequest(w, r)
}
