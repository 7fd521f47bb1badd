// Package callinfo carries the facts of one call through the gateway: the
// door it came in by, the route and cluster it went to, the bytes it moved,
// how it ended.
//
// The record is created once: by the HTTP door before the chain (REST and
// gRPC-Web), or by the chain's first interceptor after recovery
// (StreamServerInterceptor, for native gRPC). Every later stage writes its
// facts with the record's setters; the access log and metrics read it.
package callinfo

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// The doors a call can come in by.
const (
	DoorGRPC    = "grpc"
	DoorGRPCWeb = "grpc-web"
	DoorREST    = "rest"
	DoorHTTP    = "http" // a plain HTTP route
	// DoorComposite is a leg of a composite endpoint: a call the gateway
	// makes itself, through the chain, for a call that came in by a door.
	DoorComposite = "composite"
)

// Info is the record of one call. Its plain fields are written before the
// call reaches the upstream, or when it ends, by the goroutine that runs
// the chain, and read after the call ends; the byte counters may be written
// by the proxy's second goroutine and are atomic. The fields are exported
// for reading; the chain writes them with the setters, each named for the
// stage that owns the fact.
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
	// Cache is how the response cache answered the call: "hit", "miss",
	// "stale" or "coalesced" (served by another call's upstream answer);
	// empty when the call was not cacheable.
	Cache string
	// Peer is the client's address; UserAgent its user agent. ClientIP
	// is the client's IP: the peer's, or, behind a trusted proxy, the one
	// X-Forwarded-For names (package interceptors/clientip).
	Peer      string
	ClientIP  string
	UserAgent string
	// ClientAddr is ClientIP parsed; invalid until the client IP step ran.
	ClientAddr netip.Addr
	// HTTPMethod and HTTPPath are the request line of an HTTP door's call.
	HTTPMethod string
	HTTPPath   string
	// ClientForwarding is what the client sent of the forwarding headers,
	// recorded by the door (SetClientForwarding); ForwardHeaders is what
	// the upstream is sent of them, by the forwarding rule (package
	// clientip; nil: none).
	ClientForwarding Forwarding
	ForwardHeaders   metadata.MD
	// WAFRules are the ids of the web application firewall's rules that
	// matched the request, WAFScore its inbound anomaly score, WAFOutcome
	// what the WAF did ("" when it did not inspect the request).
	WAFRules   []int
	WAFScore   int
	WAFOutcome string

	BytesIn  atomic.Int64 // message bytes received from the client
	BytesOut atomic.Int64 // message bytes sent to the client

	// HTTPStatus is the HTTP door's answer; read it after EndChain or
	// EndHTTP said so.
	HTTPStatus int

	// incoming is the call's incoming metadata as the chain's first
	// interceptor captured it (SetIncoming); read-only.
	incoming metadata.MD
	// ownIncoming: incoming is the call's own, which Begin cleans in
	// place (NewNative).
	ownIncoming bool

	mu         sync.Mutex
	entered    bool
	chainEnded bool
	httpEnded  bool
}

// New returns the record of a call that starts now at door.
func New(door string) *Info {
	return &Info{Door: door, Start: time.Now()}
}

// NewNative returns the record of a native gRPC call whose door decoded
// its incoming metadata into md, which no one else holds: the same map
// the call's context carries. Begin then cleans md in place instead of
// copying it.
func NewNative(md metadata.MD) *Info {
	i := New(DoorGRPC)
	i.incoming, i.ownIncoming = md, md != nil
	return i
}

// SetRoute records the route the router chose, its cluster, and whether
// the route disables the access log (the resolve step and the proxy).
func (i *Info) SetRoute(route, cluster string, noAccessLog bool) {
	i.Route, i.Cluster, i.NoAccessLog = route, cluster, noAccessLog
}

// SetRequestID records the call's request id (package requestid).
func (i *Info) SetRequestID(id string) { i.RequestID = id }

// SetTraceID records the trace of the gateway's span (package tracing).
func (i *Info) SetTraceID(id string) { i.TraceID = id }

// SetClientIP records the client's IP (package clientip).
func (i *Info) SetClientIP(ip netip.Addr) {
	i.ClientAddr = ip
	if ip.IsValid() {
		i.ClientIP = ip.String()
	}
}

// SetClientForwarding records what the client sent of the forwarding
// headers (the door; Begin for native calls).
func (i *Info) SetClientForwarding(f Forwarding) { i.ClientForwarding = f }

// SetForwardHeaders records the forwarding headers to send upstream
// (package clientip).
func (i *Info) SetForwardHeaders(md metadata.MD) { i.ForwardHeaders = md }

// SetPrincipal records the authenticated caller (package auth).
func (i *Info) SetPrincipal(id string) { i.Principal = id }

// SetCache records how the response cache answered the call (package
// interceptors/cache).
func (i *Info) SetCache(s string) { i.Cache = s }

// SetEndpoint records the upstream address that served the call (the
// proxy).
func (i *Info) SetEndpoint(addr string) { i.Endpoint = addr }

// SetWAF records the web application firewall's verdict (package waf).
func (i *Info) SetWAF(rules []int, score int, outcome string) {
	i.WAFRules, i.WAFScore, i.WAFOutcome = rules, score, outcome
}

// SetErr records how the chain's handler ended (package accesslog).
func (i *Info) SetErr(err error) { i.Err = err }

// Enter marks the call as having entered the chain (from the chain's
// goroutine).
func (i *Info) Enter() {
	i.mu.Lock()
	i.entered = true
	i.mu.Unlock()
}

// EndChain marks the chain's end of the call, after the chain wrote its
// last field. It reports whether the caller is the one to write the
// call's log line: always for native gRPC and a composite's leg; for an HTTP door, when the door
// has already answered (gRPC-Web can answer before the chain's goroutine
// ends).
func (i *Info) EndChain() (last bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.chainEnded = true
	return i.Door == DoorGRPC || i.Door == DoorComposite || i.httpEnded
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

// Begin is the chain's first step for a call of method: it takes the
// record the door made (an HTTP door, or the relay's native door with
// NewNative), or makes one for a native gRPC call, marks it
// entered, and records the method, the peer and user agent when the door
// did not, and the incoming metadata without the keys of strip (the
// identity metadata only the gateway may send upstream, so that neither
// the chain nor the upstream ever sees a client's copy); for a native call
// it records the client's forwarding headers (an HTTP door records them
// itself, from the request). The returned context carries the record and
// the cleaned metadata.
func Begin(ctx context.Context, method string, strip []string) (context.Context, *Info) {
	info := FromContext(ctx)
	native := info == nil || info.Door == DoorGRPC
	if info == nil {
		info = New(DoorGRPC)
		ctx = NewContext(ctx, info)
	}
	info.Enter()
	info.Method = method
	if info.Peer == "" {
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			info.Peer = p.Addr.String()
		}
	}
	md, own := info.incoming, info.ownIncoming
	if !own {
		md, _ = metadata.FromIncomingContext(ctx) // a copy: ours to change
	}
	found := false
	for _, k := range strip {
		if _, ok := md[k]; ok {
			found = true
			delete(md, k)
		}
	}
	if found && !own {
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	info.SetIncoming(md)
	if native {
		// The client's own headers: no door has changed them.
		info.SetClientForwarding(ForwardingOf(md))
	}
	if info.UserAgent == "" {
		if ua := md.Get("user-agent"); len(ua) > 0 {
			info.UserAgent = ua[0]
		}
	}
	return ctx, info
}

// StreamServerInterceptor is Begin as the chain's first interceptor after
// recovery, for streaming and proxied calls. It always calls the handler.
func StreamServerInterceptor(strip []string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, _ := Begin(ss.Context(), si.FullMethod, strip)
		if ctx != ss.Context() {
			ss = &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx}
		}
		return handler(srv, ss)
	}
}

// UnaryServerInterceptor is Begin for the gateway's own unary methods
// (health). It always calls the handler.
func UnaryServerInterceptor(strip []string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _ = Begin(ctx, si.FullMethod, strip)
		return handler(ctx, req)
	}
}
