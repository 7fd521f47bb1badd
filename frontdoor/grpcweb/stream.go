package grpcweb

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	// The proto codec marshals messages that are not raw frames.
	_ "google.golang.org/grpc/encoding/proto"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/callmeta"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/router"
)

// ServeCore serves one gRPC call that arrives as an HTTP request on the
// in-process core, without the door's body checks: gRPC-Web (binary or
// text), or gRPC over HTTP in the shape of gRPC over HTTP/2 (content type
// application/grpc, the status in HTTP trailers). The call runs the chain
// and the handler on this goroutine, the request messages read from the
// body as raw frames and the response messages written to w as they come,
// with no HTTP/2 server transport in between (grpc.Server.ServeHTTP would
// add one, with a goroutine and a channel hop per write) and no
// translation layer (improbable-eng's wrapper copies every header and
// trailer twice).
//
// Request metadata is every header but the reserved ones (content-type,
// te, grpc-*), -bin values decoded (the door's own gRPC-Web calls keep
// only the headers of its allow list: Options.ForwardHeaders);
// grpc-timeout sets the deadline. The response headers are sent with the
// first message (or when the handler sends them); the status, message,
// details and trailer metadata go to trailers (for gRPC-Web, a trailer
// frame at the end of the body), or to the headers of a trailers-only
// answer when nothing else was sent. A gRPC-Web answer lists its headers
// in Access-Control-Expose-Headers, so that a browser client may read
// them.
func ServeCore(core *router.InProcess, maxMessageBytes int, w http.ResponseWriter, r *http.Request) {
	d := &Door{o: Options{Core: core, MaxMessageBytes: maxMessageBytes}}
	var b io.Reader = r.Body
	if IsText(r.Header.Get("Content-Type")) {
		b = base64.NewDecoder(base64.StdEncoding, r.Body)
	}
	d.serveCore(w, r, b)
}

// serveCore runs the call of r on the core, reading its frames from b
// (decoded from base64 already in text mode).
func (d *Door) serveCore(w http.ResponseWriter, r *http.Request, b io.Reader) {
	if info := callinfo.FromContext(r.Context()); info != nil {
		info.SetClientForwarding(callinfo.HTTPForwarding(r.Header, r.Host))
	}
	hs := &stream{w: w, body: b, max: d.o.MaxMessageBytes, method: r.URL.Path, contentType: "application/grpc"}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, contentType) {
		hs.web, hs.text, hs.contentType = true, IsText(ct), responseType(ct)
	}
	hs.finish(hs.serve(d.o.Core, r, d.metadata(r)))
}

// metadata is the call metadata of r: every header but the reserved ones
// for ServeCore, the headers of the allow list for the door's calls (the
// names of the others logged at debug level, but for the forwarding
// headers, which follow their own rule).
func (d *Door) metadata(r *http.Request) metadata.MD {
	if d.forward == nil {
		return grpcwire.IncomingMetadata(r.Header, r.Host)
	}
	md := grpcwire.FilteredMetadata(r.Header, r.Host, d.forward)
	if d.o.Log != nil && d.o.Log.Enabled(r.Context(), slog.LevelDebug) {
		var left []string
		for k := range r.Header {
			if k := grpcwire.LowerKey(k); !grpcwire.Reserved(k) && !d.forward[k] && !callinfo.IsForwardingKey(k) {
				left = append(left, k)
			}
		}
		if len(left) > 0 {
			slices.Sort(left)
			d.o.Log.Debug("gRPC-Web request headers not forwarded as metadata: list the ones the upstream or a policy needs in http.grpc_web.forward_request_headers",
				slog.String("method", r.URL.Path), slog.Any("headers", left))
		}
	}
	return md
}

// responseType is the content type of the answer to a gRPC-Web request
// of content type ct.
func responseType(ct string) string {
	if IsText(ct) {
		return textContentType
	}
	return contentType
}

// body is a request body the door has read whole and checked: its frames,
// decoded from base64 in text mode.
type body struct {
	frames []byte
	off    int
}

func (b *body) Read(p []byte) (int, error) {
	if b.off >= len(b.frames) {
		return 0, io.EOF
	}
	n := copy(p, b.frames[b.off:])
	b.off += n
	return n, nil
}

// fallback marshals the messages that are not raw frames.
var fallback = encoding.GetCodecV2("proto")

// stream is the core's view of a call served by the door.
type stream struct {
	ctx    context.Context
	w      http.ResponseWriter
	body   io.Reader
	max    int
	method string
	gzip   bool // the request's compressed messages are gzip
	web    bool // gRPC-Web: the status goes in a trailer frame
	text   bool // gRPC-Web text: the response body is base64 too

	contentType string // of the response

	callmeta.Meta // HeaderSent: the HTTP headers are written

	prefix [5]byte
}

// serve checks the request and runs the call; its error is the call's
// status.
func (s *stream) serve(core *router.InProcess, r *http.Request, md metadata.MD) error {
	if err := s.prepare(r); err != nil {
		return err
	}
	d, ok, err := grpcwire.ParseTimeout(r.Header.Get("Grpc-Timeout"))
	if err != nil {
		return err
	}
	ctx, cancel := r.Context(), context.CancelFunc(nil)
	if ok {
		ctx, cancel = context.WithTimeout(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	s.ctx = grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(ctx, md), callmeta.TransportStream{S: s})
	// A gRPC-over-HTTP request may stream either way.
	return core.Serve(s, s.method, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true})
}

// prepare checks what the request says of its messages: the method's form
// and the compression of compressed messages.
func (s *stream) prepare(r *http.Request) error {
	if !strings.HasPrefix(s.method, "/") || strings.Count(s.method, "/") != 2 || strings.HasSuffix(s.method, "/") {
		return status.Errorf(codes.Unimplemented, "edgegate: malformed method name %q", s.method)
	}
	switch enc := r.Header.Get("Grpc-Encoding"); enc {
	case "", "identity":
	case "gzip":
		s.gzip = true
	default:
		return status.Errorf(codes.Unimplemented, "edgegate: message compression %q is not supported", enc)
	}
	return nil
}

func (s *stream) Context() context.Context { return s.ctx }
func (s *stream) Method() string           { return s.method }

func (s *stream) SendHeader(md metadata.MD) error {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if err := s.AddHeaderLocked(md); err != nil {
		return err
	}
	s.writeHeaderLocked()
	s.flushLocked()
	return nil
}

// flushLocked sends what was written (the headers, a message) at once.
func (s *stream) flushLocked() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// writeHeaderLocked writes the HTTP response headers: the content type and
// the header metadata.
func (s *stream) writeHeaderLocked() {
	h := s.w.Header()
	h.Set("Content-Type", s.contentType)
	grpcwire.PutMetadata(h, "", s.Header)
	if s.web {
		expose(h)
	}
	s.w.WriteHeader(http.StatusOK)
	s.HeaderSent = true
}

// expose lists a gRPC-Web answer's headers, and the status headers, in
// Access-Control-Expose-Headers, each once.
func expose(h http.Header) {
	keys := make([]string, 0, len(h)+2)
	for k := range h {
		if k != "Grpc-Status" && k != "Grpc-Message" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = append(keys, "grpc-status", "grpc-message")
	h.Set("Access-Control-Expose-Headers", strings.Join(keys, ", "))
}

// writeFrameLocked writes one length-prefixed frame (flags 0 for a
// message, 0x80 for gRPC-Web trailers), base64 encoded for gRPC-Web text.
func (s *stream) writeFrameLocked(flags byte, data mem.BufferSlice) error {
	n := data.Len()
	var prefix [5]byte
	prefix[0] = flags
	binary.BigEndian.PutUint32(prefix[1:], uint32(n))
	if s.text {
		raw := make([]byte, 0, 5+n)
		raw = append(raw, prefix[:]...)
		for _, b := range data {
			raw = append(raw, b.ReadOnlyData()...)
		}
		_, err := s.w.Write(base64.StdEncoding.AppendEncode(nil, raw))
		return err
	}
	if _, err := s.w.Write(prefix[:]); err != nil {
		return err
	}
	for _, b := range data {
		if _, err := s.w.Write(b.ReadOnlyData()); err != nil {
			return err
		}
	}
	return nil
}

// RecvMsg reads the next request message: into m as raw bytes when m is a
// *router.Frame (the proxy), unmarshalled otherwise. io.EOF at the end of
// the body.
func (s *stream) RecvMsg(m any) error {
	if _, err := io.ReadFull(s.body, s.prefix[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return status.Error(codes.InvalidArgument, "edgegate: request body ends inside a message header")
	}
	n := binary.BigEndian.Uint32(s.prefix[1:])
	if s.max > 0 && int64(n) > int64(s.max) {
		return status.Errorf(codes.ResourceExhausted, "edgegate: received message larger than max (%d vs. %d)", n, s.max)
	}
	data, err := grpcwire.ReadMessage(s.body, int(n))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "edgegate: request body ends inside a message (%d bytes declared)", n)
	}
	if s.prefix[0]&1 != 0 {
		plain, err := s.decompress(data)
		data.Free()
		if err != nil {
			return err
		}
		data = mem.BufferSlice{mem.SliceBuffer(plain)}
	}
	if f, ok := m.(*router.Frame); ok {
		f.SetBuffers(data)
		return nil
	}
	defer data.Free()
	if err := fallback.Unmarshal(data, m); err != nil {
		return status.Errorf(codes.Internal, "edgegate: unmarshal request: %v", err)
	}
	return nil
}

// decompress inflates a compressed request message, bounded by the
// largest message.
func (s *stream) decompress(data mem.BufferSlice) ([]byte, error) {
	if !s.gzip {
		return nil, status.Error(codes.Internal, "edgegate: compressed message without grpc-encoding")
	}
	zr, err := gzip.NewReader(data.Reader())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "edgegate: decompressing a message: %v", err)
	}
	limit := int64(s.max)
	if limit <= 0 {
		limit = 1<<31 - 1
	}
	plain, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "edgegate: decompressing a message: %v", err)
	}
	if int64(len(plain)) > limit {
		return nil, status.Errorf(codes.ResourceExhausted, "edgegate: received message after decompression larger than max (%d)", s.max)
	}
	return plain, nil
}

// SendMsg writes a response message, after the headers if they are not
// written yet, and flushes it.
func (s *stream) SendMsg(m any) error {
	var data mem.BufferSlice
	if f, ok := m.(*router.Frame); ok {
		data = f.TakeBuffers()
	} else {
		var err error
		if data, err = fallback.Marshal(m); err != nil {
			return status.Errorf(codes.Internal, "edgegate: marshal response: %v", err)
		}
	}
	defer data.Free()
	n := data.Len()
	if s.max > 0 && n > s.max {
		return status.Errorf(codes.ResourceExhausted, "edgegate: trying to send message larger than max (%d vs. %d)", n, s.max)
	}
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if !s.HeaderSent {
		s.writeHeaderLocked()
	}
	if err := s.writeFrameLocked(0, data); err != nil {
		return status.FromContextError(context.Canceled).Err()
	}
	s.flushLocked()
	return nil
}

// finish writes the call's status: in trailers after headers or messages
// (for gRPC-Web, a trailer frame), else in the headers of a trailers-only
// answer.
func (s *stream) finish(err error) {
	st := status.Convert(err)
	if err != nil && st.Code() == codes.Unknown {
		if c := status.FromContextError(err); c.Code() != codes.Unknown {
			st = c
		}
	}
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.Ended = true
	switch {
	case !s.HeaderSent:
		if s.web {
			writeTrailersOnly(s.w, s.contentType, s.Header, s.Trailer, st)
			return
		}
		// gRPC over HTTP, trailers-only: everything in the headers.
		h := s.w.Header()
		h.Set("Content-Type", s.contentType)
		grpcwire.PutMetadata(h, "", s.Header)
		grpcwire.PutStatus(h, "", st)
		grpcwire.PutMetadata(h, "", s.Trailer)
	case !s.web:
		h := s.w.Header()
		grpcwire.PutStatus(h, http.TrailerPrefix, st)
		grpcwire.PutMetadata(h, http.TrailerPrefix, s.Trailer)
	default:
		// gRPC-Web: a trailer frame of "key: value" lines, lower-case.
		_ = s.writeFrameLocked(0x80, mem.BufferSlice{mem.SliceBuffer(trailerBlock(st, s.Trailer))})
		s.flushLocked()
	}
}

// writeTrailersOnly writes a gRPC-Web answer with no message: the header
// metadata, the status and the trailer metadata all in the HTTP headers,
// listed for the browser, status 200. Every answer of the door without a
// message is written here.
func writeTrailersOnly(w http.ResponseWriter, ct string, header, trailer metadata.MD, st *status.Status) {
	h := w.Header()
	h.Set("Content-Type", ct)
	grpcwire.PutMetadata(h, "", header)
	grpcwire.PutStatus(h, "", st)
	grpcwire.PutMetadata(h, "", trailer)
	expose(h)
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// trailerBlock is a gRPC-Web trailer frame's payload: the status and the
// trailer metadata as "key: value\r\n" lines, keys lower-case and sorted,
// values as http.Header.Write writes them (line breaks made spaces,
// surrounding blanks trimmed). Trailer keys that are reserved (in any case)
// or not valid header names are left out.
func trailerBlock(st *status.Status, trailer metadata.MD) []byte {
	type field struct {
		key string
		vs  []string
	}
	fields := make([]field, 0, len(trailer)+3)
	statusHeader := make(http.Header, 3)
	grpcwire.PutStatus(statusHeader, "", st)
	for k, vs := range statusHeader {
		fields = append(fields, field{strings.ToLower(k), vs})
	}
	size := 0
	for k, vs := range trailer {
		k = grpcwire.LowerKey(k)
		if !httpguts.ValidHeaderFieldName(k) {
			continue // as http.Header.Write
		}
		if vs, ok := grpcwire.WireValues(k, vs); ok { // no status twice
			fields = append(fields, field{k, vs})
		}
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.key, b.key) })
	for _, f := range fields {
		for _, v := range f.vs {
			size += len(f.key) + len(v) + 4
		}
	}
	b := make([]byte, 0, size)
	for _, f := range fields {
		for _, v := range f.vs {
			b = append(b, f.key...)
			b = append(b, ": "...)
			b = append(b, headerValue(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// headerValue is v as http.Header.Write writes it: line breaks made spaces,
// surrounding blanks trimmed.
func headerValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	return strings.Trim(v, " \t")
}
