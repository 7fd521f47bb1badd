package router

import (
	"context"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/edgegate/edgegate/internal/callmeta"
	"github.com/edgegate/edgegate/internal/stack"
)

// InProcess is a grpc.ClientConnInterface that serves calls without a
// network hop: each call runs the core's stream interceptor chain and then
// the core's handler (the proxy), in this process. It is how the REST door
// reaches the core: grpc-gateway's generated clients call it like a
// connection, the chain sees the call as it would see a native one, and the
// typed request is marshalled exactly once, on its way to the upstream.
//
// The outgoing metadata of the caller's context becomes the call's incoming
// metadata; the context's deadline, cancellation and values (peer, call
// record) carry through. grpc.Header and grpc.Trailer call options receive
// the response metadata. It is safe for concurrent use.
type InProcess struct {
	chain   grpc.StreamServerInterceptor
	handler grpc.StreamHandler
	codec   Codec
}

// NewInProcess returns an in-process connection that runs chain (the
// chained stream interceptors; nil for none) around handler.
func NewInProcess(chain grpc.StreamServerInterceptor, handler grpc.StreamHandler) *InProcess {
	return &InProcess{chain: chain, handler: handler, codec: NewCodec()}
}

var _ grpc.ClientConnInterface = (*InProcess)(nil)

// Serve runs a call the caller serves itself (the gRPC-Web door), as ss:
// the chain, then the handler, on this goroutine. desc says whether the
// call streams either way.
func (c *InProcess) Serve(ss grpc.ServerStream, method string, desc *grpc.StreamDesc) error {
	return c.run(ss, method, desc)
}

func (c *InProcess) run(ss grpc.ServerStream, method string, desc *grpc.StreamDesc) error {
	if c.chain == nil {
		return c.handler(nil, ss)
	}
	info := &grpc.StreamServerInfo{FullMethod: method, IsClientStream: desc.ClientStreams, IsServerStream: desc.ServerStreams}
	return c.chain(nil, ss, info, c.handler)
}

// incoming turns the caller's outgoing metadata into the call's incoming
// metadata.
func incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewIncomingContext(ctx, md)
}

// Invoke runs a unary call. A request that cannot be sent (a string field
// that is not UTF-8) is refused with INVALID_ARGUMENT before the chain
// runs.
func (c *InProcess) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if err := checkRequest(args); err != nil {
		return err
	}
	ss := &serverSide{method: method, codec: c.codec, req: args, reply: reply}
	ss.ctx = grpc.NewContextWithServerTransportStream(incoming(ctx), callmeta.TransportStream{S: ss})
	err := c.run(ss, method, &grpc.StreamDesc{})
	if err == nil && !ss.replied {
		err = status.Error(codes.Internal, "edgegate: upstream sent no response message")
	}
	hdr, tlr := ss.End()
	applyCallOptions(opts, hdr, tlr)
	return err
}

func applyCallOptions(opts []grpc.CallOption, header, trailer metadata.MD) {
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		}
	}
}

// serverSide is the core's view of an in-process call. For a unary call
// it holds the one request and the one reply; for a stream it is connected
// to a clientSide by channels, and holds the one request of a stream that
// takes one (a server stream).
type serverSide struct {
	ctx    context.Context
	method string
	codec  Codec

	// The request of a call that takes one (sent once), and the reply of
	// a unary call.
	req     any
	reqSent bool
	reply   any
	replied bool

	// Streams.
	pipe *pipe

	callmeta.Meta
}

func (s *serverSide) Context() context.Context { return s.ctx }
func (s *serverSide) Method() string           { return s.method }

func (s *serverSide) SendHeader(md metadata.MD) error {
	s.Mu.Lock()
	err := s.AddHeaderLocked(md)
	if err == nil {
		s.HeaderSent = true
	}
	hdr := s.Header
	s.Mu.Unlock()
	if err == nil && s.pipe != nil {
		s.pipe.sendHeader(hdr)
	}
	return err
}

// RecvMsg gives the core the next request message: marshalled into m when
// m is a *Frame (the proxy), merged into m otherwise.
func (s *serverSide) RecvMsg(m any) error {
	var req any
	if s.pipe != nil && s.pipe.requests != nil {
		var err error
		if req, err = s.pipe.recvRequest(s.ctx); err != nil {
			return err
		}
	} else {
		if s.reqSent || s.req == nil { // nil: a server stream closed without its request
			return io.EOF
		}
		s.reqSent = true
		req = s.req
	}
	return s.convert(req, m)
}

func (s *serverSide) convert(from, to any) error {
	if f, ok := to.(*Frame); ok {
		// Deterministic: the same request is the same bytes (map
		// fields in key order), which a cache keys on.
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(from.(proto.Message))
		if err != nil {
			return status.Errorf(codes.Internal, "edgegate: marshal request: %v", err)
		}
		f.SetBytes(b)
		return nil
	}
	if src, ok := from.(*Frame); ok {
		defer src.Free()
		if err := s.codec.fallback.Unmarshal(src.data, to); err != nil {
			return status.Errorf(codes.Internal, "edgegate: unmarshal response: %v", err)
		}
		return nil
	}
	dst, ok1 := to.(proto.Message)
	src, ok2 := from.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "edgegate: cannot pass %T as %T", from, to)
	}
	proto.Reset(dst)
	proto.Merge(dst, src)
	return nil
}

// SendMsg hands a response message from the core to the caller; on a
// stream, the header goes first when it was not sent (as grpc-go sends
// it): the caller may be waiting for it before it reads messages.
func (s *serverSide) SendMsg(m any) error {
	s.Mu.Lock()
	first := !s.HeaderSent
	s.HeaderSent = true
	hdr := s.Header
	s.Mu.Unlock()
	if s.pipe != nil {
		if first {
			s.pipe.sendHeader(hdr)
		}
		return s.pipe.sendResponse(s.ctx, m)
	}
	if s.replied {
		return status.Error(codes.Internal, "edgegate: second response to a unary call")
	}
	s.replied = true
	return s.convert(m, s.reply)
}

// NewStream starts a streaming call: the chain and handler run on their own
// goroutine, connected to the returned stream by channels. A call that
// takes one request (a server stream) starts with it, at SendMsg: the
// chain sees the request before anything is forwarded, and a request that
// cannot be sent is refused there (INVALID_ARGUMENT) without starting the
// call. A client-streaming call starts at once.
func (c *InProcess) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := newPipe(desc.ClientStreams)
	ss := &serverSide{method: method, codec: c.codec, pipe: p}
	ss.ctx = grpc.NewContextWithServerTransportStream(incoming(ctx), callmeta.TransportStream{S: ss})
	cs := &clientSide{ctx: ctx, cancel: cancel, pipe: p, ss: ss, codec: c.codec, manyRequests: desc.ClientStreams}
	cs.start = func() {
		go func() {
			stack.Grow()
			err := c.run(ss, method, desc)
			hdr, tlr := ss.End()
			p.finish(hdr, tlr, err)
			applyCallOptions(opts, hdr, tlr)
		}()
	}
	if desc.ClientStreams {
		cs.begin()
	}
	return cs, nil
}

// pipe connects the two sides of an in-process stream.
type pipe struct {
	requests  chan any      // caller → core, closed on CloseSend; nil when the call takes one request
	responses chan any      // core → caller
	header    chan struct{} // closed when the header is known
	done      chan struct{} // closed when the core's handler returned

	headerOnce sync.Once
	hdr        metadata.MD
	tlr        metadata.MD
	err        error
}

func newPipe(manyRequests bool) *pipe {
	p := &pipe{
		responses: make(chan any),
		header:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	if manyRequests {
		p.requests = make(chan any)
	}
	return p
}

func (p *pipe) sendHeader(md metadata.MD) {
	p.headerOnce.Do(func() {
		p.hdr = md
		close(p.header)
	})
}

func (p *pipe) finish(hdr, tlr metadata.MD, err error) {
	p.headerOnce.Do(func() {
		p.hdr = hdr
		close(p.header)
	})
	p.tlr, p.err = tlr, err
	close(p.done)
}

func (p *pipe) recvRequest(ctx context.Context) (any, error) {
	select {
	case m, ok := <-p.requests:
		if !ok {
			return nil, io.EOF
		}
		return m, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (p *pipe) sendResponse(ctx context.Context, m any) error {
	// The caller receives into its own message; hand over a Frame's bytes,
	// or a clone of a message the handler may reuse.
	if f, ok := m.(*Frame); ok {
		own := &Frame{data: f.data}
		f.data = nil
		m = own
	} else if pm, ok := m.(proto.Message); ok {
		m = proto.Clone(pm)
	}
	select {
	case p.responses <- m:
		return nil
	case <-ctx.Done():
		if f, ok := m.(*Frame); ok {
			f.Free()
		}
		return status.FromContextError(ctx.Err()).Err()
	}
}

// clientSide is the caller's view of an in-process stream.
type clientSide struct {
	ctx    context.Context
	cancel context.CancelFunc
	pipe   *pipe
	ss     *serverSide
	codec  Codec
	start  func() // runs the call on its goroutine; once, by begin

	manyRequests bool // a client stream; else the call takes one request

	sendMu sync.Mutex
	closed bool
	begun  bool
}

// begin starts the call, once; sendMu is held or the stream is new.
func (c *clientSide) begin() {
	if !c.begun {
		c.begun = true
		c.start()
	}
}

// refuse ends a call that never started with err.
func (c *clientSide) refuse(err error) error {
	c.begun = true
	c.pipe.finish(nil, nil, err)
	c.cancel()
	return err
}

func (c *clientSide) Header() (metadata.MD, error) {
	select {
	case <-c.pipe.header:
		return c.pipe.hdr, nil
	case <-c.ctx.Done():
		return nil, status.FromContextError(c.ctx.Err()).Err()
	}
}

func (c *clientSide) Trailer() metadata.MD {
	select {
	case <-c.pipe.done:
		return c.pipe.tlr
	default:
		return nil
	}
}

func (c *clientSide) CloseSend() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if !c.closed {
		c.closed = true
		if c.manyRequests {
			close(c.pipe.requests)
		} else {
			c.begin() // without a request, if none was sent
		}
	}
	return nil
}

func (c *clientSide) Context() context.Context { return c.ctx }

// SendMsg sends a request message. A server stream's one request starts
// the call and is taken even when the call ends at once: what ends it
// before its first response (a policy's refusal, an upstream down) is the
// status RecvMsg returns, after the header the chain set, since
// grpc-gateway's generated clients return SendMsg's error without reading
// the status. A client stream's SendMsg says io.EOF once the call has
// ended, as grpc-go's does. A message that cannot be marshalled (see
// checkRequest) is refused with INVALID_ARGUMENT, and the call with it.
func (c *clientSide) SendMsg(m any) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.closed {
		return status.Error(codes.Internal, "edgegate: SendMsg after CloseSend")
	}
	if !c.manyRequests {
		if c.begun {
			return status.Error(codes.Internal, "edgegate: a second request on a call that takes one")
		}
		if err := checkRequest(m); err != nil {
			return c.refuse(err)
		}
		c.ss.req = m
		c.begin()
		return nil
	}
	if err := checkRequest(m); err != nil {
		c.cancel()
		return err
	}
	select {
	case c.pipe.requests <- m:
		return nil
	case <-c.pipe.done:
		return io.EOF // the call ended; its status comes from RecvMsg
	case <-c.ctx.Done():
		return status.FromContextError(c.ctx.Err()).Err()
	}
}

func (c *clientSide) RecvMsg(m any) error {
	select {
	case r := <-c.pipe.responses:
		return c.ss.convert(r, m)
	case <-c.pipe.done:
		return c.ended()
	case <-c.ctx.Done():
		select {
		case <-c.pipe.done: // it ended as it was cancelled (or refused)
			return c.ended()
		default:
		}
		return status.FromContextError(c.ctx.Err()).Err()
	}
}

// ended is what RecvMsg says once the call is over: responses sent before
// the handler returned were taken (the channel is unbuffered).
func (c *clientSide) ended() error {
	c.cancel()
	if c.pipe.err != nil {
		return c.pipe.err
	}
	return io.EOF
}

// checkRequest refuses a request message that proto.Marshal would refuse
// for a string field that is not valid UTF-8 (the REST door fills string
// fields from the path and the query as they come): INVALID_ARGUMENT,
// naming the field, instead of an INTERNAL marshalling error after the
// call has started. Anything but a message passes.
func checkRequest(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if path := invalidUTF8(pm.ProtoReflect()); path != "" {
		return status.Errorf(codes.InvalidArgument, "edgegate: string field %s holds invalid UTF-8", path)
	}
	return nil
}

// invalidUTF8 returns the path (user.name, tags[1], labels["k"]) of the
// first string field of m that must be UTF-8 and is not, or "".
func invalidUTF8(m protoreflect.Message) string {
	var path string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if sub, bad := badValue(fd, l.Get(i)); bad {
					path = fmt.Sprintf("%s[%d]%s", name, i, sub)
					break
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if _, bad := badValue(fd.MapKey(), k.Value()); bad {
					path = fmt.Sprintf("%s key %q", name, k.String())
				} else if sub, bad := badValue(fd.MapValue(), mv); bad {
					path = fmt.Sprintf("%s[%q]%s", name, k.String(), sub)
				}
				return path == ""
			})
		default:
			if sub, bad := badValue(fd, v); bad {
				path = name + sub
			}
		}
		return path == ""
	})
	return path
}

// badValue reports whether v, a value of field fd, holds invalid UTF-8
// where it must not, and where: "" for v itself, ".field…" inside it.
func badValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "", enforceUTF8(fd) && !utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if p := invalidUTF8(v.Message()); p != "" {
			return "." + p, true
		}
	}
	return "", false
}

// enforceUTF8 reports whether proto.Marshal requires fd's strings to be
// UTF-8: proto3, and editions with utf8_validation VERIFY.
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.Syntax() == protoreflect.Proto3
}
