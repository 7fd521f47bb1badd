// Package h2client is the client side of an HTTP/2 connection (RFC 9113),
// built on golang.org/x/net/http2's Framer and hpack: the gateway's
// connections to its upstreams. It knows nothing of gRPC; it is shaped,
// like the server engine (internal/h2srv), to make a relayed call cheap.
//
// # Goroutines
//
// A connection has one reading goroutine and one flusher; there is no
// goroutine per stream and no writer goroutine. A caller writes its
// stream's frames itself, through the connection's write path
// (internal/h2wire: frames are copied into one buffered writer, and the
// last writer to leave has the flusher write(2) them, so the requests of
// calls made at the same moment share a write). The reader delivers
// response headers, DATA and trailers into the stream and wakes the
// caller waiting on it.
//
// # Flow control
//
// Each stream's receive window is InitialWindowSize and the connection's
// ConnWindowSize; window goes back to the server (WINDOW_UPDATE, once
// half a window has gathered) only as the caller reads, so a caller that
// stops reading stops its upstream stream, and a connection never holds
// more than ConnWindowSize of response data. Writes never exceed the
// server's windows and block until they reopen.
//
// # Errors
//
// A stream that the server is known not to have processed (GOAWAY naming
// a lower stream id, RST_STREAM REFUSED_STREAM, or a connection that
// failed before the stream's headers were written) fails with an error
// that errors.Is ErrRefused: it is safe to retry on another connection.
// RST_STREAM from the server is a *StreamError with its code; the end of
// the connection a *ConnError.
package h2client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// Defaults of the Options (a zero field takes these).
const (
	DefaultInitialWindowSize = 1 << 20
	DefaultConnWindowSize    = 4 << 20
	DefaultMaxHeaderListSize = 1 << 20
	DefaultMaxReadFrameSize  = 16 << 10
	DefaultPingTimeout       = 20 * time.Second
)

// Options configure a connection.
type Options struct {
	// InitialWindowSize is every stream's receive window, advertised as
	// SETTINGS_INITIAL_WINDOW_SIZE. 0: 1 MiB.
	InitialWindowSize uint32
	// ConnWindowSize is the connection's receive window: how much
	// response data all its streams together may hold. 0: 4 MiB.
	ConnWindowSize uint32
	// MaxHeaderListSize bounds a response's decoded header list (and
	// trailers), advertised as SETTINGS_MAX_HEADER_LIST_SIZE; a bigger
	// one fails its stream. 0: 1 MiB.
	MaxHeaderListSize uint32
	// MaxReadFrameSize is advertised as SETTINGS_MAX_FRAME_SIZE. 0: 16 KiB.
	MaxReadFrameSize uint32
	// PingInterval, when positive, sends a PING after that long without
	// a frame from the server (only while streams are open, unless
	// PermitWithoutStream); no frame within PingTimeout after it ends the
	// connection.
	PingInterval        time.Duration
	PingTimeout         time.Duration
	PermitWithoutStream bool
}

// ErrRefused is what a stream fails with when the server did not process
// it: it may be retried as it is, on another connection.
var ErrRefused = errors.New("h2client: stream not processed by the server")

// StreamError is a stream the server reset, or that this side reset for
// a protocol error of the server's.
type StreamError struct {
	Code   http2.ErrCode
	Remote bool // the server sent the RST_STREAM
}

func (e *StreamError) Error() string {
	if e.Remote {
		return fmt.Sprintf("stream terminated by RST_STREAM with error code: %v", e.Code)
	}
	return fmt.Sprintf("stream reset by the client: %v", e.Code)
}

// Is makes a REFUSED_STREAM from the server ErrRefused.
func (e *StreamError) Is(target error) bool {
	return target == ErrRefused && e.Remote && e.Code == http2.ErrCodeRefusedStream
}

// ConnError is the end of the connection a stream was on.
type ConnError struct {
	// GoAway is set when the server ended the connection with GOAWAY.
	GoAway  bool
	Code    http2.ErrCode
	Debug   string
	Err     error // the I/O or protocol error, when not a GOAWAY
	refused bool  // the stream was not processed
}

func (e *ConnError) Error() string {
	switch {
	case e.GoAway:
		return fmt.Sprintf("connection error: server sent GOAWAY (%v, %q)", e.Code, e.Debug)
	case errors.Is(e.Err, io.EOF):
		return "error reading from server: EOF"
	default:
		return fmt.Sprintf("connection error: %v", e.Err)
	}
}

func (e *ConnError) Unwrap() error { return e.Err }

// Is makes the error of a stream that was not processed ErrRefused.
func (e *ConnError) Is(target error) bool { return target == ErrRefused && e.refused }

// Conn is one client connection. It is safe for concurrent use.
type Conn struct {
	nc net.Conn
	o  Options
	w  *h2wire.Writer

	// Read side (the reading goroutine only).
	br    *bufio.Reader
	fr    *h2wire.Reader
	hdec  *h2wire.HeaderDecoder
	hbID  uint32 // the stream of the header block being read
	hbEnd bool   // its HEADERS had END_STREAM

	ready     chan struct{} // closed on the server's first SETTINGS
	readyOnce sync.Once
	done      chan struct{} // closed when the connection has ended
	err       error         // why it ended; set before done is closed
	flushDone chan struct{}

	lastRead   atomic.Int64 // unix nanos of the last frame read (keepalive)
	connRecv   atomic.Int64 // connection window the server may still use
	connUnsent atomic.Int64 // consumed, not yet returned by WINDOW_UPDATE

	// mu guards the stream table, the send windows and the connection's
	// state. Lock order: the writer's lock, then mu.
	mu         sync.Mutex
	slots      sync.Cond // signalled when a stream ends or the conn does
	streams    map[uint32]*Stream
	nextID     uint32
	maxStreams uint32 // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	connSend   int64
	peerWindow int64 // the server's SETTINGS_INITIAL_WINDOW_SIZE
	goAway     *ConnError
	lastGood   uint32 // GOAWAY's last stream id
	closed     bool
	pingTimer  *time.Timer
	pingSent   bool
	pingAt     int64 // unix nanos of the PING sent
}

const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// NewConn starts HTTP/2 on nc: it sends the preface and SETTINGS, and
// starts the connection's reader and flusher. Streams may be opened at
// once; Ready is closed when the server's SETTINGS arrive.
func NewConn(nc net.Conn, o Options) *Conn {
	o.InitialWindowSize = or(o.InitialWindowSize, DefaultInitialWindowSize)
	o.ConnWindowSize = or(o.ConnWindowSize, DefaultConnWindowSize)
	o.MaxHeaderListSize = or(o.MaxHeaderListSize, DefaultMaxHeaderListSize)
	o.MaxReadFrameSize = or(o.MaxReadFrameSize, DefaultMaxReadFrameSize)
	if o.PingTimeout <= 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	c := &Conn{
		nc:         nc,
		o:          o,
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		flushDone:  make(chan struct{}),
		streams:    make(map[uint32]*Stream),
		nextID:     1,
		maxStreams: math.MaxUint32,
		connSend:   h2wire.InitialWindow,
		peerWindow: h2wire.InitialWindow,
	}
	c.slots.L = &c.mu
	c.w = h2wire.NewWriter(nc, 32<<10, func(error) { _ = nc.Close() })
	c.br = bufio.NewReaderSize(netReader{c}, 32<<10)
	fr := http2.NewFramer(nil, c.br)
	fr.SetReuseFrames()
	fr.SetMaxReadFrameSize(o.MaxReadFrameSize)
	c.fr = h2wire.NewReader(fr, c.br)
	// A block's wire size is bounded by twice its decoded size (a
	// CONTINUATION flood ends the connection), a string by what that
	// wire size can hold (Huffman codes are 5 bits at the shortest): a
	// list too long fails its stream only.
	maxBlock := int(min(2*uint64(o.MaxHeaderListSize), math.MaxInt32/2))
	c.hdec = h2wire.NewHeaderDecoder(h2wire.HeaderLimits{MaxList: o.MaxHeaderListSize, MaxBlock: maxBlock, MaxString: maxBlock * 8 / 5})
	c.connRecv.Store(int64(o.ConnWindowSize))

	c.w.Lock()
	_, _ = c.w.Write([]byte(clientPreface))
	c.w.Settings([]http2.Setting{
		{ID: http2.SettingEnablePush, Val: 0},
		{ID: http2.SettingInitialWindowSize, Val: o.InitialWindowSize},
		{ID: http2.SettingMaxFrameSize, Val: o.MaxReadFrameSize},
		{ID: http2.SettingMaxHeaderListSize, Val: o.MaxHeaderListSize},
	})
	if inc := o.ConnWindowSize - h2wire.InitialWindow; o.ConnWindowSize > h2wire.InitialWindow {
		c.w.WindowUpdate(0, inc)
	}
	c.w.Unlock()
	c.w.Cork() // the reader's, released while it reads the network (netReader)
	go c.w.Flusher(c.flushDone)
	go c.readLoop()
	if o.PingInterval > 0 {
		c.lastRead.Store(time.Now().UnixNano())
		c.mu.Lock()
		c.pingTimer = time.AfterFunc(o.PingInterval, c.onPingTimer)
		c.mu.Unlock()
	}
	return c
}

func or(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// Ready is closed when the server's first SETTINGS frame has arrived: the
// connection speaks HTTP/2.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// Done is closed when the connection has ended; Err says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it has not).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// NetConn is the underlying connection (its addresses, a *tls.Conn's
// state). Reading or writing it breaks the connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Usable reports whether new streams may be opened: the connection is
// neither closed nor going away.
func (c *Conn) Usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.goAway == nil
}

// Load is the number of streams open, and the server's limit on them.
func (c *Conn) Load() (open int, max uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams), c.maxStreams
}

// Close ends the connection: open streams fail with a *ConnError.
func (c *Conn) Close() error {
	c.w.Lock()
	c.w.GoAway(0, http2.ErrCodeNo, "")
	c.w.FlushLocked()
	c.w.Unlock()
	return c.nc.Close()
}

// Shutdown sends GOAWAY and closes the connection once its open streams
// have ended, or when ctx is done.
func (c *Conn) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.goAway == nil {
		c.goAway = &ConnError{GoAway: true, Code: http2.ErrCodeNo, Debug: "client shutdown", refused: true}
		c.lastGood = c.nextID
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.slots.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for len(c.streams) > 0 && !c.closed && ctx.Err() == nil {
		c.slots.Wait()
	}
	c.mu.Unlock()
	return c.Close()
}

// netReader releases the reader's cork before every read from the
// network, so that what was written while the reader handled a batch of
// frames (WINDOW_UPDATE, PING and SETTINGS ACKs) is flushed when the batch
// ends.
type netReader struct{ c *Conn }

func (r netReader) Read(p []byte) (int, error) {
	r.c.giveBack(0)
	r.c.w.Uncork()
	n, err := r.c.nc.Read(p)
	r.c.w.AddPending(1)
	return n, err
}

func (c *Conn) readLoop() {
	err := c.serveFrames()
	c.w.Uncork()
	_ = c.nc.Close()
	c.mu.Lock()
	c.closed = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	var ce *ConnError
	if c.goAway != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
		ce = &ConnError{GoAway: true, Code: c.goAway.Code, Debug: c.goAway.Debug}
	} else {
		ce = &ConnError{Err: err}
	}
	c.err = ce
	streams := make([]*Stream, 0, len(c.streams))
	for _, st := range c.streams {
		streams = append(streams, st)
	}
	c.streams = map[uint32]*Stream{}
	c.slots.Broadcast()
	c.mu.Unlock()
	for _, st := range streams {
		st.fail(ce)
	}
	c.readyOnce.Do(func() { close(c.ready) })
	close(c.flushDone)
	close(c.done)
}

func (c *Conn) serveFrames() error {
	first := true
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code, &StreamError{Code: se.Code})
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.sendGoAway(http2.ErrCode(ce), err.Error())
			}
			return err
		}
		if c.o.PingInterval > 0 {
			c.lastRead.Store(time.Now().UnixNano())
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				c.sendGoAway(http2.ErrCodeProtocol, "expected SETTINGS")
				return fmt.Errorf("h2client: server's first frame is %v, not SETTINGS", f.Header().Type)
			}
			first = false
		}
		if err := c.processFrame(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.sendGoAway(http2.ErrCode(ce), err.Error())
			}
			return err
		}
	}
}

func (c *Conn) sendGoAway(code http2.ErrCode, debug string) {
	c.w.Lock()
	c.w.GoAway(0, code, debug)
	c.w.FlushLocked()
	c.w.Unlock()
}

func (c *Conn) processFrame(f h2wire.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *h2wire.HeadersFrame:
		c.hbID, c.hbEnd = f.StreamID, f.StreamEnded()
		c.hdec.Start()
		return c.headerFragment(f.Fragment, f.HeadersEnded())
	case *h2wire.ContinuationFrame:
		// The framer checks the sequence (CONTINUATION only right after
		// an unfinished HEADERS or CONTINUATION of the same stream).
		return c.headerFragment(f.Fragment, f.HeadersEnded())
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		c.resetStream(f.StreamID, 0, &StreamError{Code: f.ErrCode, Remote: true})
		return nil
	case *http2.PingFrame:
		if f.IsAck() {
			c.mu.Lock()
			c.pingSent = false
			c.mu.Unlock()
			return nil
		}
		c.w.Lock()
		c.w.Ping(true, f.Data)
		c.w.Unlock()
		return nil
	case *http2.GoAwayFrame:
		c.onGoAway(f)
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default:
		return nil // PRIORITY, unknown types
	}
}

func (c *Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.mu.Lock()
			c.maxStreams = s.Val
			c.slots.Broadcast()
			c.mu.Unlock()
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > h2wire.MaxWindow {
					c.mu.Unlock()
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.sendCond.Broadcast()
			}
			c.mu.Unlock()
		case http2.SettingMaxFrameSize:
			c.w.PeerFrame.Store(s.Val)
		case http2.SettingHeaderTableSize:
			c.w.Lock()
			c.w.SetMaxDynamicTableSizeLimit(s.Val)
			c.w.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.w.Lock()
	c.w.SettingsAck()
	c.w.Unlock()
	c.readyOnce.Do(func() { close(c.ready) })
	return nil
}

func (c *Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	ga := &ConnError{GoAway: true, Code: f.ErrCode, Debug: string(f.DebugData())}
	if c.goAway == nil || f.LastStreamID < c.lastGood {
		c.lastGood = f.LastStreamID
	}
	c.goAway = ga
	var refused []*Stream
	for id, st := range c.streams {
		if id > c.lastGood {
			refused = append(refused, st)
			delete(c.streams, id)
		}
	}
	c.slots.Broadcast()
	c.mu.Unlock()
	for _, st := range refused {
		st.fail(&ConnError{GoAway: true, Code: ga.Code, Debug: ga.Debug, refused: true})
	}
}

func (c *Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.connSend += int64(f.Increment)
		if c.connSend > h2wire.MaxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range c.streams {
			st.sendCond.Broadcast()
		}
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil
	}
	st.sendWin += int64(f.Increment)
	if st.sendWin > h2wire.MaxWindow {
		go c.resetStream(f.StreamID, http2.ErrCodeFlowControl, &StreamError{Code: http2.ErrCodeFlowControl})
		return nil
	}
	st.sendCond.Broadcast()
	return nil
}

// resetStream ends stream id with err; code, when not 0 (NO_ERROR is
// never sent as a reset here), is sent as RST_STREAM.
func (c *Conn) resetStream(id uint32, code http2.ErrCode, err error) {
	c.mu.Lock()
	st := c.streams[id]
	if st != nil {
		c.removeLocked(st)
	}
	c.mu.Unlock()
	if code != 0 && st != nil {
		c.w.Lock()
		c.w.RSTStream(id, code)
		c.w.Unlock()
	}
	if st != nil {
		st.fail(err)
	}
}

func (c *Conn) removeLocked(st *Stream) {
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
		c.slots.Signal()
	}
	st.removed = true
}

// headerFragment decodes a header block's fragment; the block's end
// hands it to its stream.
func (c *Conn) headerFragment(frag []byte, end bool) error {
	if err := c.hdec.Fragment(frag, end); err != nil {
		if errors.Is(err, h2wire.ErrBlockTooLarge) {
			return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
		}
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil
	}
	return c.onHeaders()
}

// onHeaders hands a decoded header block to its stream: the response's
// headers, or its trailers.
func (c *Conn) onHeaders() error {
	id := c.hbID
	c.mu.Lock()
	st, idle := c.streams[id], id >= c.nextID
	c.mu.Unlock()
	if st == nil {
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol) // a stream never opened
		}
		return nil // a stream ended here (reset, canceled)
	}
	if c.hdec.TooBig() {
		c.resetStream(id, http2.ErrCodeProtocol, fmt.Errorf("h2client: response header list over %d bytes", c.o.MaxHeaderListSize))
		return nil
	}
	if !validResponse(c.hdec.Scratch()) {
		c.resetStream(id, http2.ErrCodeProtocol, &StreamError{Code: http2.ErrCodeProtocol})
		return nil
	}
	end := c.hbEnd
	st.deliverHeaders(c.hdec, end)
	if end {
		c.remoteEnded(st)
	}
	return nil
}

// validResponse checks a response's header block (or trailers) as RFC
// 9113 §8.2-8.3 asks: valid fields, pseudo-headers first, each once, and
// only a response's (:status).
func validResponse(fields []hpack.HeaderField) bool {
	status, regular := false, false
	for _, f := range fields {
		if !f.IsPseudo() {
			regular = true
			if !h2wire.ValidField(f) {
				return false
			}
			continue
		}
		if regular || f.Name != ":status" || status || !httpguts.ValidHeaderFieldValue(f.Value) {
			return false
		}
		status = true
	}
	return true
}

func (c *Conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	if c.connRecv.Add(-n) < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.mu.Lock()
	st := c.streams[f.StreamID]
	c.mu.Unlock()
	if st == nil {
		c.connUnsent.Add(n)
		return nil
	}
	if st.recvAvail.Add(-n) < 0 {
		c.connUnsent.Add(n)
		c.resetStream(f.StreamID, http2.ErrCodeFlowControl, &StreamError{Code: http2.ErrCodeFlowControl})
		return nil
	}
	if !st.answered() {
		// DATA before the response's HEADERS: a malformed response.
		c.connUnsent.Add(n)
		c.resetStream(f.StreamID, http2.ErrCodeProtocol, &StreamError{Code: http2.ErrCodeProtocol})
		return nil
	}
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.connUnsent.Add(pad)
		st.giveBack(pad)
	}
	end := f.StreamEnded()
	if !st.deliver(data, end) {
		c.connUnsent.Add(int64(len(data)))
		return nil
	}
	if end {
		c.remoteEnded(st)
	}
	return nil
}

// remoteEnded marks END_STREAM received; a stream ended both ways leaves
// the table.
func (c *Conn) remoteEnded(st *Stream) {
	c.mu.Lock()
	st.remoteDone = true
	if st.localDone {
		c.removeLocked(st)
	}
	c.mu.Unlock()
}

// giveBack returns connection window: once half of it is consumed, with
// one WINDOW_UPDATE.
func (c *Conn) giveBack(n int64) {
	u := c.connUnsent.Add(n)
	if u < int64(c.o.ConnWindowSize)/2 {
		return
	}
	if !c.connUnsent.CompareAndSwap(u, 0) {
		return
	}
	c.connRecv.Add(u)
	c.w.Lock()
	c.w.WindowUpdate(0, uint32(u))
	c.w.Unlock()
}

func (c *Conn) onPingTimer() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	last := c.lastRead.Load()
	idle := time.Since(time.Unix(0, last))
	switch {
	case c.pingSent && last < c.pingAt:
		c.mu.Unlock()
		_ = c.nc.Close() // no frame since the PING: the connection is dead
		return
	case c.pingSent:
		c.pingSent = false
	case idle >= c.o.PingInterval && (len(c.streams) > 0 || c.o.PermitWithoutStream):
		c.pingSent = true
		c.pingAt = time.Now().UnixNano()
		c.pingTimer.Reset(c.o.PingTimeout)
		c.mu.Unlock()
		c.w.Lock()
		c.w.Ping(false, [8]byte{'e', 'd', 'g', 'e', 'g', 'a', 't', 'e'})
		c.w.Unlock()
		return
	}
	c.pingTimer.Reset(max(c.o.PingInterval-idle, time.Millisecond))
	c.mu.Unlock()
}
