package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/internal/h2client"
)

// A call's attempts: the retries of a retry policy (retries.go), and the
// transparent ones of a call the upstream never saw (a stream refused, a
// connection that went away or could not be made before the call was
// written), which are made whatever the method.
const maxTransparent = 5

// retryBuffer is how much of a retried stream's request is kept for
// another attempt; a stream that sent more is committed to its attempt
// (grpc-go's limit too).
const retryBuffer = 256 << 10

// Result is what a unary call answered.
type Result struct {
	Header, Trailer metadata.MD
	// Message is the answer (nil when the call failed); the caller frees it.
	Message mem.BufferSlice
	// Endpoint is the address the call's last attempt went to.
	Endpoint string
}

// Invoke makes a unary call of method with request req (whose reference it
// takes) and the outgoing metadata md, retried as the cluster's policy
// allows. The error is the call's status.
func (c *Cluster) Invoke(ctx context.Context, method string, md metadata.MD, req mem.BufferSlice) (*Result, error) {
	defer req.Free()
	retry := c.retries.applies(method)
	res := &Result{}
	for attempt, transparent := 1, 0; ; {
		var hdr, tlr metadata.MD
		call, err := c.open(ctx, method, md, true)
		if err == nil {
			res.Endpoint = call.endpoint
			err = call.unary(req)
			hdr, tlr = call.header, call.trailer
			if err == nil {
				res.Message, call.msg = call.msg, nil
			}
			call.Close()
		}
		switch {
		case err == nil:
			c.retries.succeeded()
			res.Header, res.Trailer = hdr, tlr
			return res, nil
		case errors.Is(err, h2client.ErrRefused) && transparent < maxTransparent && ctx.Err() == nil:
			transparent++
		case call != nil && retry && !call.committed && c.retries.again(ctx, err, &attempt):
		default:
			// The last attempt's metadata only.
			res.Header, res.Trailer = hdr, tlr
			return res, asStatus(err)
		}
	}
}

// Stream is a call of a streaming method on the cluster's frame
// connections; its Send and CloseSend belong to one goroutine, Header,
// Recv and Trailer to one (which may be another).
type Stream struct {
	cl     *Cluster
	ctx    context.Context
	method string
	md     metadata.MD

	mu      sync.Mutex // the attempt, while a retry replaces it
	call    *call
	retry   bool
	attempt int
	sent    []mem.BufferSlice // kept for another attempt until committed
	sentN   int
	ended   bool // CloseSend
}

// NewStream starts a streaming call of method with the outgoing metadata
// md. A method the retry policy covers is retried, until the upstream
// answers, with the messages sent so far (up to 256 KiB).
func (c *Cluster) NewStream(ctx context.Context, method string, md metadata.MD) (*Stream, error) {
	s := &Stream{cl: c, ctx: ctx, method: method, md: md, retry: c.retries.applies(method), attempt: 1}
	call, err := c.openRetrying(ctx, method, md)
	if err != nil {
		return nil, err
	}
	s.call = call
	return s, nil
}

// openRetrying opens an attempt, again while the upstream refuses it.
func (c *Cluster) openRetrying(ctx context.Context, method string, md metadata.MD) (*call, error) {
	for transparent := 0; ; transparent++ {
		call, err := c.open(ctx, method, md, false)
		if err == nil {
			return call, nil
		}
		if !errors.Is(err, h2client.ErrRefused) || transparent >= maxTransparent || ctx.Err() != nil {
			return nil, err
		}
	}
}

// Endpoint is the address the call's current attempt goes to.
func (s *Stream) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.call.endpoint
}

// Send sends a message (whose reference it takes).
func (s *Stream) Send(m mem.BufferSlice) error {
	s.mu.Lock()
	call := s.call
	keep := s.retry && !call.committed
	if keep {
		s.sentN += m.Len()
		if s.sentN > retryBuffer {
			keep = false
			s.commitLocked()
		} else {
			m.Ref()
			s.sent = append(s.sent, m)
		}
	}
	s.mu.Unlock()
	err := call.send(m, false)
	m.Free()
	if err != nil && keep {
		return nil // the retry, seen by Recv, sends it again
	}
	return err
}

// CloseSend ends the request.
func (s *Stream) CloseSend() error {
	s.mu.Lock()
	s.ended = true
	call := s.call
	s.mu.Unlock()
	return call.st.CloseSend()
}

func (s *Stream) commitLocked() {
	s.call.committed = true
	for _, m := range s.sent {
		m.Free()
	}
	s.sent, s.sentN = nil, 0
}

// Header waits for the upstream's response headers: nil for an answer of
// trailers only (or a failure, which Recv returns).
func (s *Stream) Header() (metadata.MD, error) {
	for {
		s.mu.Lock()
		call := s.call
		s.mu.Unlock()
		err := call.readHeader()
		if err == nil && call.trailersOnly {
			err = call.final().Err() // a failure of trailers only may be retried
		}
		if err != nil && s.retryAfter(call, err) {
			continue
		}
		s.mu.Lock()
		if s.call == call {
			s.commitLocked()
		}
		s.mu.Unlock()
		if err != nil || call.trailersOnly {
			return nil, nil
		}
		return call.header, nil
	}
}

// retryAfter replaces a failed attempt with a new one when the policy
// allows: picked again, with the request so far sent again. It reports
// whether it did.
func (s *Stream) retryAfter(call *call, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.call != call || call.committed {
		return false
	}
	refused := errors.Is(err, h2client.ErrRefused)
	if !refused {
		if !s.retry || !s.cl.retries.again(s.ctx, asStatus(err), &s.attempt) {
			return false
		}
	}
	next, oerr := s.cl.openRetrying(s.ctx, s.method, s.md)
	if oerr != nil {
		return false
	}
	for _, m := range s.sent {
		m.Ref()
		if next.send(m, false) != nil {
			break
		}
		m.Free()
	}
	if s.ended {
		_ = next.st.CloseSend()
	}
	call.Close()
	s.call = next
	return true
}

// Recv returns the next message (the caller frees it); io.EOF when the
// call ended OK, else its status.
func (s *Stream) Recv() (mem.BufferSlice, error) {
	if _, err := s.Header(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	call := s.call
	s.mu.Unlock()
	if call.headerErr != nil {
		return nil, call.headerErr
	}
	m, err := call.recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			if st := call.final(); st.Code() != codes.OK {
				return nil, st.Err()
			}
			s.cl.retries.succeeded()
			return nil, io.EOF
		}
		return nil, asStatus(err)
	}
	return m, nil
}

// Trailer is the call's trailers, once Recv has returned an error.
func (s *Stream) Trailer() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.call.trailer
}

// Close ends the call (the upstream stream is reset unless it ended) and
// releases what it holds.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitLocked()
	s.call.Close()
}

// call is one attempt: one stream on one connection.
type call struct {
	cl       *Cluster
	ctx      context.Context
	st       *h2client.Stream
	endpoint string
	done     func(error)

	headerRead   bool
	headerErr    error
	header       metadata.MD
	trailer      metadata.MD
	trailersOnly bool
	committed    bool // the upstream answered: no other attempt
	decomp       encoding.Compressor
	msg          mem.BufferSlice
	fin          *status.Status
	prefix       [5]byte
}

// open picks an endpoint and opens a stream to it, with the request's
// headers; for a unary call corked, so that the headers and the request
// leave in one write.
func (c *Cluster) open(ctx context.Context, method string, md metadata.MD, unary bool) (*call, error) {
	addr, done, err := c.Pick(ctx, method)
	if err != nil {
		return nil, err
	}
	var st *h2client.Stream
	conn, err := c.frames.get(ctx, addr)
	if err == nil {
		hp := headerPool.Get().(*[]hpack.HeaderField)
		*hp = c.requestHeader(ctx, (*hp)[:0], method, md)
		st, err = conn.NewStream(ctx, *hp, false, unary)
		headerPool.Put(hp)
	}
	if err != nil {
		// No connection, or no stream on it: the upstream never saw the call.
		done(err)
		if cerr := ctx.Err(); cerr != nil {
			return nil, status.FromContextError(cerr).Err()
		}
		return nil, refused{status.Error(codes.Unavailable, err.Error())}
	}
	return &call{cl: c, ctx: ctx, st: st, endpoint: addr, done: done}, nil
}

// refused is the status of an attempt the upstream never saw.
type refused struct{ error }

func (refused) Is(target error) bool { return target == h2client.ErrRefused }

func (r refused) GRPCStatus() *status.Status { return status.Convert(r.error) }

var headerPool = sync.Pool{New: func() any { h := make([]hpack.HeaderField, 0, 16); return &h }}

// requestHeader appends to h the header block of a call: what grpc-go's
// client sends, then md (-bin values base64-encoded).
func (c *Cluster) requestHeader(ctx context.Context, h []hpack.HeaderField, method string, md metadata.MD) []hpack.HeaderField {
	h = append(h,
		hpack.HeaderField{Name: ":method", Value: "POST"},
		hpack.HeaderField{Name: ":scheme", Value: c.scheme},
		hpack.HeaderField{Name: ":path", Value: method},
		hpack.HeaderField{Name: ":authority", Value: c.authority},
		hpack.HeaderField{Name: "content-type", Value: "application/grpc"},
		hpack.HeaderField{Name: "user-agent", Value: "edgegate"},
		hpack.HeaderField{Name: "te", Value: "trailers"},
		hpack.HeaderField{Name: "grpc-accept-encoding", Value: acceptEncoding},
	)
	if c.compressor != nil {
		h = append(h, hpack.HeaderField{Name: "grpc-encoding", Value: c.compressor.Name()})
	}
	if dl, ok := ctx.Deadline(); ok {
		h = append(h, hpack.HeaderField{Name: "grpc-timeout", Value: grpcwire.FormatTimeout(time.Until(dl))})
	}
	return grpcwire.AppendFields(h, md)
}

// acceptEncoding is what the gateway decompresses (grpc-go's gzip and the
// zstd of internal/grpczstd).
const acceptEncoding = "gzip,zstd"

// unary sends req, ends the request and reads the one answer.
func (a *call) unary(req mem.BufferSlice) error {
	err := a.send(req, true)
	a.st.Uncork()
	if err != nil {
		return err
	}
	if err := a.readHeader(); err != nil {
		return err
	}
	if a.trailersOnly {
		// Not committed: a trailers-only failure may be retried.
		return a.final().Err()
	}
	a.committed = true
	m, err := a.recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			if st := a.final(); st.Code() != codes.OK {
				return st.Err()
			}
			return status.Error(codes.Internal, "cardinality violation: received no response message from non-server-streaming RPC")
		}
		return err
	}
	a.msg = m
	// The end of the call: its trailers.
	if _, err := a.st.Read(a.prefix[:1]); !errors.Is(err, io.EOF) {
		m.Free()
		a.msg = nil
		if err == nil {
			return status.Error(codes.Internal, "cardinality violation: expected <EOS> for non server-streaming RPCs, but received another message")
		}
		return a.streamError(err)
	}
	if st := a.final(); st.Code() != codes.OK {
		m.Free()
		a.msg = nil
		return st.Err()
	}
	return nil
}

// send writes one message, compressed when the cluster says so.
func (a *call) send(m mem.BufferSlice, end bool) error {
	c := a.cl
	if c.compressor != nil {
		cm, err := compress(c.compressor, m)
		if err != nil {
			return status.Errorf(codes.Internal, "grpc: error while compressing: %v", err)
		}
		defer cm.Free()
		m = cm
		a.prefix[0] = 1
	} else {
		a.prefix[0] = 0
	}
	n := m.Len()
	if n > c.maxMsg {
		return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", n, c.maxMsg)
	}
	binary.BigEndian.PutUint32(a.prefix[1:], uint32(n))
	var err error
	if len(m) == 1 {
		err = a.st.Write(a.prefix[:], m[0].ReadOnlyData(), end)
	} else {
		b := m.MaterializeToBuffer(mem.DefaultBufferPool())
		err = a.st.Write(a.prefix[:], b.ReadOnlyData(), end)
		b.Free()
	}
	if err != nil {
		return a.streamError(err)
	}
	return nil
}

func compress(comp encoding.Compressor, m mem.BufferSlice) (mem.BufferSlice, error) {
	var out mem.BufferSlice
	w := mem.NewWriter(&out, mem.DefaultBufferPool())
	cw, err := comp.Compress(w)
	if err != nil {
		return nil, err
	}
	for _, b := range m {
		if _, err := cw.Write(b.ReadOnlyData()); err != nil {
			out.Free()
			return nil, err
		}
	}
	if err := cw.Close(); err != nil {
		out.Free()
		return nil, err
	}
	return out, nil
}

// readHeader waits for the response's headers and checks them: HTTP 200,
// a gRPC content type, a known grpc-encoding.
func (a *call) readHeader() error {
	if a.headerRead {
		return a.headerErr
	}
	a.headerRead = true
	fields, trailersOnly, err := a.st.Header()
	if err != nil {
		a.headerErr = a.streamError(err)
		return a.headerErr
	}
	httpStatus, ctype, enc := "", "", ""
	for _, f := range fields {
		switch f.Name {
		case ":status":
			httpStatus = f.Value
		case "content-type":
			ctype = f.Value
		case "grpc-encoding":
			enc = f.Value
		}
	}
	md, ws := fromFields(fields)
	a.header = md
	if httpStatus != "200" {
		a.headerErr = httpError(httpStatus, trailersOnly, ws)
		return a.headerErr
	}
	if !strings.HasPrefix(ctype, "application/grpc") {
		a.headerErr = status.Errorf(codes.Unknown, "transport: received unexpected content-type %q", ctype)
		return a.headerErr
	}
	if trailersOnly {
		a.trailersOnly = true
		delete(md, "content-type")
		a.trailer, a.header = md, nil
		a.fin = ws.status()
		return nil
	}
	if enc != "" && enc != "identity" {
		if a.decomp = encoding.GetCompressor(enc); a.decomp == nil {
			a.headerErr = status.Errorf(codes.Internal, "grpc: Decompressor is not installed for grpc-encoding %q", enc)
			return a.headerErr
		}
	}
	return nil
}

// httpError is grpc-go's status for an answer that is not HTTP 200: its
// grpc-status when it has one, else the code of the HTTP status.
func httpError(httpStatus string, trailersOnly bool, ws wireStatus) error {
	if trailersOnly && ws.has {
		return ws.status().Err()
	}
	code := codes.Unknown
	switch httpStatus {
	case "400":
		code = codes.Internal
	case "401":
		code = codes.Unauthenticated
	case "403":
		code = codes.PermissionDenied
	case "404":
		code = codes.Unimplemented
	case "429", "502", "503", "504":
		code = codes.Unavailable
	}
	return status.Errorf(code, "unexpected HTTP status code received from server: %s", httpStatus)
}

// fromFields reads a response header block: its metadata (pseudo-headers
// and the status fields left out, -bin values decoded; the values share
// one array) and its status fields.
func fromFields(fields []hpack.HeaderField) (metadata.MD, wireStatus) {
	var ws wireStatus
	n := 0
	for _, f := range fields {
		if f.Name != "" && f.Name[0] != ':' && !strings.HasPrefix(f.Name, "grpc-") {
			n++
		}
	}
	md := grpcwire.NewFieldsMetadata(n)
	for _, f := range fields {
		k := f.Name
		switch {
		case k == "" || k[0] == ':':
			continue
		case k == "grpc-status":
			ws.code, ws.has = f.Value, true
			continue
		case k == "grpc-message":
			ws.message = f.Value
			continue
		case k == "grpc-status-details-bin":
			ws.details = f.Value
			continue
		}
		v := f.Value
		if strings.HasSuffix(k, "-bin") {
			b, err := grpcwire.DecodeBin(v)
			if err != nil {
				continue
			}
			v = string(b)
		}
		md.Add(k, v)
	}
	return md.MD, ws
}

// recv reads the next message; io.EOF at the end of the response.
func (a *call) recv() (mem.BufferSlice, error) {
	if _, err := io.ReadFull(a.st, a.prefix[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, status.Error(codes.Internal, "grpc: the response ended within a message")
		}
		return nil, a.streamError(err)
	}
	n := int(binary.BigEndian.Uint32(a.prefix[1:]))
	max := a.cl.maxMsg
	if n > max {
		a.st.Reset(http2.ErrCodeCancel)
		return nil, status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, max)
	}
	data, err := grpcwire.ReadMessage(a.st, n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, status.Error(codes.Internal, "grpc: the response ended within a message")
		}
		return nil, a.streamError(err)
	}
	if a.prefix[0]&1 != 0 {
		return grpcwire.Decompress(a.decomp, data, max)
	}
	return data, nil
}

// final is the call's status from its trailers, once the response ended.
func (a *call) final() *status.Status {
	if a.fin == nil {
		a.fin = a.readFinal()
	}
	return a.fin
}

func (a *call) readFinal() *status.Status {
	md, ws := fromFields(a.st.Trailer())
	a.trailer = md
	if !ws.has {
		return status.New(codes.Internal, "server closed the stream without sending trailers")
	}
	return ws.status()
}

// wireStatus is the status fields of a header block, as sent.
type wireStatus struct {
	code, message, details string
	has                    bool // grpc-status was there
}

// status is the call's status from its fields.
func (ws wireStatus) status() *status.Status {
	return grpcwire.ParseStatus(ws.code, ws.message, ws.details)
}

// streamError is the status of a stream that failed: its context's,
// the upstream's RST_STREAM mapped as grpc-go maps it, or UNAVAILABLE for
// the connection's end (refused when the upstream never saw the call).
func (a *call) streamError(err error) error {
	if cerr := a.ctx.Err(); cerr != nil {
		return status.FromContextError(cerr).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unavailable
	se, reset := errors.AsType[*h2client.StreamError](err)
	if reset {
		code = resetCode(se.Code)
	}
	st := status.New(code, err.Error())
	switch {
	case errors.Is(err, h2client.ErrRefused):
		return refused{st.Err()}
	case reset:
		return &ResetError{Code: uint32(se.Code), st: st}
	}
	return st.Err()
}

// ResetError is a call the upstream ended with RST_STREAM: its status,
// and the HTTP/2 error code, which the native door passes on as it is.
type ResetError struct {
	Code uint32
	st   *status.Status
}

func (e *ResetError) Error() string              { return e.st.Err().Error() }
func (e *ResetError) GRPCStatus() *status.Status { return e.st }

// ResetCode is the upstream's RST_STREAM code.
func (e *ResetError) ResetCode() uint32 { return e.Code }

// resetCode is grpc-go's mapping of an HTTP/2 error code to a status.
func resetCode(c http2.ErrCode) codes.Code {
	switch c {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeFlowControl, http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// asStatus is err as a status error: err itself when it is one (its type
// kept: a ResetError, a refused attempt), else its conversion.
func asStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Convert(err).Err()
}

// Close ends the attempt: the stream is closed and the balancer told.
func (a *call) Close() {
	a.st.Close()
	if a.msg != nil {
		a.msg.Free()
		a.msg = nil
	}
	if a.done != nil {
		a.done(nil)
		a.done = nil
	}
}

// retryBackoff is the wait before retry n (1-based): random up to 20 ms
// doubling to at most 0.5 s, as the service config gave grpc-go.
func retryBackoff(n int) time.Duration {
	d := 20 * time.Millisecond
	for i := 1; i < n && d < 500*time.Millisecond; i++ {
		d *= 2
	}
	d = min(d, 500*time.Millisecond)
	return time.Duration(rand.Int64N(int64(d)) + 1) //nolint:gosec // jitter, not a secret
}
