package frontdoor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/callmeta"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/internal/h2srv"
	"github.com/edgegate/edgegate/internal/stack"
	"github.com/edgegate/edgegate/router"
)

// NativeDoor serves native gRPC on the relay (package internal/h2srv, the
// gateway's own HTTP/2 server): each stream becomes a grpc.ServerStream of
// raw frames that passes the chain, as a call through grpc.Server does,
// then the proxy, or one of the gateway's own services. There is no
// per-message goroutine hop on the way: the stream's goroutine reads the
// client's DATA, runs the chain and the handler, and writes the answer.
//
// What grpc.Server does for a call, the door does the same way: the
// incoming metadata (pseudo-headers and gRPC's own headers left out but
// :authority, user-agent and content-type; -bin values decoded),
// grpc-timeout as the call's deadline, compressed requests decompressed
// (the registered compressors: gzip, zstd), the message size limit,
// response headers when the first message or SendHeader goes, trailers
// (or one trailers-only HEADERS frame) with the status when the handler
// returns.
type NativeDoor struct {
	// Stream is the stream chain (combined), Unary the unary one: the
	// chains grpc.Server runs.
	Stream grpc.StreamServerInterceptor
	Unary  grpc.UnaryServerInterceptor
	// Handler serves a method that is not one of Services': the proxy.
	Handler grpc.StreamHandler
	// Services are the gateway's own services (health, reflection).
	Services *Services
	// MaxMessageBytes bounds a message either way; 0: 4 MiB.
	MaxMessageBytes int
	// IsUnary reports whether method answers with one message; such an
	// answer is written in one go at the end (headers, message,
	// trailers) instead of flushed message by message. Nil: none.
	IsUnary func(method string) bool
}

var _ h2srv.Handler = (*NativeDoor)(nil)

// Services are the gateway's own gRPC services as the native door serves
// them: a grpc.ServiceRegistrar the gateway registers them on, beside
// grpc.Server.
type Services struct {
	methods map[string]ownMethod
}

type ownMethod struct {
	impl   any
	unary  *grpc.MethodDesc
	stream *grpc.StreamDesc
}

var _ grpc.ServiceRegistrar = (*Services)(nil)

// RegisterService implements grpc.ServiceRegistrar.
func (s *Services) RegisterService(sd *grpc.ServiceDesc, impl any) {
	if s.methods == nil {
		s.methods = map[string]ownMethod{}
	}
	for i := range sd.Methods {
		s.methods["/"+sd.ServiceName+"/"+sd.Methods[i].MethodName] = ownMethod{impl: impl, unary: &sd.Methods[i]}
	}
	for i := range sd.Streams {
		s.methods["/"+sd.ServiceName+"/"+sd.Streams[i].StreamName] = ownMethod{impl: impl, stream: &sd.Streams[i]}
	}
}

const defaultMaxMessage = 4 << 20

// ServeStream implements h2srv.Handler.
func (d *NativeDoor) ServeStream(st *h2srv.Stream) {
	stack.Grow() // once, before the chain and the proxy make the stack deep
	s := &nativeStream{st: st, door: d, method: st.Path()}
	ctype, md, err := s.incoming()
	switch {
	case st.Method() != "POST":
		notGRPC(st, "405", "edgegate: this port serves gRPC: a request must be a POST\n")
		return
	case !isNativeGRPC(ctype):
		notGRPC(st, "415", fmt.Sprintf("edgegate: this port serves gRPC: content-type %q is not application/grpc\n", ctype))
		return
	}
	ctx := s.context(md)
	var cancel context.CancelFunc = func() {}
	if err == nil {
		var timeout time.Duration
		var ok bool
		if timeout, ok, err = grpcwire.ParseTimeout(s.timeout); ok && err == nil {
			if _, bounded := st.Context().Deadline(); !bounded {
				// The relay's server bounds the stream's own context
				// (grpcTimeout); one without that hook does not.
				ctx, cancel = context.WithTimeout(ctx, timeout)
			}
		}
	}
	defer cancel()
	s.ctx = ctx
	if err == nil {
		err = s.checkEncoding()
	}
	if err == nil {
		err = d.dispatch(s)
	}
	s.finish(err)
}

// grpcTimeout is the relay's h2srv.Server Timeout: a call's grpc-timeout,
// the last one as incoming reads it (none when malformed: the door then
// refuses the call).
func grpcTimeout(header []hpack.HeaderField) (d time.Duration, ok bool) {
	v := ""
	for _, f := range header {
		if f.Name == "grpc-timeout" {
			v = f.Value
		}
	}
	d, ok, err := grpcwire.ParseTimeout(v)
	return d, ok && err == nil
}

// notGRPC answers a request that is not a gRPC call with an HTTP status
// and a line of text (grpc-go resets such a stream; an answer tells a
// client that came to the wrong port what happened).
func notGRPC(st *h2srv.Stream, code, msg string) {
	head := st.Method() == "HEAD"
	if err := st.WriteHeaders([]hpack.HeaderField{
		{Name: ":status", Value: code},
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "content-length", Value: fmt.Sprint(len(msg))},
	}, head); err != nil || head {
		return
	}
	if _, err := io.WriteString(st, msg); err == nil {
		_ = st.WriteTrailers(nil)
	}
}

// headerListTooLarge answers a call whose header list is over the relay's
// bound (limits.max_header_block_bytes): RESOURCE_EXHAUSTED, trailers-only.
func headerListTooLarge(st *h2srv.Stream) {
	_ = st.WriteHeaders([]hpack.HeaderField{
		{Name: ":status", Value: "200"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "grpc-status", Value: strconv.Itoa(int(codes.ResourceExhausted))},
		{Name: "grpc-message", Value: "edgegate: request header list over the limit (limits.max_header_block_bytes)"},
	}, true)
}

// dispatch runs the call's chain and handler: an own method's (the unary
// or stream chain, as grpc.Server), else the proxy behind the stream
// chain.
func (d *NativeDoor) dispatch(s *nativeStream) error {
	if !strings.HasPrefix(s.method, "/") || strings.Count(s.method, "/") < 2 {
		return status.Errorf(codes.Unimplemented, "malformed method name: %q", s.method)
	}
	if d.Services != nil {
		if m, ok := d.Services.methods[s.method]; ok {
			if m.unary != nil {
				return d.serveUnary(s, m)
			}
			info := &grpc.StreamServerInfo{FullMethod: s.method, IsClientStream: m.stream.ClientStreams, IsServerStream: m.stream.ServerStreams}
			if d.Stream == nil {
				return m.stream.Handler(m.impl, s)
			}
			return d.Stream(m.impl, s, info, m.stream.Handler)
		}
	}
	if d.Stream == nil {
		return d.Handler(nil, s)
	}
	s.info = grpc.StreamServerInfo{FullMethod: s.method, IsClientStream: true, IsServerStream: true}
	return d.Stream(nil, s, &s.info, d.Handler)
}

func (d *NativeDoor) serveUnary(s *nativeStream, m ownMethod) error {
	dec := func(v any) error {
		if err := s.RecvMsg(v); err != nil {
			if errors.Is(err, io.EOF) {
				return status.Error(codes.Internal, "edgegate: unary call ended without a request message")
			}
			return err
		}
		return nil
	}
	reply, err := m.unary.Handler(m.impl, s.ctx, dec, d.Unary)
	if err != nil {
		return err
	}
	return s.SendMsg(reply)
}

func (d *NativeDoor) maxMessage() int {
	if d.MaxMessageBytes > 0 {
		return d.MaxMessageBytes
	}
	return defaultMaxMessage
}

// nativeStream is one call on the native door: the chain's
// grpc.ServerStream.
type nativeStream struct {
	st     *h2srv.Stream
	door   *NativeDoor
	ctx    context.Context
	method string

	timeout  string // grpc-timeout
	encoding string // grpc-encoding
	decomp   encoding.Compressor

	callmeta.Meta
	wrote  bool // the response's HEADERS went
	corked bool // a unary answer: its writes leave together, at the end
	hdr    [5]byte

	// Room of the stream's own, so that a call's stream is one allocation
	// with: its StreamServerInfo, its grpc.ServerTransportStream, and the
	// header lists it writes (encoded before WriteHeaders returns).
	info   grpc.StreamServerInfo
	ts     callmeta.TransportStream
	fields [6]hpack.HeaderField
}

// incoming reads the request's headers: its content type and metadata,
// and the gRPC headers the door acts on.
func (s *nativeStream) incoming() (ctype string, md metadata.MD, err error) {
	fields := s.st.Header()
	n := len(fields) + 1 // :authority is kept; the other pseudo-headers, first, are not
	for _, f := range fields {
		if f.Name == "" || f.Name[0] != ':' {
			break
		}
		n--
	}
	m := grpcwire.NewFieldsMetadata(n)
	for _, f := range fields {
		k := f.Name
		switch k {
		case ":authority":
			m.Add(k, f.Value)
			continue
		case "content-type":
			ctype = f.Value
		case "grpc-timeout":
			s.timeout = f.Value
			continue
		case "grpc-encoding":
			s.encoding = f.Value
			continue
		case "user-agent", "grpc-accept-encoding":
		case "te", "connection", "content-length":
			continue
		default:
			if k == "" || k[0] == ':' || strings.HasPrefix(k, "grpc-") {
				continue
			}
		}
		v := f.Value
		if strings.HasSuffix(k, "-bin") {
			b, derr := grpcwire.DecodeBin(v)
			if derr != nil {
				err = status.Errorf(codes.Internal, "edgegate: malformed binary metadata %q: %v", k, derr)
				continue
			}
			v = string(b)
		}
		m.Add(k, v)
	}
	return ctype, m.MD, err
}

// context is the call's context: the stream's (which carries the
// connection's peer and TLS state, see relayContext), with the call's
// metadata and the stream as grpc's ServerTransportStream.
func (s *nativeStream) context(md metadata.MD) context.Context {
	ctx := metadata.NewIncomingContext(s.st.Context(), md)
	ctx = callinfo.NewContext(ctx, callinfo.NewNative(md))
	s.ts = callmeta.TransportStream{S: s}
	return grpc.NewContextWithServerTransportStream(ctx, &s.ts)
}

// relayContext is the context the relay serves connection c with, which
// every stream's context derives from: c's peer, and its TLS state (as
// grpc.Server's AuthInfo, and for TLSState), worked out once for the
// connection rather than per call.
func relayContext(c net.Conn) context.Context {
	ctx := context.Background()
	p := &peer.Peer{Addr: newFormattedAddr(c.RemoteAddr()), LocalAddr: c.LocalAddr()}
	if cs, ok := connState(c); ok {
		p.AuthInfo = tlsInfo(cs)
		ctx = context.WithValue(ctx, tlsStateKey{}, &cs)
	}
	return peer.NewContext(ctx, p)
}

// formattedAddr is a connection's peer address with its String formatted
// once, not on every call that logs or keys on it.
type formattedAddr struct {
	net.Addr
	s string
}

func newFormattedAddr(a net.Addr) formattedAddr { return formattedAddr{a, a.String()} }

func (a formattedAddr) String() string { return a.s }

func (s *nativeStream) checkEncoding() error {
	if s.encoding == "" || s.encoding == "identity" {
		return nil
	}
	if s.decomp = encoding.GetCompressor(s.encoding); s.decomp == nil {
		return status.Errorf(codes.Unimplemented, "grpc: Decompressor is not installed for grpc-encoding %q", s.encoding)
	}
	return nil
}

func (s *nativeStream) Context() context.Context { return s.ctx }
func (s *nativeStream) Method() string           { return s.method }

// SendHeader sends the response's headers now (with md and what was set).
func (s *nativeStream) SendHeader(md metadata.MD) error {
	s.Mu.Lock()
	err := s.AddHeaderLocked(md)
	if err == nil {
		s.HeaderSent = true
	}
	s.Mu.Unlock()
	if err != nil {
		return err
	}
	return s.writeHeaders()
}

// writeHeaders writes the response's HEADERS once; the header metadata is
// final once HeaderSent is set. A unary answer's first write corks the
// connection until the trailers: headers, message and trailers then
// leave in one write (nothing waits in between but flow control, which
// flushes).
func (s *nativeStream) writeHeaders() error {
	if s.wrote {
		return nil
	}
	s.wrote = true
	if s.door.IsUnary != nil && s.door.IsUnary(s.method) {
		s.st.Cork()
		s.corked = true
	}
	s.Mu.Lock()
	s.HeaderSent = true
	h := s.Header
	s.Mu.Unlock()
	fields := append(s.fields[:0],
		hpack.HeaderField{Name: ":status", Value: "200"},
		hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	fields = grpcwire.AppendFields(fields, h)
	return s.st.WriteHeaders(fields, false)
}

// RecvMsg reads the client's next message into m: a *router.Frame keeps
// its bytes, anything else is a protobuf message (own services).
func (s *nativeStream) RecvMsg(m any) error {
	if _, err := io.ReadFull(s.st, s.hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return s.readError(err)
	}
	n := int(binary.BigEndian.Uint32(s.hdr[1:]))
	max := s.door.maxMessage()
	if n > max {
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, max)
	}
	data, err := grpcwire.ReadMessage(s.st, n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return s.readError(err)
	}
	if s.hdr[0]&1 != 0 {
		var err error
		if data, err = grpcwire.Decompress(s.decomp, data, max); err != nil {
			return err
		}
	}
	if f, ok := m.(*router.Frame); ok {
		f.SetBuffers(data)
		return nil
	}
	defer data.Free()
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "edgegate: cannot decode into %T", m)
	}
	if err := proto.Unmarshal(data.Materialize(), pm); err != nil {
		return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
	}
	return nil
}

// readError is the status of a request that could not be read: the
// stream's end (the client reset it, or the connection ended), else a
// request cut off within a message.
func (s *nativeStream) readError(err error) error {
	if cerr := s.st.Context().Err(); cerr != nil {
		return status.FromContextError(cerr).Err()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return status.Error(codes.Internal, "edgegate: the request ended within a message")
	}
	return status.Error(codes.Unavailable, err.Error())
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// SendMsg sends a response message: a *router.Frame as its bytes, else a
// protobuf message marshalled.
func (s *nativeStream) SendMsg(m any) error {
	var data mem.BufferSlice
	if f, ok := m.(*router.Frame); ok {
		data = f.TakeBuffers()
	} else {
		pm, ok := m.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "edgegate: cannot encode %T", m)
		}
		b, err := proto.Marshal(pm)
		if err != nil {
			return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
		}
		data = mem.BufferSlice{mem.SliceBuffer(b)}
	}
	defer data.Free()
	n := data.Len()
	if max := s.door.maxMessage(); n > max {
		return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", n, max)
	}
	if err := s.writeHeaders(); err != nil {
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	for _, x := range data {
		b = append(b, x.ReadOnlyData()...)
	}
	_, err := s.st.Write(b)
	*bp = b
	writeBufs.Put(bp)
	if err != nil {
		return s.writeError(err)
	}
	return nil
}

func (s *nativeStream) writeError(err error) error {
	if cerr := s.st.Context().Err(); cerr != nil {
		return status.FromContextError(cerr).Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}

// finish ends the call with err's status: the trailers, or when nothing
// was sent and no header metadata set, one trailers-only HEADERS frame.
func (s *nativeStream) finish(err error) {
	if s.corked {
		defer s.st.Uncork()
	}
	_, tlr := s.End()
	st := status.Convert(err)
	if err != nil && errors.Is(s.st.Context().Err(), context.Canceled) {
		return // the client went away (reset or connection end): nothing to write
	}
	if r, ok := errors.AsType[interface {
		error
		ResetCode() uint32
	}](err); ok {
		// The upstream reset the call (RST_STREAM): so does the door,
		// with the upstream's code.
		s.st.Reset(http2.ErrCode(r.ResetCode()))
		return
	}
	if !s.wrote && len(s.Header) > 0 {
		// Header metadata goes in its own HEADERS frame before the
		// trailers, as grpc-go's server sends it: clients read it as the
		// call's header (retry-after on a rate-limited call).
		if err := s.writeHeaders(); err != nil {
			return
		}
	}
	if !s.wrote {
		s.wrote = true
		fields := append(s.fields[:0],
			hpack.HeaderField{Name: ":status", Value: "200"},
			hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
		fields = grpcwire.AppendStatus(fields, st)
		fields = grpcwire.AppendFields(fields, tlr)
		_ = s.st.WriteHeaders(fields, true)
		return
	}
	fields := grpcwire.AppendStatus(s.fields[:0], st)
	fields = grpcwire.AppendFields(fields, tlr)
	_ = s.st.WriteTrailers(fields)
}
