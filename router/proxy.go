package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/policy"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/upstream"
)

// Snapshot is one configuration's routing state: its table (whose routes
// carry their compiled policies) and the upstream clusters the table
// names. Its fields are never changed after it is published. A call holds
// the snapshot it started with until it ends; a snapshot replaced by Swap
// is retired, and OnIdle runs once no call holds it any more.
type Snapshot struct {
	Table *Table
	Pool  *upstream.Pool
	// Schema is the registry of the configuration's routed APIs (nil:
	// none known).
	Schema *schema.Registry
	// Policies is the compiled policies of the snapshot's configuration,
	// whose instances its routes carry; the gateway closes it (with
	// Build.Close) when the snapshot is idle.
	Policies *policy.Build
	// OnIdle, when set, runs once after the snapshot is retired and its
	// last call has ended (the gateway closes the clusters no newer
	// snapshot uses, and the policies' shared resources).
	OnIdle func()

	refs    atomic.Int64
	retired atomic.Bool
	idle    sync.Once
}

func (s *Snapshot) release() {
	if s.refs.Add(-1) == 0 && s.retired.Load() {
		s.idleNow()
	}
}

func (s *Snapshot) idleNow() {
	s.idle.Do(func() {
		if s.OnIdle != nil {
			s.OnIdle()
		}
	})
}

// Hold keeps s from going idle until release is called, for work a call
// leaves running after it ends (a cache's background refresh). Call it
// only during a call that holds s.
func (s *Snapshot) Hold() (release func()) {
	s.refs.Add(1)
	return s.release
}

// Acquire returns the current snapshot, held for a call until the returned
// release func is called.
func (p *Proxy) Acquire() (*Snapshot, func()) {
	s := p.acquire()
	return s, s.release
}

// acquire is Acquire for a caller that calls the snapshot's release itself.
func (p *Proxy) acquire() *Snapshot {
	for {
		s := p.current.Load()
		s.refs.Add(1)
		if !s.retired.Load() {
			return s
		}
		s.release() // swapped meanwhile: take the new one
	}
}

// resolved is what Resolve chose for a call; it is the call's
// policy.Resolved, so that the policies find their route's instances.
type resolved struct {
	snap  *Snapshot
	route *Route
}

func (r *resolved) PolicySet() *policy.Set {
	if r.route == nil {
		return nil
	}
	return r.route.Policies
}

// resolvedStream is a call's stream after Resolve, and what it resolved.
type resolvedStream struct {
	middleware.WrappedServerStream
	r resolved
}

// FromContext returns the snapshot and route that Resolve chose for the
// call of ctx; route is nil when no route matched, both are nil when
// Resolve did not run.
func FromContext(ctx context.Context) (*Snapshot, *Route) {
	if r, ok := policy.ResolvedFrom(ctx).(*resolved); ok {
		return r.snap, r.route
	}
	return nil, nil
}

// Resolve is the interceptor that picks a call's snapshot and route once,
// early in the chain, so that the policies after it (policy.Key.From) and
// the proxy see the same route and the same configuration; the snapshot is
// held until the call ends. It records the route in the call's record. It
// always calls the handler (a call with no route is refused by the proxy).
func (p *Proxy) Resolve() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		snap := p.acquire()
		defer snap.release()
		rt := snap.Table.lookupCall(ss.Context(), si.FullMethod)
		if info := callinfo.FromContext(ss.Context()); info != nil && rt != nil {
			info.SetRoute(rt.Name, rt.Cluster, rt.DisableAccessLog)
		}
		rs := &resolvedStream{r: resolved{snap: snap, route: rt}} // one allocation for both
		rs.WrappedServerStream = middleware.WrappedServerStream{ServerStream: ss, WrappedContext: policy.NewContext(ss.Context(), &rs.r)}
		return handler(srv, &rs.WrappedServerStream)
	}
}

// Proxy forwards every call it is given to the upstream cluster of the
// call's route, as raw frames: messages are neither decoded nor copied.
// Request and response metadata, trailers, status (details included),
// deadlines and cancellation pass through. It is safe for concurrent use.
type Proxy struct {
	current atomic.Pointer[Snapshot]
	o       ProxyOptions
}

// ProxyOptions are the proxy's hooks; every field is optional.
type ProxyOptions struct {
	// Log receives upstream failures (with the details the client is not
	// told); nil means slog.Default().
	Log *slog.Logger
	// Inject adds to the metadata sent upstream (the trace context, the
	// caller's identity), after Drop.
	Inject func(ctx context.Context, md metadata.MD)
	// Drop are metadata keys never forwarded from a client.
	Drop []string
	// UpstreamDone is told of every upstream call when it ends.
	UpstreamDone func(cluster, endpoint string, code codes.Code, d time.Duration)
}

// NewProxy returns a proxy that routes by s.
func NewProxy(s *Snapshot, o ProxyOptions) *Proxy {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	p := &Proxy{o: o}
	p.current.Store(s)
	return p
}

// Snapshot returns the routing state new calls use.
func (p *Proxy) Snapshot() *Snapshot { return p.current.Load() }

// Swap makes s the routing state of new calls and retires the previous
// one, which it returns. Calls in flight finish on the snapshot they
// started with; the old snapshot's OnIdle runs after the last of them.
func (p *Proxy) Swap(s *Snapshot) *Snapshot {
	old := p.current.Swap(s)
	if old != nil {
		old.retired.Store(true)
		if old.refs.Load() == 0 {
			old.idleNow()
		}
	}
	return old
}

// Handler returns the grpc.StreamHandler to install as the server's
// UnknownServiceHandler. It answers UNIMPLEMENTED for a method with no route
// and UNAVAILABLE, naming the cluster, when the cluster cannot be reached;
// every other status is the upstream's own. A local method of the table
// (Table.Local) is answered by its own handler instead.
func (p *Proxy) Handler() grpc.StreamHandler { return p.handle }

func (p *Proxy) handle(srv any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "edgegate: call has no method")
	}
	snap, rt := FromContext(ss.Context())
	if snap == nil {
		// Not resolved by the chain (Resolve not installed): do it here.
		var release func()
		snap, release = p.Acquire()
		defer release()
		rt = snap.Table.lookupAny(method)
	}
	if l := snap.Table.Local(method); l != nil {
		return l.Handler(srv, ss)
	}
	if rt == nil {
		return status.Errorf(codes.Unimplemented, "edgegate: no route for method %s", method)
	}
	info := callinfo.FromContext(ss.Context())
	if info != nil {
		info.SetRoute(rt.Name, rt.Cluster, rt.DisableAccessLog)
	}
	cl := snap.Pool.Get(rt.Cluster)
	if cl == nil {
		return status.Errorf(codes.Internal, "edgegate: route %q names unknown cluster %q", rt.Name, rt.Cluster)
	}
	if !acquireSlot(&rt.inFlight, rt.MaxConcurrent) {
		return concurrencyError("route", rt.Name, rt.MaxConcurrent)
	}
	defer rt.inFlight.Add(-1)
	if !cl.AcquireSlot() {
		return concurrencyError("cluster", cl.Name(), cl.MaxConcurrent())
	}
	defer cl.ReleaseSlot()
	return p.forward(ss, method, snap.Schema.IsUnary(method), rt, cl, info)
}

// acquireSlot takes one of max slots of n; max <= 0 means unlimited.
func acquireSlot(n *atomic.Int64, max int64) bool {
	if max <= 0 {
		n.Add(1)
		return true
	}
	if n.Add(1) > max {
		n.Add(-1)
		return false
	}
	return true
}

// ReasonConcurrencyLimit is the google.rpc.ErrorInfo reason of a call shed
// by a concurrency limit; the HTTP doors answer it with 503.
const ReasonConcurrencyLimit = "CONCURRENCY_LIMIT"

func concurrencyError(kind, name string, max int64) error {
	st, _ := status.Newf(codes.ResourceExhausted, "edgegate: %s %q has %d calls in flight, its limit", kind, name, max).WithDetails(
		&errdetails.ErrorInfo{Reason: ReasonConcurrencyLimit, Domain: "edgegate", Metadata: map[string]string{kind: name, "limit": fmt.Sprint(max)}})
	return st.Err()
}

func (p *Proxy) forward(ss grpc.ServerStream, method string, unary bool, rt *Route, cl *upstream.Cluster, info *callinfo.Info) error {
	ctx := ss.Context()
	cancel := context.CancelFunc(func() {})
	switch {
	case rt.Timeout > 0:
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
	case !unary:
		// A stream's client side cancels the upstream call when it fails
		// (a unary call's is read before the call starts).
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	in := callinfo.Incoming(ctx)
	reqID := ""
	if info != nil {
		reqID = info.RequestID
	}
	skipped := func(k string) {
		p.o.Log.Debug("request metadata not forwarded: gRPC metadata must be printable ASCII",
			slog.String("key", k), slog.String("method", method))
	}
	out := forwardMetadata(in, reqID, skipped)
	for _, k := range p.o.Drop {
		delete(out, k)
	}
	if info != nil {
		// The forwarding rule's headers (package clientip), in place of
		// a client's.
		for k, v := range info.ForwardHeaders {
			v, ok := sendable(k, v)
			if len(v) > 0 {
				out[k] = v
			}
			if !ok {
				skipped(k)
			}
		}
	}
	if p.o.Inject != nil {
		p.o.Inject(ctx, out)
	}
	if unary {
		return p.forwardUnary(ctx, ss, method, out, cl, info)
	}
	start := time.Now()
	cs, err := cl.NewStream(ctx, method, out)
	if err != nil {
		p.done(cl, info, "", err, start)
		return p.upstreamError(ctx, err, cl, method)
	}
	defer cs.Close()

	// Client → upstream runs on its own goroutine; upstream → client on
	// this one. A failure on the client side is stored before the upstream
	// call is cancelled, so that this goroutine reports it instead of the
	// cancellation it causes.
	var clientErr atomic.Pointer[error]
	go func() {
		if err := toUpstream(ss, cs, info); err != nil {
			clientErr.Store(&err)
			cancel()
		}
	}()

	err = toClient(cs, ss, info)
	p.done(cl, info, cs.Endpoint(), err, start)
	if e := clientErr.Load(); e != nil {
		return status.Convert(*e).Err()
	}
	ss.SetTrailer(cs.Trailer())
	if err != nil {
		return p.upstreamError(ctx, err, cl, method)
	}
	return nil
}

// forwardUnary forwards a call of a known unary method as a unary call:
// the request message read, then one upstream call on this goroutine (no
// goroutine copying the client's messages). As grpc-go's own unary
// handling does, it reads one request message and no more.
func (p *Proxy) forwardUnary(ctx context.Context, ss grpc.ServerStream, method string, md metadata.MD, cl *upstream.Cluster, info *callinfo.Info) error {
	frames := new([2]Frame) // the request and the answer: one allocation
	req := &frames[0]
	if err := ss.RecvMsg(req); err != nil {
		if errors.Is(err, io.EOF) {
			return status.Errorf(codes.Internal, "edgegate: unary call %s ended without a request message", method)
		}
		return err
	}
	n := int64(req.Len())
	start := time.Now()
	res, err := cl.Invoke(ctx, method, md, req.TakeBuffers())
	p.done(cl, info, res.Endpoint, err, start)
	if info != nil {
		info.BytesIn.Add(n)
	}
	if res.Header != nil {
		if herr := ss.SendHeader(ResponseMetadata(res.Header)); herr != nil {
			res.Message.Free()
			return herr
		}
	}
	if err != nil {
		ss.SetTrailer(res.Trailer)
		return p.upstreamError(ctx, err, cl, method)
	}
	resp := &frames[1]
	resp.SetBuffers(res.Message)
	if err := sendToClient(ss, resp, info); err != nil {
		return err
	}
	ss.SetTrailer(res.Trailer)
	return nil
}

// done records the end of an upstream call: its endpoint in the call's
// record, and the UpstreamDone hook.
func (p *Proxy) done(cl *upstream.Cluster, info *callinfo.Info, endpoint string, err error, start time.Time) {
	if info != nil {
		info.SetEndpoint(endpoint)
	}
	cl.Report(endpoint, status.Code(err))
	if p.o.UpstreamDone != nil {
		p.o.UpstreamDone(cl.Name(), endpoint, status.Code(err), time.Since(start))
	}
}

// toUpstream copies the client's messages to the upstream until the client
// half-closes (then it half-closes the upstream and returns nil) or fails
// (it returns the error). When the upstream call has ended, it stops and
// returns nil: the upstream's status reaches the client by toClient.
func toUpstream(ss grpc.ServerStream, cs *upstream.Stream, info *callinfo.Info) error {
	f := &Frame{}
	for {
		if err := ss.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				_ = cs.CloseSend()
				return nil
			}
			return err
		}
		n := int64(f.Len())
		if err := cs.Send(f.TakeBuffers()); err != nil {
			return nil
		}
		if info != nil {
			info.BytesIn.Add(n)
		}
	}
}

// toClient sends the upstream's headers and messages to the client until
// the upstream call ends: nil when it ended OK, else its error.
func toClient(cs *upstream.Stream, ss grpc.ServerStream, info *callinfo.Info) error {
	// Headers first, as soon as the upstream sends them: a server stream
	// that waits before its first message still shows its headers. nil
	// means a trailers-only answer (or a failure), seen by Recv below.
	md, _ := cs.Header()
	if md != nil {
		if err := ss.SendHeader(ResponseMetadata(md)); err != nil {
			return err
		}
	}
	f := &Frame{}
	for {
		m, err := cs.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		f.SetBuffers(m)
		if err := sendToClient(ss, f, info); err != nil {
			return err
		}
	}
}

// sendToClient sends an upstream message to the client and counts its
// bytes in the call's record; a message that cannot be sent is freed.
func sendToClient(ss grpc.ServerStream, f *Frame, info *callinfo.Info) error {
	n := int64(f.Len())
	if err := ss.SendMsg(f); err != nil {
		f.Free()
		return err
	}
	if info != nil {
		info.BytesOut.Add(n)
	}
	return nil
}

// upstreamError returns the status to give the client for err, an error of
// the upstream call made with ctx. When ctx is done, or its deadline has
// passed, the status is the context's (DEADLINE_EXCEEDED "context deadline
// exceeded", or CANCELLED), whatever ended the upstream call: at the
// deadline the upstream's transport resets the stream too, and the reset
// ("stream terminated by RST_STREAM with error code: CANCEL") can reach
// grpc-go's client before the context's timer has fired. Otherwise the
// upstream's own statuses pass unchanged; a failure to reach the cluster
// becomes UNAVAILABLE naming the cluster, never an address, and the
// details go to the log.
func (p *Proxy) upstreamError(ctx context.Context, err error, cl *upstream.Cluster, method string) error {
	if cerr := contextError(ctx); cerr != nil {
		return cerr
	}
	if re, ok := errors.AsType[*upstream.ResetError](err); ok {
		return re // the native door resets the client's stream with its code
	}
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && isTransportFailure(st.Message()) {
		p.o.Log.Warn("upstream unavailable", slog.String("cluster", cl.Name()), slog.String("method", method), slog.String("error", st.Message()))
		return status.Errorf(codes.Unavailable, "edgegate: upstream cluster %q is unavailable", cl.Name())
	}
	return st.Err()
}

// contextError is the status of a call whose context is done or whose
// deadline has passed (its timer may not have fired yet: ctx.Err is still
// nil then); nil for a call still within its time.
func contextError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return status.FromContextError(context.DeadlineExceeded).Err()
	}
	return nil
}

// isTransportFailure reports whether an UNAVAILABLE message is grpc-go's
// own (a connection that failed or broke) rather than the upstream's.
func isTransportFailure(msg string) bool {
	for _, prefix := range []string{
		"connection error",
		"error reading from server",
		"transport is closing",
		"transport:",
		"last connection error",
		"last resolver error",
		"name resolver error",
		"produced zero addresses",
		"no children to pick from",
		"connection closed",
		"upstream connect error",
		// A socket error grpc-go passes on as it is (a TLS 1.3 upstream
		// that refused the client certificate after the handshake:
		// "write tcp A->B: write: broken pipe"); it names addresses.
		"write tcp", "read tcp", "dial tcp", "write unix", "read unix", "dial unix",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// ForwardMetadata returns the metadata to send upstream for a call that came
// in with in: everything but HTTP/2 pseudo-headers, the headers the
// transport sets itself and the forwarding headers (X-Forwarded-*,
// X-Real-IP, Forwarded: the proxy sets those by the forwarding rule of
// package clientip), with x-request-id set to reqID when it is not
// empty. What gRPC cannot carry is left out: a key outside [0-9a-z-_.],
// and a value of a key that does not end in -bin with a byte outside
// printable ASCII (UTF-8, a TAB), which grpc-go's client would refuse,
// failing the call with INTERNAL. in is not modified; value slices are
// shared.
func ForwardMetadata(in metadata.MD, reqID string) metadata.MD {
	return forwardMetadata(in, reqID, nil)
}

// forwardMetadata is ForwardMetadata; skipped, when set, is told the key
// of every value (or key) left out because gRPC cannot carry it.
func forwardMetadata(in metadata.MD, reqID string, skipped func(key string)) metadata.MD {
	out := make(metadata.MD, len(in)+1)
	for k, v := range in {
		if k == "" || k[0] == ':' || dropOnForward(k) || callinfo.IsForwardingKey(k) {
			continue
		}
		v, ok := sendable(k, v)
		if len(v) > 0 {
			out[k] = v
		}
		if !ok && skipped != nil {
			skipped(k)
		}
	}
	if reqID != "" {
		out["x-request-id"] = []string{reqID}
	}
	return out
}

// sendable returns the values of key k that gRPC can carry as metadata:
// vs itself when all are (the common case, no allocation), else a new
// slice of those that are (nil for none, and for every value of a key that
// is not a gRPC key); ok is false when something was left out.
func sendable(k string, vs []string) (_ []string, ok bool) {
	if !grpcwire.ValidKey(k) {
		return nil, false
	}
	if strings.HasSuffix(k, "-bin") {
		return vs, true
	}
	bad := -1
	for i, v := range vs {
		if !printable(v) {
			bad = i
			break
		}
	}
	if bad < 0 {
		return vs, true
	}
	kept := append([]string(nil), vs[:bad]...)
	for _, v := range vs[bad+1:] {
		if printable(v) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		return nil, false
	}
	return kept, false
}

// printable reports whether v is printable ASCII (0x20–0x7E), what a
// gRPC metadata value that is not binary must be.
func printable(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// ResponseMetadata returns the upstream's response headers as they are sent
// to the client: without the headers the gateway's own transport sets.
func ResponseMetadata(md metadata.MD) metadata.MD {
	for k := range md {
		if k == "" || k[0] == ':' || dropOnForward(k) {
			delete(md, k) // md is the client stream's own copy
		}
	}
	return md
}

func dropOnForward(k string) bool {
	switch k {
	case "content-type", "user-agent", "te", "host", "connection",
		"grpc-accept-encoding", "grpc-encoding", "grpc-timeout",
		"grpc-status", "grpc-message", "grpc-status-details-bin":
		return true
	}
	return false
}
