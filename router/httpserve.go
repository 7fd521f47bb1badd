package router

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ServeHTTP serves one gRPC call that arrives as an HTTP request: gRPC-Web
// (binary or text, the browser protocol), or gRPC over HTTP in the shape of
// gRPC over HTTP/2 (content type application/grpc, the status in HTTP
// trailers). The call runs the chain and the handler on this goroutine, the
// request messages read from the body as raw frames and the response
// messages written to w as they come, with no HTTP/2 server transport in
// between (grpc.Server.ServeHTTP would add one, with a goroutine and a
// channel hop per write) and, for gRPC-Web, no translation layer (the
// improbable-eng wrapper copied every header and trailer twice: 12 % of a
// gRPC-Web call's CPU in the bench profile).
//
// Request metadata is every header but the reserved ones (content-type,
// te, grpc-*), -bin values decoded; grpc-timeout sets the deadline. The
// response headers are sent with the first message (or when the handler
// sends them); the status, message, details and trailer metadata go to
// trailers (for gRPC-Web, a trailer frame at the end of the body), or to
// the headers of a trailers-only answer when nothing else was sent. A
// gRPC-Web answer lists its headers in Access-Control-Expose-Headers, so
// that a browser client may read them.
func (c *InProcess) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hs := &httpStream{w: w, body: r.Body, codec: c.codec, max: c.maxMessageBytes, method: r.URL.Path, contentType: "application/grpc"}
	if ct := r.Header.Get("Content-Type"); IsWebText(ct) {
		hs.web, hs.text, hs.contentType = true, true, webText
		if _, decoded := r.Body.(*WebBody); !decoded {
			hs.body = base64.NewDecoder(base64.StdEncoding, r.Body)
		}
	} else if strings.HasPrefix(ct, web) {
		hs.web, hs.contentType = true, web
	}
	hs.finish(c.serveHTTP(hs, r))
}

// WebBody is a gRPC-Web request body that the door has read whole and
// checked: the request's frames, decoded from base64 for gRPC-Web text.
// ServeHTTP reads a WebBody's frames as they are, so that a text body is
// decoded once, by the door, whose decoder accepts the body in padded
// chunks; a text body that is not a WebBody is decoded here as one base64
// stream.
type WebBody struct {
	frames []byte
	r      bytes.Reader
}

// NewWebBody returns a body that reads frames.
func NewWebBody(frames []byte) *WebBody {
	b := &WebBody{frames: frames}
	b.r.Reset(frames)
	return b
}

// Frames is the whole body, whatever was read of it.
func (b *WebBody) Frames() []byte { return b.frames }

func (b *WebBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *WebBody) Close() error               { return nil }

// The gRPC-Web content types (a request's may end in +proto).
const (
	web     = "application/grpc-web"
	webText = "application/grpc-web-text"
)

// IsWebText reports whether a request's content type is gRPC-Web text
// (base64).
func IsWebText(contentType string) bool {
	return strings.HasPrefix(contentType, webText)
}

// serveHTTP checks the request and runs the call; its error is the call's
// status.
func (c *InProcess) serveHTTP(hs *httpStream, r *http.Request) error {
	if err := hs.prepare(r); err != nil {
		return err
	}
	d, ok, err := timeoutOf(r.Header.Get("Grpc-Timeout"))
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
	hs.ctx = grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(ctx, hs.incoming(r)), transportStream{hs})
	// A gRPC-over-HTTP request may stream either way.
	return c.run(hs, hs.method, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true})
}

// httpStream is the core's view of a call served by ServeHTTP.
type httpStream struct {
	ctx    context.Context
	w      http.ResponseWriter
	body   io.Reader
	codec  Codec
	max    int
	method string
	gzip   bool // the request's compressed messages are gzip
	web    bool // gRPC-Web: the status goes in a trailer frame
	text   bool // gRPC-Web text: the response body is base64 too

	contentType string // of the response

	callMeta // headerSent: the HTTP headers are written

	prefix [5]byte
}

// prepare checks what the request says of its messages: the method's form
// and the compression of compressed messages.
func (s *httpStream) prepare(r *http.Request) error {
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

// reservedHeader reports whether an HTTP header is part of the gRPC
// protocol, not metadata.
func reservedHeader(k string) bool {
	switch k {
	case "content-type", "te", "connection", "content-length", "user-agent":
		return true
	}
	return strings.HasPrefix(k, "grpc-")
}

// incoming is the call's metadata: the request's headers, lower-case,
// -bin values decoded, plus :authority.
func (s *httpStream) incoming(r *http.Request) metadata.MD {
	md := make(metadata.MD, len(r.Header)+2)
	for k, vs := range r.Header {
		k = lowerKey(k)
		if reservedHeader(k) {
			continue
		}
		if !strings.HasSuffix(k, "-bin") {
			// The request's values as they are: metadata is read, or
			// copied before it is changed (metadata.FromIncomingContext).
			if prev, ok := md[k]; ok {
				md[k] = append(prev[:len(prev):len(prev)], vs...)
			} else {
				md[k] = vs
			}
			continue
		}
		for _, v := range vs {
			b, err := decodeBin(v)
			if err != nil {
				continue // as grpc-go: an undecodable value is dropped
			}
			md[k] = append(md[k], string(b))
		}
	}
	if ua := r.Header.Get("User-Agent"); ua != "" {
		md["user-agent"] = []string{ua}
	}
	if r.Host != "" {
		md[":authority"] = []string{r.Host}
	}
	return md
}

// lowerKey is an HTTP header key in lower case, the common keys without an
// allocation (net/http hands them over canonical: "Content-Type").
func lowerKey(k string) string {
	if l, ok := commonKeys[k]; ok {
		return l
	}
	return strings.ToLower(k)
}

// commonKeys are the lower-case forms of headers that browsers and gRPC
// clients send on most calls, by canonical key.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"connection", "content-length", "content-type", "cookie", "dnt", "grpc-accept-encoding",
		"grpc-encoding", "grpc-timeout", "origin", "pragma", "priority", "referer",
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode",
		"sec-fetch-site", "te", "traceparent", "tracestate", "user-agent", "x-forwarded-for",
		"x-forwarded-proto", "x-grpc-web", "x-request-id", "x-user-agent",
	} {
		m[http.CanonicalHeaderKey(k)] = k
	}
	return m
}()

func decodeBin(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// timeoutOf parses a grpc-timeout header; ok is false when it is absent.
func timeoutOf(v string) (d time.Duration, ok bool, err error) {
	if v == "" {
		return 0, false, nil
	}
	bad := status.Errorf(codes.InvalidArgument, "edgegate: malformed grpc-timeout %q", v)
	if len(v) < 2 || len(v) > 9 {
		return 0, false, bad
	}
	n, perr := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if perr != nil || n < 0 {
		return 0, false, bad
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false, bad
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true, nil
	}
	return time.Duration(n) * unit, true, nil
}

func (s *httpStream) Context() context.Context { return s.ctx }
func (s *httpStream) Method() string           { return s.method }

func (s *httpStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.addHeaderLocked(md); err != nil {
		return err
	}
	s.writeHeaderLocked()
	s.flushLocked()
	return nil
}

// flushLocked sends what was written (the headers, a message) at once.
func (s *httpStream) flushLocked() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// KnownUnary reports whether method ("/pkg.Service/Method") is one whose
// descriptor the gateway has (compiled in) and which takes one request and
// answers with one message. The proxy forwards such a call as a unary
// call, and the gRPC-Web door sends its answer whole when the call ends.
func KnownUnary(method string) bool {
	return unaryMethods()[method]
}

// unaryMethods is the set of compiled-in unary methods, by path, built on
// first use (after every package's init has registered its files).
var unaryMethods = sync.OnceValue(func() map[string]bool {
	out := make(map[string]bool)
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				if !m.IsStreamingClient() && !m.IsStreamingServer() {
					out["/"+string(s.FullName())+"/"+string(m.Name())] = true
				}
			}
		}
		return true
	})
	return out
})

// writeHeaderLocked writes the HTTP response headers: the content type and
// the header metadata.
func (s *httpStream) writeHeaderLocked() {
	h := s.w.Header()
	h.Set("Content-Type", s.contentType)
	putMetadata(h, "", s.header)
	s.exposeLocked(h)
	s.w.WriteHeader(http.StatusOK)
	s.headerSent = true
}

// exposeLocked lists a gRPC-Web answer's headers, and the status headers,
// in Access-Control-Expose-Headers.
func (s *httpStream) exposeLocked(h http.Header) {
	if !s.web {
		return
	}
	keys := make([]string, 0, len(h)+2)
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = append(keys, "grpc-status", "grpc-message")
	h.Set("Access-Control-Expose-Headers", strings.Join(keys, ", "))
}

// writeFrameLocked writes one length-prefixed frame (flags 0 for a
// message, 0x80 for gRPC-Web trailers), base64 encoded for gRPC-Web text.
func (s *httpStream) writeFrameLocked(flags byte, data mem.BufferSlice) error {
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

// putMetadata adds md to h, each key with prefix (http.TrailerPrefix for
// trailers); -bin values are base64 encoded, reserved keys skipped.
func putMetadata(h http.Header, prefix string, md metadata.MD) {
	for k, vs := range md {
		if vs, ok := wireValues(k, vs); ok {
			key := prefix + http.CanonicalHeaderKey(k)
			h[key] = append(h[key], vs...)
		}
	}
}

// wireValues is how metadata key k (lower case) goes on the wire: its
// values, -bin ones base64 encoded; ok is false for a key that is not
// sent (reserved, or a pseudo-header).
func wireValues(k string, vs []string) (wire []string, ok bool) {
	if reservedHeader(k) || strings.HasPrefix(k, ":") {
		return nil, false
	}
	if !strings.HasSuffix(k, "-bin") {
		return vs, true
	}
	wire = make([]string, len(vs))
	for i, v := range vs {
		wire[i] = base64.RawStdEncoding.EncodeToString([]byte(v))
	}
	return wire, true
}

// RecvMsg reads the next request message: into m as raw bytes when m is a
// *Frame (the proxy), unmarshalled otherwise. io.EOF at the end of the body.
func (s *httpStream) RecvMsg(m any) error {
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
	pool := mem.DefaultBufferPool()
	buf := pool.Get(int(n))
	if _, err := io.ReadFull(s.body, *buf); err != nil {
		pool.Put(buf)
		return status.Errorf(codes.InvalidArgument, "edgegate: request body ends inside a message (%d bytes declared)", n)
	}
	data := mem.BufferSlice{mem.NewBuffer(buf, pool)}
	if s.prefix[0]&1 != 0 {
		plain, err := s.decompress(data)
		data.Free()
		if err != nil {
			return err
		}
		data = mem.BufferSlice{mem.SliceBuffer(plain)}
	}
	if f, ok := m.(*Frame); ok {
		f.Free()
		f.data = data
		return nil
	}
	defer data.Free()
	if err := s.codec.fallback.Unmarshal(data, m); err != nil {
		return status.Errorf(codes.Internal, "edgegate: unmarshal request: %v", err)
	}
	return nil
}

// decompress inflates a compressed request message, bounded by the
// largest message.
func (s *httpStream) decompress(data mem.BufferSlice) ([]byte, error) {
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
func (s *httpStream) SendMsg(m any) error {
	var data mem.BufferSlice
	if f, ok := m.(*Frame); ok {
		data, f.data = f.data, nil
	} else {
		var err error
		if data, err = s.codec.fallback.Marshal(m); err != nil {
			return status.Errorf(codes.Internal, "edgegate: marshal response: %v", err)
		}
	}
	defer data.Free()
	n := data.Len()
	if s.max > 0 && n > s.max {
		return status.Errorf(codes.ResourceExhausted, "edgegate: trying to send message larger than max (%d vs. %d)", n, s.max)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.headerSent {
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
func (s *httpStream) finish(err error) {
	st := status.Convert(err)
	if err != nil && st.Code() == codes.Unknown {
		if c := status.FromContextError(err); c.Code() != codes.Unknown {
			st = c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	switch {
	case !s.headerSent:
		// Trailers-only: everything in the headers.
		h := s.w.Header()
		h.Set("Content-Type", s.contentType)
		putMetadata(h, "", s.header)
		putStatus(h, "", st)
		putMetadata(h, "", s.trailer)
		if s.web {
			// A gRPC-Web answer is a body: write its headers now.
			s.exposeLocked(h)
			s.w.WriteHeader(http.StatusOK)
			s.flushLocked()
		}
	case !s.web:
		h := s.w.Header()
		putStatus(h, http.TrailerPrefix, st)
		putMetadata(h, http.TrailerPrefix, s.trailer)
	default:
		// gRPC-Web: a trailer frame of "key: value" lines, lower-case.
		_ = s.writeFrameLocked(0x80, mem.BufferSlice{mem.SliceBuffer(trailerBlock(st, s.trailer))})
		s.flushLocked()
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
	putStatus(statusHeader, "", st)
	for k, vs := range statusHeader {
		fields = append(fields, field{strings.ToLower(k), vs})
	}
	size := 0
	for k, vs := range trailer {
		k = lowerKey(k)
		if !httpguts.ValidHeaderFieldName(k) {
			continue // as http.Header.Write
		}
		if vs, ok := wireValues(k, vs); ok { // no status twice
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

// putStatus adds st to h as the grpc-status, grpc-message and
// grpc-status-details-bin headers, each key with prefix.
func putStatus(h http.Header, prefix string, st *status.Status) {
	h[prefix+"Grpc-Status"] = []string{strconv.Itoa(int(st.Code()))}
	if msg := st.Message(); msg != "" {
		h[prefix+"Grpc-Message"] = []string{EncodeGrpcMessage(msg)}
	}
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			h[prefix+"Grpc-Status-Details-Bin"] = []string{base64.RawStdEncoding.EncodeToString(b)}
		}
	}
}

// EncodeGrpcMessage percent-encodes a grpc-message value as the gRPC
// protocol asks: printable ASCII but '%' as is, every other byte %XX.
func EncodeGrpcMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
