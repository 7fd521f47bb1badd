package frontdoor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
)

// Server serves every door on one listener. Each connection is classified
// once, when it opens:
//
//   - HTTP/2 whose first request has content-type application/grpc (not
//     gRPC-Web): handed to GRPC, grpc.Server's own HTTP/2 transport, with
//     the bytes read so far replayed. Native gRPC pays nothing per call for
//     sharing the port.
//   - other HTTP/2 (prior knowledge, or TLS with ALPN h2) and HTTP/1.x:
//     served by HTTP (net/http, which must allow unencrypted HTTP/2).
//
// To see the first request of an HTTP/2 connection the server sends an
// empty SETTINGS frame first (gRPC clients wait for one); the client's
// acknowledgement of it is removed before net/http reads the connection.
type Server struct {
	// GRPC serves native gRPC connections; nil when the listener has no
	// gRPC door (such connections then reach HTTP, which refuses them).
	GRPC *grpc.Server
	// HTTP serves the rest; its Handler is the HTTP door.
	HTTP *http.Server
	// SniffTimeout bounds how long a new connection may take to show what
	// it is (TLS handshake included).
	SniffTimeout time.Duration
	// TLS, when set, terminates TLS on every connection before it is
	// classified.
	TLS *tls.Config
	Log *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	grpcLn *connListener
	httpLn *connListener
	closed bool
}

// Serve accepts connections on ln until Close, then returns nil; or
// returns ln's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.ln = ln
	s.grpcLn = newConnListener(ln.Addr())
	s.httpLn = newConnListener(ln.Addr())
	s.mu.Unlock()
	if s.GRPC != nil {
		go func() { _ = s.GRPC.Serve(s.grpcLn) }()
	}
	go func() { _ = s.HTTP.Serve(s.httpLn) }()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go s.route(c)
	}
}

// StopAccepting closes the listener: no new connections. Connections
// already handed to gRPC or HTTP are theirs to drain.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.grpcLn != nil && s.GRPC == nil {
		_ = s.grpcLn.Close()
	}
}

// Shutdown drains the HTTP side: connections close once their requests
// are done (HTTP/2 ones after GOAWAY). When ctx ends first, every remaining
// connection is closed. (The gRPC side drains with
// grpc.Server.GracefulStop.)
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	err := s.HTTP.Shutdown(ctx)
	if err != nil {
		_ = s.HTTP.Close()
	}
	return err
}

// Close closes every connection of the HTTP side at once.
func (s *Server) Close() {
	s.StopAccepting()
	_ = s.HTTP.Close()
}

type kind int

const (
	kindHTTP1 kind = iota
	kindGRPC
	kindH2
)

func (s *Server) route(c net.Conn) {
	if s.SniffTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(s.SniffTimeout))
	}
	if s.TLS != nil {
		tc := tls.Server(c, s.TLS)
		if err := tc.Handshake(); err != nil {
			if s.Log != nil {
				s.Log.Debug("TLS handshake failed", slog.String("peer", c.RemoteAddr().String()), slog.String("error", err.Error()))
			}
			_ = c.Close()
			return
		}
		c = tc
	}
	rec := &recorder{r: c}
	k, err := sniff(c, rec)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		if s.Log != nil {
			s.Log.Debug("connection closed before it showed its protocol", slog.String("peer", c.RemoteAddr().String()), slog.String("error", err.Error()))
		}
		_ = c.Close()
		return
	}
	rc := &replayConn{Conn: c, pending: rec.buf.Bytes()}
	switch {
	case k == kindGRPC && s.GRPC != nil:
		s.grpcLn.push(rc)
	case k == kindHTTP1:
		s.httpLn.push(rc)
	default:
		s.httpLn.push(&ackFilterConn{Conn: rc, br: bufio.NewReader(rc), preface: len(http2.ClientPreface)})
	}
}

// emptySettings is an HTTP/2 SETTINGS frame with no parameters.
var emptySettings = []byte{0, 0, 0, byte(http2.FrameSettings), 0, 0, 0, 0, 0}

// sniff reads (through rec) until it knows what c is.
func sniff(c net.Conn, rec *recorder) (kind, error) {
	preface := []byte(http2.ClientPreface)
	var got []byte
	buf := make([]byte, len(preface))
	for len(got) < len(preface) {
		n, err := rec.Read(buf[:len(preface)-len(got)])
		got = append(got, buf[:n]...)
		if !bytes.HasPrefix(preface, got) {
			return kindHTTP1, nil
		}
		if err != nil {
			return 0, err
		}
	}
	if _, err := c.Write(emptySettings); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(nil, rec)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, err
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			for _, hf := range h.Fields {
				if hf.Name == "content-type" && isNativeGRPC(hf.Value) {
					return kindGRPC, nil
				}
			}
			return kindH2, nil
		}
	}
}

// isNativeGRPC reports whether a content type is gRPC's own
// (application/grpc, application/grpc+proto, …), not gRPC-Web's.
func isNativeGRPC(ct string) bool {
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// recorder keeps every byte read through it.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

// replayConn reads the sniffed bytes again before the rest of the
// connection.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ackFilterConn removes the client's first SETTINGS acknowledgement (the
// answer to the sniffer's SETTINGS, which the HTTP/2 server did not send)
// and then passes everything through.
type ackFilterConn struct {
	net.Conn
	br      *bufio.Reader
	preface int // preface bytes still to pass through
	out     []byte
	done    bool
}

func (c *ackFilterConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		switch {
		case c.done:
			return c.br.Read(p)
		case c.preface > 0:
			n, err := c.br.Read(p[:min(len(p), c.preface)])
			c.preface -= n
			return n, err
		}
		var hdr [9]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, err
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if http2.FrameType(hdr[3]) == http2.FrameSettings && http2.Flags(hdr[4]).Has(http2.FlagSettingsAck) && length == 0 {
			c.done = true
			continue
		}
		frame := make([]byte, 9+length)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(c.br, frame[9:]); err != nil {
			return 0, err
		}
		c.out = frame
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// connListener is a net.Listener fed with connections by push.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
