package frontdoor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
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

	"github.com/edgegate/edgegate/internal/h2srv"
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
// Until the first request the server speaks HTTP/2 itself, within bounds:
// it sends an empty SETTINGS frame (gRPC clients wait for one), answers
// the client's SETTINGS with an ACK and its PINGs with PING ACKs at once,
// ignores unknown frames, and keeps what it must replay (the client's
// SETTINGS, WINDOW_UPDATE and PRIORITY frames, then the first request's
// header block). A frame larger than the default SETTINGS_MAX_FRAME_SIZE,
// a header block over MaxHeaderBlockBytes, too many frames before the
// first request, or no request within SniffTimeout end the connection
// with a GOAWAY saying why. The frames it answered itself are kept from
// the server it hands the connection to: the client's acknowledgement of
// the empty SETTINGS, and the server's acknowledgement of the client's
// SETTINGS (the client has had one).
//
// Every HTTP/2 connection, on either side, is then watched (see guardConn):
// a header block over MaxHeaderBlockBytes (a CONTINUATION flood) and
// streams reset by the client early in their life over MaxPrematureResets
// (HTTP/2 Rapid Reset) end the connection with GOAWAY ENHANCE_YOUR_CALM.
type Server struct {
	// GRPC serves native gRPC connections; nil when the listener has no
	// gRPC door (such connections then reach HTTP, which refuses them).
	GRPC *grpc.Server
	// Relay, when set, serves native gRPC connections in GRPC's place:
	// the gateway's own HTTP/2 server (package internal/h2srv) with the
	// native door (NativeDoor) as its handler. It enforces the header
	// block and Rapid Reset bounds itself, so its connections are not
	// watched by guardConn.
	Relay *h2srv.Server
	// HTTP serves the rest; its Handler is the HTTP door. Nil for a
	// dedicated gRPC port, where every HTTP/2 connection goes to GRPC and
	// an HTTP/1 one is closed.
	HTTP *http.Server
	// SniffTimeout bounds how long a new connection may take to make its
	// first request (TLS handshake included).
	SniffTimeout time.Duration
	// MaxHeaderBlockBytes bounds the bytes of one header block on the
	// wire (HEADERS and its CONTINUATIONs); 0: 64 KiB.
	MaxHeaderBlockBytes int
	// MaxPrematureResets is how many streams a client may reset within
	// a second of opening them, and before the server answered them, when
	// those are more than half of its streams, before the connection is
	// ended; 0: 100; negative: no limit.
	MaxPrematureResets int
	// MaxConcurrentStreams is the stream limit both servers enforce
	// (and advertise); the sniffer's SETTINGS advertise it from the start.
	MaxConcurrentStreams uint32
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
	if s.HTTP != nil {
		go func() { _ = s.HTTP.Serve(s.httpLn) }()
	}
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
	if s.httpLn != nil && s.HTTP == nil {
		_ = s.httpLn.Close()
	}
}

// Shutdown drains the HTTP side: connections close once their requests
// are done (HTTP/2 ones after GOAWAY). When ctx ends first, every remaining
// connection is closed. (The gRPC side drains with
// grpc.Server.GracefulStop.)
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	var rerr error
	var wg sync.WaitGroup
	if s.Relay != nil {
		// The relay's connections get GOAWAY and end with their streams.
		wg.Go(func() { rerr = s.Relay.Shutdown(ctx) })
	}
	var err error
	if s.HTTP != nil {
		if err = s.HTTP.Shutdown(ctx); err != nil {
			_ = s.HTTP.Close()
		}
	}
	wg.Wait()
	return errors.Join(err, rerr)
}

// Close closes every connection of the HTTP side and of the relay at once.
func (s *Server) Close() {
	s.StopAccepting()
	if s.HTTP != nil {
		_ = s.HTTP.Close()
	}
	if s.Relay != nil {
		_ = s.Relay.Close()
	}
}

type kind int

const (
	kindHTTP1 kind = iota
	kindGRPC
	kindH2
)

// The bounds of the time before a connection's first request.
const (
	// maxFrameSize is HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which the
	// sniffer's empty SETTINGS leaves in force.
	maxFrameSize = 16384
	// maxEarlyFrames is how many frames besides the first request a
	// client may send before it (SETTINGS, PING, WINDOW_UPDATE, PRIORITY,
	// unknown ones).
	maxEarlyFrames = 64
	// defaultMaxHeaderBlock is MaxHeaderBlockBytes's default.
	defaultMaxHeaderBlock = 64 << 10
	// defaultMaxPrematureResets is MaxPrematureResets's default.
	defaultMaxPrematureResets = 100
)

func (s *Server) maxHeaderBlock() int {
	if s.MaxHeaderBlockBytes > 0 {
		return s.MaxHeaderBlockBytes
	}
	return defaultMaxHeaderBlock
}

func (s *Server) maxPrematureResets() int {
	switch {
	case s.MaxPrematureResets > 0:
		return s.MaxPrematureResets
	case s.MaxPrematureResets < 0:
		return 0
	}
	return defaultMaxPrematureResets
}

func (s *Server) debug(msg string, c net.Conn, err error) {
	if s.Log != nil {
		s.Log.Debug(msg, slog.String("peer", c.RemoteAddr().String()), slog.String("error", err.Error()))
	}
}

func (s *Server) route(c net.Conn) {
	if s.SniffTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(s.SniffTimeout))
	}
	if s.TLS != nil {
		tc := tls.Server(c, s.TLS)
		if err := tc.Handshake(); err != nil {
			s.debug("TLS handshake failed", c, err)
			_ = c.Close()
			return
		}
		c = tc
	}
	sn := &sniffer{c: c, br: bufio.NewReaderSize(c, 4096), maxBlock: s.maxHeaderBlock(), maxStreams: s.MaxConcurrentStreams}
	k, err := sn.sniff((s.GRPC != nil || s.Relay != nil) && s.HTTP == nil)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		s.debug("connection closed before its first request", c, err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && sn.h2 {
			// An idle HTTP/2 client is told why, and may reconnect.
			sn.goAway(http2.ErrCodeNo, "edgegate: no request within the connection timeout")
			lingerClose(c)
		}
		_ = c.Close()
		return
	}
	rc := &replayConn{Conn: c, pending: sn.replay.Bytes(), br: sn.br}
	if k == kindHTTP1 {
		if s.HTTP == nil {
			_ = c.Close()
			return
		}
		s.httpLn.push(rc)
		return
	}
	if k == kindGRPC && s.Relay != nil {
		// The sniffer acknowledged the client's first SETTINGS frames and
		// sent its own: the relay carries on from there.
		_ = s.Relay.ServeConn(relayContext(c), rc, h2srv.ConnOptions{SettingsAcked: sn.acked, SettingsSent: true})
		return
	}
	g := newGuardConn(rc, c, sn, s.maxPrematureResets())
	switch {
	case k == kindGRPC && s.GRPC != nil:
		s.grpcLn.push(g)
	case s.HTTP == nil:
		_ = c.Close()
	default:
		g.dropAck = !sn.ackSeen
		s.httpLn.push(g)
	}
}

// settings is the sniffer's SETTINGS frame: what both servers it hands
// connections to advertise alike (the stream limit), the rest left at the
// defaults until the server's own SETTINGS.
func (sn *sniffer) settings() []byte {
	var b bytes.Buffer
	var ss []http2.Setting
	if sn.maxStreams > 0 {
		ss = append(ss, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sn.maxStreams})
	}
	_ = http2.NewFramer(&b, nil).WriteSettings(ss...)
	return b.Bytes()
}

// sniffer reads a new connection until it knows what it is, answering
// what an HTTP/2 client expects to be answered meanwhile.
type sniffer struct {
	c          net.Conn
	br         *bufio.Reader
	maxBlock   int
	maxStreams uint32 // advertised in the sniffer's SETTINGS; 0: none

	replay  bytes.Buffer // what the server must read again
	h2      bool         // the client sent the HTTP/2 preface
	acked   int          // client SETTINGS frames the sniffer acknowledged
	ackSeen bool         // the client acknowledged the empty SETTINGS
	lastID  uint32       // the first request's stream id
	window  int64        // the connection window increments seen
	wmu     sync.Mutex
}

// errSniff is a client that broke the bounds before its first request;
// it was told with a GOAWAY.
var errSniff = errors.New("edgegate: connection ended before its first request")

// sniff reads until it knows what the connection is. grpcOnly classifies
// every HTTP/2 connection as native gRPC (a dedicated port). It returns an
// error, the connection then to be closed, when the client breaks the
// bounds (it has been told) or goes away.
func (sn *sniffer) sniff(grpcOnly bool) (kind, error) {
	preface := []byte(http2.ClientPreface)
	for n := 1; ; n++ {
		got, err := sn.br.Peek(n)
		if err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(preface, got) {
			if bytes.HasPrefix(got, []byte("PRI * HTTP/2.0\r\n")) {
				// An HTTP/2 preface gone wrong after its first line.
				sn.h2 = true
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: invalid connection preface")
			}
			// Not HTTP/2 with prior knowledge: HTTP/1.x (what was read
			// stays in br, read again by the server), if its first line
			// is a request line.
			return kindHTTP1, sn.requestLine()
		}
		if n == len(preface) {
			break
		}
		n = max(n, min(sn.br.Buffered(), len(preface))-1) // what is there already
	}
	sn.h2 = true
	_, _ = sn.br.Discard(len(preface))
	sn.replay.Write(preface)
	if err := sn.write(sn.settings()); err != nil {
		return 0, err
	}
	var hdr [9]byte
	for early := 0; ; early++ {
		if early > maxEarlyFrames {
			return 0, sn.refuse(http2.ErrCodeEnhanceYourCalm, "edgegate: too many frames before the first request")
		}
		if _, err := io.ReadFull(sn.br, hdr[:]); err != nil {
			return 0, err
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
		id := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
		if length > maxFrameSize {
			return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: frame larger than SETTINGS_MAX_FRAME_SIZE")
		}
		if sn.replay.Len() > sn.maxBlock+2*maxFrameSize {
			return 0, sn.refuse(http2.ErrCodeEnhanceYourCalm, "edgegate: too much before the first request")
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(sn.br, payload); err != nil {
			return 0, err
		}
		keep := true
		switch typ {
		case http2.FrameSettings:
			switch {
			case id != 0:
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: SETTINGS on a stream")
			case flags.Has(http2.FlagSettingsAck):
				if length != 0 {
					return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: SETTINGS ACK with a payload")
				}
				keep, sn.ackSeen = false, true
			case length%6 != 0:
				return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: SETTINGS of a length not a multiple of 6")
			default:
				if code, why := checkSettings(payload); code != http2.ErrCodeNo {
					return 0, sn.refuse(code, why)
				}
				if err := sn.write([]byte{0, 0, 0, byte(http2.FrameSettings), byte(http2.FlagSettingsAck), 0, 0, 0, 0}); err != nil {
					return 0, err
				}
				sn.acked++
			}
		case http2.FramePing:
			switch {
			case id != 0:
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: PING on a stream")
			case length != 8:
				return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: PING of a length other than 8")
			}
			keep = false
			if !flags.Has(http2.FlagPingAck) {
				ack := append([]byte{0, 0, 8, byte(http2.FramePing), byte(http2.FlagPingAck), 0, 0, 0, 0}, payload...)
				if err := sn.write(ack); err != nil {
					return 0, err
				}
			}
		case http2.FrameWindowUpdate:
			switch {
			case length != 4:
				return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: WINDOW_UPDATE of a length other than 4")
			case id != 0:
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: WINDOW_UPDATE on an idle stream")
			}
			inc := binary.BigEndian.Uint32(payload) & (1<<31 - 1)
			if inc == 0 {
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: WINDOW_UPDATE of 0")
			}
			if sn.window += int64(inc); sn.window > 1<<31-1-65535 {
				return 0, sn.refuse(http2.ErrCodeFlowControl, "edgegate: connection window over 2^31-1")
			}
		case http2.FramePriority:
			switch {
			case id == 0:
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: PRIORITY on stream 0")
			case length != 5:
				return 0, sn.refuse(http2.ErrCodeFrameSize, "edgegate: PRIORITY of a length other than 5")
			case binary.BigEndian.Uint32(payload)&(1<<31-1) == id:
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: a stream that depends on itself")
			}
		case http2.FrameHeaders:
			if id == 0 || id%2 == 0 {
				return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: HEADERS on an invalid stream")
			}
			block, err := sn.readBlock(hdr, payload)
			if err != nil {
				return 0, err
			}
			sn.lastID = id
			if grpcOnly || isGRPCRequest(block) {
				return kindGRPC, nil
			}
			return kindH2, nil
		case http2.FrameGoAway:
			// The client opens no stream; the server answers what else it
			// sends until it closes.
			sn.replay.Write(hdr[:])
			sn.replay.Write(payload)
			if grpcOnly {
				return kindGRPC, nil
			}
			return kindH2, nil
		case http2.FrameData, http2.FrameRSTStream, http2.FramePushPromise, http2.FrameContinuation:
			return 0, sn.refuse(http2.ErrCodeProtocol, "edgegate: "+typ.String()+" before any stream")
		default:
			keep = false // an unknown frame type is ignored
		}
		if keep {
			sn.replay.Write(hdr[:])
			sn.replay.Write(payload)
		}
	}
}

// requestLine checks that the connection starts with what could be an
// HTTP/1.x request line ("METHOD target HTTP/1.x"); anything else is not a
// protocol the gateway speaks, and the connection is closed unanswered.
func (sn *sniffer) requestLine() error {
	for n := 1; n <= 8<<10; n++ {
		got, err := sn.br.Peek(max(n, min(sn.br.Buffered(), 8<<10)))
		if err != nil {
			return err
		}
		i := bytes.IndexByte(got, '\n')
		if i < 0 {
			n = len(got) // wait for one more byte than there is
			continue
		}
		line := bytes.TrimSuffix(got[:i], []byte("\r"))
		if sp := bytes.LastIndexByte(line, ' '); sp > 0 && bytes.HasPrefix(line[sp+1:], []byte("HTTP/1.")) {
			return nil
		}
		return errors.New("edgegate: not an HTTP/1.x request line")
	}
	return errors.New("edgegate: request line over 8 KiB")
}

// readBlock keeps a HEADERS frame and its CONTINUATIONs for the replay,
// bounded by maxBlock, and returns the header block's fragments joined
// (padding and priority removed). A frame other than CONTINUATION of the
// same stream before the block's end is kept too: the server answers it.
func (sn *sniffer) readBlock(hdr [9]byte, payload []byte) ([]byte, error) {
	flags := http2.Flags(hdr[4])
	id := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
	sn.replay.Write(hdr[:])
	sn.replay.Write(payload)
	frag := payload
	if flags.Has(http2.FlagHeadersPadded) {
		if len(frag) < 1 || int(frag[0]) > len(frag)-1 {
			return nil, nil
		}
		frag = frag[1 : len(frag)-int(frag[0])]
	}
	if flags.Has(http2.FlagHeadersPriority) {
		if len(frag) < 5 {
			return nil, nil
		}
		frag = frag[5:]
	}
	block := bytes.Clone(frag)
	end := flags.Has(http2.FlagHeadersEndHeaders)
	size := len(payload)
	for !end {
		var h [9]byte
		if _, err := io.ReadFull(sn.br, h[:]); err != nil {
			return nil, err
		}
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if length > maxFrameSize {
			return nil, sn.refuse(http2.ErrCodeFrameSize, "edgegate: frame larger than SETTINGS_MAX_FRAME_SIZE")
		}
		if size += length; size > sn.maxBlock {
			return nil, sn.refuse(http2.ErrCodeEnhanceYourCalm, "edgegate: header block larger than the limit")
		}
		p := make([]byte, length)
		if _, err := io.ReadFull(sn.br, p); err != nil {
			return nil, err
		}
		sn.replay.Write(h[:])
		sn.replay.Write(p)
		if http2.FrameType(h[3]) != http2.FrameContinuation || binary.BigEndian.Uint32(h[5:])&(1<<31-1) != id {
			return nil, nil // a protocol error, for the server to answer
		}
		block = append(block, p...)
		end = http2.Flags(h[4]).Has(http2.FlagContinuationEndHeaders)
	}
	return block, nil
}

// isGRPCRequest reports whether a request's header block says
// content-type application/grpc[+…] (not gRPC-Web). A block that does not
// decode is not (the server it goes to answers it).
func isGRPCRequest(block []byte) bool {
	grpcCT := false
	d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" && isNativeGRPC(f.Value) {
			grpcCT = true
		}
	})
	d.SetMaxStringLength(defaultMaxHeaderBlock)
	if _, err := d.Write(block); err != nil {
		return false
	}
	return grpcCT && d.Close() == nil
}

// checkSettings checks a SETTINGS payload's values (RFC 9113 §6.5.2):
// the error code and reason of one out of range, else ErrCodeNo.
func checkSettings(p []byte) (http2.ErrCode, string) {
	for i := 0; i+6 <= len(p); i += 6 {
		v := binary.BigEndian.Uint32(p[i+2:])
		switch http2.SettingID(binary.BigEndian.Uint16(p[i:])) {
		case http2.SettingEnablePush:
			if v > 1 {
				return http2.ErrCodeProtocol, "edgegate: SETTINGS_ENABLE_PUSH other than 0 or 1"
			}
		case http2.SettingInitialWindowSize:
			if v > 1<<31-1 {
				return http2.ErrCodeFlowControl, "edgegate: SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1"
			}
		case http2.SettingMaxFrameSize:
			if v < 1<<14 || v > 1<<24-1 {
				return http2.ErrCodeProtocol, "edgegate: SETTINGS_MAX_FRAME_SIZE out of range"
			}
		}
	}
	return http2.ErrCodeNo, ""
}

func (sn *sniffer) write(b []byte) error {
	sn.wmu.Lock()
	defer sn.wmu.Unlock()
	_ = sn.c.SetWriteDeadline(time.Now().Add(time.Second))
	defer func() { _ = sn.c.SetWriteDeadline(time.Time{}) }()
	_, err := sn.c.Write(b)
	return err
}

// goAway tells the client the connection ends, and why.
func (sn *sniffer) goAway(code http2.ErrCode, why string) {
	_ = sn.write(goAwayFrame(0, code, why))
}

// refuse ends the connection for breaking a bound: GOAWAY, then an error
// (the caller closes the connection, after lingerClose).
func (sn *sniffer) refuse(code http2.ErrCode, why string) error {
	sn.goAway(code, why)
	lingerClose(sn.c)
	return errSniff
}

// lingerClose closes c after the client has had the chance to read what
// was written last (the GOAWAY): the write side is shut, and what the
// client still sends is read and dropped for a short while, up to a
// bound, so that closing with unread input does not reset the
// connection before the client reads the GOAWAY.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c, 1<<20)
	_ = c.Close()
}

// goAwayFrame is a GOAWAY frame's bytes.
func goAwayFrame(lastID uint32, code http2.ErrCode, why string) []byte {
	var b bytes.Buffer
	_ = http2.NewFramer(&b, nil).WriteGoAway(lastID, code, []byte(why))
	return b.Bytes()
}

// isNativeGRPC reports whether a content type is gRPC's own
// (application/grpc, application/grpc+proto, …), not gRPC-Web's.
func isNativeGRPC(ct string) bool {
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// replayConn reads the sniffed bytes again, then what the sniffer's
// reader holds, before the rest of the connection.
type replayConn struct {
	net.Conn
	pending []byte
	br      *bufio.Reader // nil: read the connection
}

// CloseWrite half-closes the connection under c, when it can be: the
// relay's graceful end of a connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("edgegate: the connection cannot be half-closed")
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
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
