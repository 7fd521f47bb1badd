// Package callinfo carries the facts of one call through the gateway: the
// door it came in by, the route and cluster it went to, and the bytes it
// moved. The outermost interceptor creates the record; the router fills it
// in; the access log and metrics read it when the call ends.
package callinfo

import (
	"context"
	"sync/atomic"
)

// The doors a call can come in by.
const (
	DoorGRPC    = "grpc"
	DoorGRPCWeb = "grpc-web"
	DoorREST    = "rest"
)

// Info is the record of one call. Door, Route, Cluster and RequestID are
// written before the call reaches the upstream and read after it ends, by
// the goroutine that handles the call; the byte counters may be written by
// the proxy's second goroutine and are atomic.
type Info struct {
	Door      string
	RequestID string
	Route     string
	Cluster   string
	BytesIn   atomic.Int64 // message bytes received from the client
	BytesOut  atomic.Int64 // message bytes sent to the client
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
	info := &Info{Door: door}
	return NewContext(ctx, info), info
}
