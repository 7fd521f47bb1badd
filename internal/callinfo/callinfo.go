// Package callinfo carries the facts of one call through the gateway: the
// door it came in by, the route and cluster it went to, the bytes it moved,
// how it ended. The first to see a call creates the record (the HTTP door
// for REST and gRPC-Web, the first interceptor for native gRPC); the chain
// and the router fill it in; the access log and metrics read it.
package callinfo

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
)

// The doors a call can come in by.
const (
	DoorGRPC    = "grpc"
	DoorGRPCWeb = "grpc-web"
	DoorREST    = "rest"
)

// Info is the record of one call. Its plain fields are written before the
// call reaches the upstream, or when it ends, by the goroutine that runs
// the chain, and read after the call ends; the byte counters may be written
// by the proxy's second goroutine and are atomic.
type Info struct {
	Door      string
	Start     time.Time
	RequestID string
	TraceID   string
	// Method is the gRPC method, "/pkg.Service/Method"; empty when the
	// call never reached the chain (an HTTP request refused before it).
	Method string
	// Route and Cluster are the route and upstream cluster the router
	// chose; Endpoint is the upstream address that served the call.
	Route    string
	Cluster  string
	Endpoint string
	// NoAccessLog is set when the call's route disables the access log.
	NoAccessLog bool
	// Err is how the chain's handler ended (nil: OK).
	Err error
	// Principal is the authenticated caller, when there is one.
	Principal string
	// Peer is the client's address; UserAgent its user agent. ClientIP
	// is the client's IP: the peer's, or, behind a trusted proxy, the one
	// X-Forwarded-For names.
	Peer      string
	ClientIP  string
	UserAgent string
	// HTTPMethod and HTTPPath are the request line of an HTTP door's call.
	HTTPMethod string
	HTTPPath   string

	BytesIn  atomic.Int64 // message bytes received from the client
	BytesOut atomic.Int64 // message bytes sent to the client

	// HTTPStatus is the HTTP door's answer; read it after EndChain or
	// EndHTTP said so.
	HTTPStatus int

	// incoming is the call's incoming metadata as the chain's first
	// interceptor captured it (SetIncoming); read-only.
	incoming metadata.MD

	mu         sync.Mutex
	entered    bool
	chainEnded bool
	httpEnded  bool
}

// Enter marks the call as having entered the chain (from the chain's
// goroutine).
func (i *Info) Enter() {
	i.mu.Lock()
	i.entered = true
	i.mu.Unlock()
}

// EndChain marks the chain's end of the call, after the chain wrote its
// last field. It reports whether the caller is the one to write the
// call's log line: always for native gRPC; for an HTTP door, when the door
// has already answered (gRPC-Web can answer before the chain's goroutine
// ends).
func (i *Info) EndChain() (last bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.chainEnded = true
	return i.Door == DoorGRPC || i.httpEnded
}

// EndHTTP records the HTTP door's answer. It reports whether the caller is
// the one to write the call's log line: when the chain has ended, or was
// never entered.
func (i *Info) EndHTTP(status int) (last bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.httpEnded = true
	i.HTTPStatus = status
	return i.chainEnded || !i.entered
}

type key struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// FromContext returns the call's record, or nil when ctx has none.
func FromContext(ctx context.Context) *Info {
	info, _ := ctx.Value(key{}).(*Info)
	return info
}

// Ensure returns the record in ctx, creating one for door when there is
// none. The returned context carries the returned record.
func Ensure(ctx context.Context, door string) (context.Context, *Info) {
	if info := FromContext(ctx); info != nil {
		return ctx, info
	}
	info := &Info{Door: door, Start: time.Now()}
	return NewContext(ctx, info), info
}

// SetIncoming records md as the call's incoming metadata, which Incoming
// then returns: the chain's first interceptor copies the metadata once
// and every later reader shares that copy.
func (i *Info) SetIncoming(md metadata.MD) {
	if md == nil {
		md = metadata.MD{}
	}
	i.incoming = md
}

// Incoming returns the incoming metadata of the call of ctx, which the
// caller must not modify: the copy recorded by SetIncoming when there is
// one, else a fresh copy from ctx (metadata.FromIncomingContext copies the
// whole map on every call, which the chain would otherwise do once per
// interceptor).
func Incoming(ctx context.Context) metadata.MD {
	if info := FromContext(ctx); info != nil && info.incoming != nil {
		return info.incoming
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return md
}
