package h2srv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// Defaults of the Server's limits (a zero field takes these).
const (
	DefaultMaxConcurrentStreams = 100
	DefaultMaxHeaderBlockBytes  = 64 << 10
	DefaultMaxHeaderListSize    = 16 << 10
	DefaultMaxPrematureResets   = 100
	DefaultInitialWindowSize    = 1 << 20
	DefaultConnWindowSize       = 4 << 20
	DefaultMaxReadFrameSize     = 16 << 10
	DefaultMaxControlFrames     = 1000
	// DefaultWriteTimeout bounds one flush (see WriteTimeout).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultPingTimeout is how long a keepalive PING waits for its ACK
	// when PingInterval is set and PingTimeout is not.
	DefaultPingTimeout = 20 * time.Second
)

// Handler serves one stream, on its own goroutine; the stream ends
// (RST_STREAM CANCEL if the handler neither ended nor reset it) when
// ServeStream returns.
type Handler interface{ ServeStream(st *Stream) }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(st *Stream)

// ServeStream calls f(st).
func (f HandlerFunc) ServeStream(st *Stream) { f(st) }

// Server serves HTTP/2 connections, handing every request stream to
// Handler. Its fields are read when a connection starts; change them only
// before the first ServeConn. A Server is safe for concurrent use.
type Server struct {
	// Handler serves every stream. Required.
	Handler Handler
	// MaxConcurrentStreams is advertised in SETTINGS and enforced: a
	// HEADERS frame opening a stream past it is answered RST_STREAM
	// REFUSED_STREAM. It also bounds the handler goroutines of a
	// connection (streams whose handler has not returned); a stream
	// opened while that many run waits for one to return. 0: 100.
	MaxConcurrentStreams uint32
	// MaxHeaderBlockBytes bounds one header block on the wire (HEADERS
	// plus its CONTINUATIONs, 9 bytes of frame header counted per frame,
	// so that empty CONTINUATIONs count too); past it the connection ends
	// with GOAWAY ENHANCE_YOUR_CALM (the CONTINUATION flood). 0: 64 KiB.
	MaxHeaderBlockBytes int
	// MaxHeaderListSize bounds the decoded header list (RFC 9113's size:
	// name, value and 32 bytes per field), advertised as
	// SETTINGS_MAX_HEADER_LIST_SIZE. A request over it never reaches the
	// Handler: HeaderListTooLarge answers it. 0: 16 KiB (grpc-go and Go's
	// net/http accept more by default, 16 MiB and 1 MiB; 16 KiB holds any
	// gRPC call's metadata in practice and keeps a connection's decoding
	// memory small).
	MaxHeaderListSize uint32
	// HeaderListTooLarge serves, in place of Handler, a request whose
	// header list is over MaxHeaderListSize (a gRPC server answers it
	// RESOURCE_EXHAUSTED in trailers). Its stream's Header holds the
	// fields decoded before the limit, not validated; the accessors give
	// the pseudo-headers among them. nil: the request is answered
	// :status 431.
	HeaderListTooLarge Handler
	// Timeout, when set, gives how long a request may take, from its
	// header list (a gRPC call's grpc-timeout); ok false: no bound. The
	// stream's Context then also ends at that deadline, counted from its
	// headers' arrival, with context.DeadlineExceeded (a reset or the
	// connection's end stays context.Canceled). One context per stream
	// serves both, where a handler's own WithTimeout would add a second.
	Timeout func(header []hpack.HeaderField) (d time.Duration, ok bool)
	// MaxPrematureResets bounds Rapid Reset (CVE-2023-44487): streams the
	// client resets within a second of opening them and before the server
	// answered. When a connection has more than this many, and they are
	// more than half of the streams it opened, it ends with GOAWAY
	// ENHANCE_YOUR_CALM. 0: 100; negative: no limit.
	MaxPrematureResets int
	// InitialWindowSize is the receive window of every stream, advertised
	// as SETTINGS_INITIAL_WINDOW_SIZE. 0: 1 MiB. (On loopback, 4 MiB up
	// and back through net/http's client moved at 650-710 MB/s with a
	// 64 KiB window and 730-780 MB/s with 1 MiB: BenchmarkBody,
	// 2026-12-01; with a real round trip the window bounds a stream's
	// throughput to window/RTT.)
	InitialWindowSize uint32
	// ConnWindowSize is the connection's receive window: what all the
	// streams of a connection together may have buffered, so the request
	// memory one connection can hold. 0: 4 MiB.
	ConnWindowSize uint32
	// MaxReadFrameSize is advertised as SETTINGS_MAX_FRAME_SIZE; a bigger
	// frame ends the connection with FRAME_SIZE_ERROR. 0: 16 KiB.
	MaxReadFrameSize uint32
	// MaxControlFrames bounds the frames a client sends that ask the
	// server for work without moving a request on: PING and SETTINGS
	// (ACKs included), PRIORITY, RST_STREAM on a stream no longer open (a
	// reset of an open one counts toward MaxPrematureResets), DATA with
	// neither payload nor END_STREAM, GOAWAY and frames of unknown types
	// (the floods of CVE-2019-9512, -9515 and -9518). A connection may
	// send this many at once; its allowance comes back at this many a
	// second (up to this many), and one per DATA or HEADERS frame the
	// server sends (so a client that PINGs for every DATA frame it reads,
	// as grpc-go's bandwidth estimator may, never runs out). Past it the connection
	// ends with GOAWAY ENHANCE_YOUR_CALM. 0: 1000; negative: no limit.
	MaxControlFrames int
	// WriteTimeout bounds one flush of the connection's writes: the
	// socket must take what the writers left in the connection's 32 KiB
	// buffer (or one DATA frame of the client's SETTINGS_MAX_FRAME_SIZE,
	// written past it) within this long, or the connection ends, its
	// streams' Writes fail and their handlers return. A client that
	// stops reading thus holds a connection's goroutines for this long
	// at most. A flush waits only for room in the kernel's send buffer,
	// which drains at the client's pace: 0 is 30 s, in which a poor
	// GPRS link (10 kbit/s) takes 32 KiB and a mobile link's stall
	// (handover, tunnel) usually ends (nginx's send_timeout, the same
	// bound between two writes, is 60 s). Negative: none.
	WriteTimeout time.Duration
	// IdleTimeout ends a connection that has had no open stream for this
	// long, with GOAWAY NO_ERROR (as Shutdown does). 0: none.
	IdleTimeout time.Duration
	// PingInterval, when positive, sends a PING after that long without a
	// frame from the client; no frame within PingTimeout after it (0:
	// 20 s) ends the connection. 0: no keepalive.
	PingInterval time.Duration
	// PingTimeout: see PingInterval.
	PingTimeout time.Duration
	// MinPingInterval, when positive, is the policy a client's PINGs must
	// keep, as grpc-go's server enforces its keepalive.EnforcementPolicy:
	// a PING sooner than this after the client's last one (or, while no
	// stream is open and PermitPingWithoutStream is false, sooner than
	// two hours after it) is a strike; a HEADERS or DATA frame the server
	// sent since the last PING clears them; the third strike ends the
	// connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which
	// grpc-go's clients answer by pinging half as often. 0: no policy
	// (MaxControlFrames still bounds a flood).
	MinPingInterval time.Duration
	// PermitPingWithoutStream: see MinPingInterval.
	PermitPingWithoutStream bool
	// MaxConnectionAge, when positive, ends a connection gracefully
	// (GOAWAY, as Shutdown does) once it is this old, give or take 10 %
	// so that connections made together do not all end together: the
	// clients reconnect, and a load balancer in front spreads them again.
	// MaxConnectionAgeGrace, when positive, is how long its open streams
	// then get before the connection is closed. 0: no age limit.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// Log receives connection errors (debug level) and handler panics
	// (error level). nil: nothing is logged.
	Log *slog.Logger

	// drainWait is how long a graceful close waits for its PING's ACK
	// (0: drainPingWait); tests set it.
	drainWait time.Duration

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	done     chan struct{} // closed when conns becomes empty during Shutdown
}

// ConnOptions carry what a connection sniffer in front of ServeConn
// already did on the connection.
type ConnOptions struct {
	// SettingsAcked is how many of the client's first SETTINGS frames were
	// already acknowledged by someone else (they are applied, not ACKed
	// again).
	SettingsAcked int
	// SettingsSent: a SETTINGS frame was already sent to the client, so
	// its ACK may arrive before or without ours. An ACK beyond those
	// expected is always tolerated; the field is kept for the sniffer's
	// sake and documents the contract.
	SettingsSent bool
}

// ErrServerClosed is returned by ServeConn after Shutdown or Close.
var ErrServerClosed = errors.New("h2srv: server closed")

// ServeConn serves c until it ends or Shutdown/Close; c is positioned at
// the client preface ("PRI * HTTP/2.0..."), which ServeConn reads and
// checks. It returns when the connection is closed and every handler
// returned: nil when the connection ended cleanly (the client closed it
// after its streams, GOAWAY after Shutdown or IdleTimeout), else the
// reason. c is closed on return. ctx's end closes the connection.
func (s *Server) ServeConn(ctx context.Context, c net.Conn, o ConnOptions) error {
	cc := newConn(s, c, o)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = c.Close()
		return ErrServerClosed
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[cc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, cc)
		if len(s.conns) == 0 && s.done != nil {
			close(s.done)
			s.done = nil
		}
		s.mu.Unlock()
	}()
	return cc.serve(ctx)
}

// Shutdown drains every connection with two GOAWAYs (RFC 9113 §6.8):
// first GOAWAY NO_ERROR naming stream 2^31-1, with a PING; then, once the
// client acknowledged the PING (or after a second without), GOAWAY
// NO_ERROR naming the last stream the client opened. Streams the client
// opened before it saw the first are served; streams after the second
// are refused (RST_STREAM REFUSED_STREAM). Shutdown waits for the open
// streams to end (each connection then closes) or for ctx, whose error
// it returns after closing what is left. ServeConn called after Shutdown
// returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := s.snapshotLocked()
	var done chan struct{}
	if len(s.conns) > 0 {
		if s.done == nil {
			s.done = make(chan struct{})
		}
		done = s.done
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = s.Close()
		return ctx.Err()
	}
}

// Close ends every connection now (their streams' contexts are
// canceled); it does not wait for the handlers.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	conns := s.snapshotLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return nil
}

func (s *Server) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// limits is the Server's configuration with defaults applied.
type limits struct {
	maxStreams   uint32
	maxBlock     int
	maxList      uint32
	maxResets    int
	streamWindow uint32
	connWindow   uint32
	maxFrame     uint32
	idle         time.Duration
	ping         time.Duration
	pingTimeout  time.Duration
	maxControl   int
	writeTimeout time.Duration
	drainWait    time.Duration
	minPing      time.Duration
	pingIdleOK   bool
	maxAge       time.Duration
	ageGrace     time.Duration
}

func (s *Server) limits() limits {
	l := limits{
		maxStreams:   or(s.MaxConcurrentStreams, DefaultMaxConcurrentStreams),
		maxBlock:     s.MaxHeaderBlockBytes,
		maxList:      or(s.MaxHeaderListSize, DefaultMaxHeaderListSize),
		maxResets:    s.MaxPrematureResets,
		streamWindow: min(or(s.InitialWindowSize, DefaultInitialWindowSize), h2wire.MaxWindow),
		connWindow:   min(or(s.ConnWindowSize, DefaultConnWindowSize), h2wire.MaxWindow),
		maxFrame:     min(max(or(s.MaxReadFrameSize, DefaultMaxReadFrameSize), h2wire.MinMaxFrameSize), maxMaxFrameSize),
		idle:         s.IdleTimeout,
		ping:         s.PingInterval,
		pingTimeout:  s.PingTimeout,
		maxControl:   s.MaxControlFrames,
		writeTimeout: s.WriteTimeout,
		drainWait:    s.drainWait,
		minPing:      s.MinPingInterval,
		pingIdleOK:   s.PermitPingWithoutStream,
		maxAge:       s.MaxConnectionAge,
		ageGrace:     s.MaxConnectionAgeGrace,
	}
	if l.maxBlock <= 0 {
		l.maxBlock = DefaultMaxHeaderBlockBytes
	}
	if l.maxResets == 0 {
		l.maxResets = DefaultMaxPrematureResets
	}
	if l.connWindow < h2wire.InitialWindow {
		l.connWindow = h2wire.InitialWindow
	}
	if l.pingTimeout <= 0 {
		l.pingTimeout = DefaultPingTimeout
	}
	if l.maxControl == 0 {
		l.maxControl = DefaultMaxControlFrames
	}
	if l.writeTimeout == 0 {
		l.writeTimeout = DefaultWriteTimeout
	}
	if l.drainWait <= 0 {
		l.drainWait = drainPingWait
	}
	return l
}

func or(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

func (s *Server) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

// RFC 9113 constants.
const (
	maxMaxFrameSize = 1<<24 - 1
	maxStreamID     = 1<<31 - 1
)
