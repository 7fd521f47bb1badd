package h2srv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// conn is one served connection. The reading goroutine (serve) owns the
// framer, the HPACK decoder and the receive-side accounting; handlers
// write through the write path (write.go) and wait on the send windows
// under mu.
type conn struct {
	srv *Server
	nc  net.Conn
	lim limits
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	// Read side (the reading goroutine only, unless noted).
	br       *bufio.Reader
	fr       *h2wire.Reader
	hdec     *h2wire.HeaderDecoder
	hb       headerBlock
	skipAcks int
	opened   int          // streams opened
	resets   int          // premature resets
	ctlLeft  int          // control frames the client may still send (MaxControlFrames)
	ctlAt    time.Time    // when the allowance was last refilled by time
	ctlSeen  uint64       // framesOut at the last refill
	lastRead atomic.Int64 // unix nanos of the last read from the network
	// MinPingInterval's policy: the client's last PING, the strikes, and
	// the server's HEADERS and DATA frames out as of that PING.
	lastPing    time.Time
	pingStrikes int
	pingOut     uint64
	// connRecv is the connection window the client may still use; the
	// reader spends it, handlers' reads give it back (atomic).
	connRecv   atomic.Int64
	connUnsent atomic.Int64 // consumed bytes not yet returned by WINDOW_UPDATE

	// w is the write path (internal/h2wire): every writer copies its
	// frames into its buffer; the last one out has its flusher flush.
	w *h2wire.Writer

	// mu guards the stream table, the send windows and the states.
	mu          sync.Mutex
	streams     map[uint32]*Stream
	maxClientID uint32
	connSend    int64 // connection send window
	peerWindow  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	draining    bool  // the first GOAWAY of a graceful close sent (2^31-1, and a PING)
	goingAway   bool  // GOAWAY naming the last stream sent: no new streams
	closing     bool  // close requested
	ended       bool  // serve is done: timers stay stopped
	handlers    int   // handler goroutines running
	idle        int   // handler goroutines parked, waiting on work
	work        chan *Stream
	queue       []*Stream
	idleTimer   *time.Timer
	pingTimer   *time.Timer
	pingSent    time.Time
	ageTimer    *time.Timer // MaxConnectionAge, then its grace
	drainTimer  *time.Timer // the final GOAWAY, when the drain PING goes unanswered

	wg sync.WaitGroup // handler goroutines
}

func newConn(s *Server, nc net.Conn, o ConnOptions) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		lim:        s.limits(),
		log:        s.logger(),
		skipAcks:   o.SettingsAcked,
		streams:    make(map[uint32]*Stream),
		work:       make(chan *Stream, maxIdleHandlers),
		connSend:   h2wire.InitialWindow,
		peerWindow: h2wire.InitialWindow,
		ctlAt:      time.Now(),
	}
	c.ctlLeft = max(c.lim.maxControl, 0)
	c.br = bufio.NewReaderSize(netReader{c}, 32<<10)
	fr := http2.NewFramer(nil, c.br)
	fr.SetReuseFrames()
	fr.SetMaxReadFrameSize(c.lim.maxFrame)
	c.fr = h2wire.NewReader(fr, c.br)
	// A string is bounded by the block's wire size (Huffman codes are 5
	// bits at the shortest); a list too long is answered 431 (headers.go).
	c.hdec = h2wire.NewHeaderDecoder(h2wire.HeaderLimits{MaxList: c.lim.maxList, MaxBlock: c.lim.maxBlock, MaxString: c.lim.maxBlock * 8 / 5})
	c.w = h2wire.NewWriter(netWriter{c}, 32<<10, func(error) { _ = nc.Close() })
	c.connRecv.Store(int64(c.lim.connWindow))
	return c
}

// netReader is the reading goroutine's view of the connection: it
// releases the reader's cork before every read from the network, so that
// what was written while the reader handled a batch of frames is flushed
// when the batch ends (the reader would otherwise block holding it).
type netReader struct{ c *conn }

func (r netReader) Read(p []byte) (int, error) {
	r.c.giveBack(0) // window of dropped DATA, before the client may wait for it
	r.c.w.Uncork()
	n, err := r.c.nc.Read(p)
	r.c.w.AddPending(1)
	if n > 0 && r.c.lim.ping > 0 {
		r.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// netWriter is the write path's view of the connection: every write (a
// flush of the buffer, or a frame written past it) must end within
// WriteTimeout. The first error closes the connection (h2wire's onErr),
// so that the reader and every waiting handler end.
type netWriter struct{ c *conn }

func (w netWriter) Write(p []byte) (int, error) {
	if d := w.c.lim.writeTimeout; d > 0 {
		_ = w.c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	return w.c.nc.Write(p)
}

// connError is a connection error: GOAWAY with code, then the end.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string {
	return fmt.Sprintf("h2srv: connection error %v: %s", e.code, e.reason)
}

func errConn(code http2.ErrCode, format string, a ...any) error {
	return connError{code, fmt.Sprintf(format, a...)}
}

// errStream is a stream error: RST_STREAM with code, the connection goes on.
func errStream(id uint32, code http2.ErrCode) error {
	return http2.StreamError{StreamID: id, Code: code}
}

var errClosedByPeer = errors.New("h2srv: connection closed")

func (c *conn) serve(ctx context.Context) error {
	cctx, cancel := context.WithCancel(ctx)
	c.ctx, c.cancel = cctx, cancel
	stop := context.AfterFunc(cctx, func() { _ = c.nc.Close() })
	defer stop()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.w.Flusher(c.ctx.Done())
	}()
	c.w.AddPending(1) // the reader's cork (netReader releases it to read)
	err := c.serveFrames()
	c.w.Uncork()
	var ce connError
	if errors.As(err, &ce) {
		c.log.Debug("h2srv: connection error", "remote", c.nc.RemoteAddr(), "code", ce.code, "reason", ce.reason)
		c.writeGoAway(ce.code, ce.reason)
		c.w.FlushNow()
		c.drain(ce.code)
		err = ce
	}
	c.w.FlushNow()
	_ = c.nc.Close()
	c.cancel()
	c.endStreams()
	c.wg.Wait()
	for len(c.work) > 0 { // handed to a goroutine that left at the end
		(<-c.work).finish()
	}
	c.mu.Lock()
	c.ended = true
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.drainTimer != nil {
		c.drainTimer.Stop()
	}
	if c.ageTimer != nil {
		c.ageTimer.Stop()
	}
	closing := c.closing
	c.mu.Unlock()
	if werr := c.writeErr(); errors.Is(werr, os.ErrDeadlineExceeded) {
		c.log.Debug("h2srv: write timeout", "remote", c.nc.RemoteAddr(), "timeout", c.lim.writeTimeout)
		return fmt.Errorf("h2srv: a write took longer than %v: %w", c.lim.writeTimeout, werr)
	}
	if closing || errors.Is(err, errClosedByPeer) || errors.Is(err, io.EOF) {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// writeErr is the error that ended the connection's writes, if any.
func (c *conn) writeErr() error {
	c.w.Lock()
	defer c.w.Unlock()
	return c.w.Err()
}

// drain reads and drops what the client still sends, for a while, so that closing the connection does not reset it before the
// client read the GOAWAY.
func (c *conn) drain(code http2.ErrCode) {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	// At most 1 MiB; an attacker (ENHANCE_YOUR_CALM: a flood, Rapid
	// Reset) 64 KiB in 100 ms: it is then left with a closed socket, not
	// a reader that takes its frames.
	n, d := int64(1<<20), time.Second
	if code == http2.ErrCodeEnhanceYourCalm {
		n, d = 64<<10, 100*time.Millisecond
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	_, _ = io.CopyN(io.Discard, c.nc, n)
}

func (c *conn) serveFrames() error {
	// The server preface first: nothing to wait for.
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.lim.maxStreams},
		{ID: http2.SettingInitialWindowSize, Val: c.lim.streamWindow},
		{ID: http2.SettingMaxFrameSize, Val: c.lim.maxFrame},
		{ID: http2.SettingMaxHeaderListSize, Val: c.lim.maxList},
		{ID: http2.SettingEnablePush, Val: 0},
	}
	c.w.Lock()
	c.w.Settings(settings)
	if inc := c.lim.connWindow - h2wire.InitialWindow; inc > 0 {
		c.w.WindowUpdate(0, inc)
	}
	c.w.Unlock()

	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return fmt.Errorf("h2srv: reading the client preface: %w", err)
	}
	if string(preface[:]) != http2.ClientPreface {
		return errors.New("h2srv: bad client preface")
	}
	c.armIdle()
	c.armPing()
	c.armAge()
	first := true
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			if first {
				first = false
				if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
					return errConn(http2.ErrCodeProtocol, "first frame is not SETTINGS")
				}
			}
			err = c.processFrame(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		switch {
		case errors.As(err, &se):
			c.resetStream(se.StreamID, se.Code)
			continue
		case errors.Is(err, http2.ErrFrameTooLarge):
			return errConn(http2.ErrCodeFrameSize, "frame larger than %d bytes", c.lim.maxFrame)
		}
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			reason := "malformed frame"
			if d := c.fr.ErrorDetail(); d != nil {
				reason = d.Error()
			}
			return errConn(http2.ErrCode(ce), "%s", reason)
		}
		var mine connError
		if errors.As(err, &mine) {
			return err
		}
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return errClosedByPeer
		}
		return fmt.Errorf("h2srv: reading: %w", err)
	}
}

func (c *conn) processFrame(f h2wire.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *h2wire.HeadersFrame:
		return c.onHeaders(f)
	case *h2wire.ContinuationFrame:
		return c.onContinuation(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.StreamID != 0 {
			return errConn(http2.ErrCodeProtocol, "PING on stream %d", f.StreamID)
		}
		if err := c.spend(); err != nil {
			return err
		}
		if !f.IsAck() {
			if err := c.pingPolicy(); err != nil {
				return err
			}
		}
		if f.IsAck() {
			c.mu.Lock()
			c.pingSent = time.Time{}
			c.mu.Unlock()
			if f.Data == drainPing {
				c.finalGoAway()
			}
			return nil
		}
		c.w.Lock()
		c.w.Ping(true, f.Data)
		c.w.Unlock()
		return nil
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return errStream(f.StreamID, http2.ErrCodeProtocol)
		}
		return c.spend()
	case *http2.GoAwayFrame:
		// The client stops opening streams; the open ones finish.
		return c.spend()
	case *http2.PushPromiseFrame:
		return errConn(http2.ErrCodeProtocol, "PUSH_PROMISE from a client")
	default:
		return c.spend() // unknown frame types are ignored
	}
}

// spend counts a control frame (see MaxControlFrames) against the
// connection's allowance: a connection error once it is spent.
func (c *conn) spend() error {
	if c.ctlLeft > 0 {
		c.ctlLeft--
		return nil
	}
	if c.lim.maxControl < 0 {
		return nil
	}
	c.refill()
	if c.ctlLeft == 0 {
		return errConn(http2.ErrCodeEnhanceYourCalm, "more than %d control frames", c.lim.maxControl)
	}
	c.ctlLeft--
	return nil
}

// refill gives back the control-frame allowance earned since the last
// refill: MaxControlFrames a second (MaxControlFrames at most), and one
// per DATA or HEADERS frame the server wrote.
func (c *conn) refill() {
	c.w.Lock()
	out := c.w.FramesOut()
	c.w.Unlock()
	earned := int(min(out-c.ctlSeen, 1<<30))
	c.ctlSeen = out
	now := time.Now()
	if t := int(min(now.Sub(c.ctlAt), time.Second).Seconds() * float64(c.lim.maxControl)); t > 0 {
		earned += t
		c.ctlAt = now
	}
	c.ctlLeft = earned
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if err := c.spend(); err != nil {
		return err
	}
	if f.IsAck() {
		return nil // ours, the sniffer's, or an extra one: nothing to do
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.w.Lock()
			c.w.SetMaxDynamicTableSizeLimit(s.Val)
			c.w.Unlock()
		case http2.SettingInitialWindowSize:
			return c.setPeerWindow(int64(s.Val))
		case http2.SettingMaxFrameSize:
			c.w.PeerFrame.Store(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.skipAcks > 0 {
		c.skipAcks--
		return nil
	}
	c.w.Lock()
	c.w.SettingsAck()
	c.w.Unlock()
	return nil
}

// setPeerWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to every open
// stream's send window (RFC 9113 §6.9.2).
func (c *conn) setPeerWindow(v int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delta := v - c.peerWindow
	c.peerWindow = v
	for _, st := range c.streams {
		st.sendWin += delta
		if st.sendWin > h2wire.MaxWindow {
			return errConn(http2.ErrCodeFlowControl, "stream %d window over 2^31-1", st.id)
		}
		if delta > 0 {
			st.sendCond.Broadcast()
		}
	}
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.connSend += int64(f.Increment)
		if c.connSend > h2wire.MaxWindow {
			return errConn(http2.ErrCodeFlowControl, "connection window over 2^31-1")
		}
		for _, st := range c.streams {
			if st.waiting {
				st.sendCond.Broadcast()
			}
		}
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if c.idleLocked(f.StreamID) {
			return errConn(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil
	}
	st.sendWin += int64(f.Increment)
	if st.sendWin > h2wire.MaxWindow {
		return errStream(f.StreamID, http2.ErrCodeFlowControl)
	}
	st.sendCond.Broadcast()
	return nil
}

// idleLocked reports whether id is a stream the client has not opened.
func (c *conn) idleLocked(id uint32) bool {
	return id > c.maxClientID || id%2 == 0
}

func (c *conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	st := c.streams[f.StreamID]
	if st == nil {
		idle := c.idleLocked(f.StreamID)
		c.mu.Unlock()
		if idle {
			return errConn(http2.ErrCodeProtocol, "RST_STREAM on idle stream %d", f.StreamID)
		}
		return c.spend() // a stream already closed: nothing to do
	}
	premature := !st.answered && time.Since(st.opened) < time.Second
	c.closeStreamLocked(st, ResetError{f.ErrCode})
	c.mu.Unlock()
	if premature {
		c.resets++
		if c.lim.maxResets > 0 && c.resets > c.lim.maxResets && 2*c.resets > c.opened {
			return errConn(http2.ErrCodeEnhanceYourCalm, "too many streams reset before an answer")
		}
	}
	return nil
}

// resetStream answers a stream error: RST_STREAM code, the stream closed.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		st.answered = true
		c.closeStreamLocked(st, ResetError{code})
	}
	c.mu.Unlock()
	c.w.Lock()
	c.w.RSTStream(id, code)
	c.w.Unlock()
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	data := f.Data()
	if len(data) == 0 && !f.StreamEnded() {
		if err := c.spend(); err != nil { // an empty frame moves nothing on
			return err
		}
	}
	if n > c.connRecv.Load() {
		return errConn(http2.ErrCodeFlowControl, "DATA beyond the connection window")
	}
	c.connRecv.Add(-n)
	c.mu.Lock()
	st := c.streams[id]
	if st == nil || st.remoteClosed() {
		idle := st == nil && c.idleLocked(id)
		c.mu.Unlock()
		c.giveBack(n)
		if idle {
			return errConn(http2.ErrCodeProtocol, "DATA on idle stream %d", id)
		}
		return errStream(id, http2.ErrCodeStreamClosed)
	}
	c.mu.Unlock()
	if n > st.recvAvail.Load() {
		c.giveBack(n)
		return errStream(id, http2.ErrCodeFlowControl)
	}
	st.recvAvail.Add(-n)
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBack(pad)
		st.giveBack(pad)
	}
	st.received += int64(len(data))
	if st.contentLength >= 0 && (st.received > st.contentLength || f.StreamEnded() && st.received != st.contentLength) {
		c.giveBack(int64(len(data)))
		return errStream(id, http2.ErrCodeProtocol)
	}
	if f.StreamEnded() {
		c.remoteEnded(st) // before the handler can see io.EOF
	}
	if !st.deliver(data, f.StreamEnded(), nil) {
		c.giveBack(int64(len(data))) // the stream ended meanwhile
	}
	return nil
}

// remoteEnded records the client's END_STREAM on st.
func (c *conn) remoteEnded(st *Stream) {
	c.mu.Lock()
	st.state |= remoteDone
	if st.state&localDone != 0 {
		c.removeLocked(st)
	}
	c.mu.Unlock()
}

// giveBack returns n bytes of connection window to the client, by
// WINDOW_UPDATE once enough has gathered.
func (c *conn) giveBack(n int64) {
	v := c.connUnsent.Add(n)
	if v <= 0 || v < int64(c.lim.connWindow)/2 {
		return
	}
	if !c.connUnsent.CompareAndSwap(v, 0) {
		return // another caller took it
	}
	c.connRecv.Add(v)
	c.w.Lock()
	c.w.WindowUpdate(0, uint32(v))
	c.w.Unlock()
}

// checkNewStreamLocked says whether the client may open stream id (mu
// held): a connection error for an even id or one not above the last.
func (c *conn) checkNewStreamLocked(id uint32) error {
	if id%2 == 0 {
		return errConn(http2.ErrCodeProtocol, "stream id %d is even", id)
	}
	if id <= c.maxClientID {
		return errConn(http2.ErrCodeProtocol, "stream id %d is not above %d", id, c.maxClientID)
	}
	return nil
}

// openStream starts st (headers validated): its handler runs now, or
// when one of the connection's running handlers returns.
func (c *conn) openStream(st *Stream) {
	c.mu.Lock()
	c.opened++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.handlers >= int(c.lim.maxStreams) {
		c.queue = append(c.queue, st)
		c.mu.Unlock()
		return
	}
	c.handlers++
	if c.idle > 0 {
		// A parked handler goroutine takes it (its stack already grown):
		// the buffered send cannot block, a slot was counted for it.
		c.idle--
		c.mu.Unlock()
		c.work <- st
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go c.runHandlers(st)
}

// maxIdleHandlers is how many handler goroutines a connection keeps
// parked for its next streams, rather than starting one per stream.
const maxIdleHandlers = 16

func (c *conn) runHandlers(st *Stream) {
	defer c.wg.Done()
	for st != nil {
		c.runHandler(st)
		c.mu.Lock()
		st = nil
		for len(c.queue) > 0 && st == nil {
			st = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if st.state == closed {
				st.finish()
				st = nil
			}
		}
		if st != nil {
			c.mu.Unlock()
			continue
		}
		c.handlers--
		if c.idle >= maxIdleHandlers || c.goingAway {
			c.mu.Unlock()
			return
		}
		c.idle++
		c.mu.Unlock()
		select {
		case st = <-c.work:
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *conn) runHandler(st *Stream) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("h2srv: handler panic", "stream", st.id, "panic", r)
			st.Reset(http2.ErrCodeInternal)
		}
		st.handlerDone()
	}()
	if st.tooLarge {
		c.srv.HeaderListTooLarge.ServeStream(st)
		return
	}
	c.srv.Handler.ServeStream(st)
}

// closeStreamLocked ends st on both sides (a reset, or the connection's
// end): its readers and writers wake with err.
func (c *conn) closeStreamLocked(st *Stream, err error) {
	st.state = closed
	st.sendErr = err
	st.sendCond.Broadcast()
	c.removeLocked(st)
	st.fail(err)
	st.cancel()
}

// removeLocked takes st out of the table once both sides are done.
func (c *conn) removeLocked(st *Stream) {
	if c.streams[st.id] != st {
		return
	}
	delete(c.streams, st.id)
	for i, q := range c.queue {
		if q == st {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			st.finish()
			break
		}
	}
	if len(c.streams) == 0 {
		if c.goingAway {
			go c.closeGracefully()
		} else {
			c.armIdleLocked()
		}
	}
}

// endStreams fails every stream at the connection's end.
func (c *conn) endStreams() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goingAway = true
	for _, st := range c.streams {
		c.closeStreamLocked(st, ErrConnClosed)
	}
	for _, st := range c.queue {
		st.finish()
	}
	c.queue = nil
}

// ErrConnClosed is what a stream's Read and Write return once its
// connection ended.
var ErrConnClosed = errors.New("h2srv: connection closed")

// drainPing is the payload of the PING that follows a graceful close's
// first GOAWAY.
var drainPing = [8]byte{'h', '2', 's', 'r', 'v', 'g', 'o', 'a'}

// drainPingWait is how long a graceful close waits for the ACK of its
// PING before the final GOAWAY.
const drainPingWait = time.Second

// goAway starts a graceful close (RFC 9113 §6.8): GOAWAY NO_ERROR naming
// stream 2^31-1 and a PING; the streams the client opens meanwhile are
// served. The PING's ACK (or drainPingWait without one) sends the final
// GOAWAY (finalGoAway).
func (c *conn) goAway() {
	c.mu.Lock()
	if c.draining || c.goingAway || c.closing || c.ended {
		c.mu.Unlock()
		return
	}
	c.draining = true
	c.drainTimer = time.AfterFunc(c.lim.drainWait, c.finalGoAway)
	c.mu.Unlock()
	c.w.Lock()
	c.w.GoAway(maxStreamID, http2.ErrCodeNo, "")
	c.w.Ping(false, drainPing)
	c.w.Unlock()
}

// finalGoAway ends a graceful close's wait: GOAWAY NO_ERROR naming the
// last stream the client opened, later streams refused; the connection
// closes when its open streams end.
func (c *conn) finalGoAway() {
	c.mu.Lock()
	if !c.draining || c.goingAway || c.closing || c.ended {
		c.mu.Unlock()
		return
	}
	c.drainTimer.Stop()
	c.goingAway = true
	last := c.maxClientID // with goingAway set: every later stream is refused
	idle := len(c.streams) == 0
	c.mu.Unlock()
	c.w.Lock()
	c.w.GoAway(last, http2.ErrCodeNo, "")
	c.w.Unlock()
	if idle {
		c.closeGracefully()
	}
}

// closeGracefully ends the connection after GOAWAY, its streams done:
// what is buffered is flushed, the write side closed, and the reader
// reads until the client closes, for a second at most.
func (c *conn) closeGracefully() {
	c.mu.Lock()
	if c.closing || c.ended {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.mu.Unlock()
	c.w.FlushNow()
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		_ = c.nc.Close()
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
}

// close ends the connection now.
func (c *conn) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	_ = c.nc.Close()
}

func (c *conn) armIdle() {
	c.mu.Lock()
	c.armIdleLocked()
	c.mu.Unlock()
}

func (c *conn) armIdleLocked() {
	if c.lim.idle <= 0 || c.closing || c.ended {
		return
	}
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.lim.idle, c.onIdle)
		return
	}
	c.idleTimer.Reset(c.lim.idle)
}

func (c *conn) onIdle() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && len(c.queue) == 0
	c.mu.Unlock()
	if idle {
		c.goAway()
	}
}

// maxPingStrikes is how many PINGs against MinPingInterval a connection
// may send (grpc-go's server allows as many); the next one ends it.
const maxPingStrikes = 2

// pingPolicy counts a client's PING against MinPingInterval (the reader
// goroutine only).
func (c *conn) pingPolicy() error {
	if c.lim.minPing <= 0 {
		return nil
	}
	now := time.Now()
	last := c.lastPing
	c.lastPing = now
	c.w.Lock()
	out := c.w.FramesOut()
	c.w.Unlock()
	if out != c.pingOut { // the server sent HEADERS or DATA since the last PING
		c.pingOut = out
		c.pingStrikes = 0
		return nil
	}
	c.mu.Lock()
	open := len(c.streams) > 0
	c.mu.Unlock()
	least := c.lim.minPing
	if !open && !c.lim.pingIdleOK {
		least = 2 * time.Hour // no keepalive is due without a stream
	}
	if !last.IsZero() && now.Sub(last) < least {
		c.pingStrikes++
	}
	if c.pingStrikes > maxPingStrikes {
		return errConn(http2.ErrCodeEnhanceYourCalm, "too_many_pings")
	}
	return nil
}

// armAge starts MaxConnectionAge's timer, jittered by up to 10 % either
// way.
func (c *conn) armAge() {
	age := c.lim.maxAge
	if age <= 0 {
		return
	}
	if j := int64(age / 10); j > 0 {
		age += time.Duration(rand.Int64N(2*j+1) - j) //nolint:gosec // jitter, not a secret
	}
	c.mu.Lock()
	c.ageTimer = time.AfterFunc(age, c.onAge)
	c.mu.Unlock()
}

// onAge ends a connection that reached MaxConnectionAge: a graceful
// close, then, after MaxConnectionAgeGrace, the end of what is still open.
func (c *conn) onAge() {
	c.log.Debug("h2srv: max connection age", "remote", c.nc.RemoteAddr(), "age", c.lim.maxAge)
	c.goAway()
	if c.lim.ageGrace <= 0 {
		return
	}
	c.mu.Lock()
	if !c.ended {
		c.ageTimer = time.AfterFunc(c.lim.ageGrace, c.close)
	}
	c.mu.Unlock()
}

func (c *conn) armPing() {
	if c.lim.ping <= 0 {
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.pingTimer = time.AfterFunc(c.lim.ping, c.onPingTimer)
	c.mu.Unlock()
}

// onPingTimer runs every PingInterval: a PING after a quiet interval, the
// end when a PING went unanswered for PingTimeout.
func (c *conn) onPingTimer() {
	now := time.Now()
	quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
	c.mu.Lock()
	if c.closing || c.ended || c.pingTimer == nil {
		c.mu.Unlock()
		return
	}
	sent := c.pingSent
	var next time.Duration
	switch {
	case !sent.IsZero() && quiet >= now.Sub(sent):
		if now.Sub(sent) >= c.lim.pingTimeout {
			c.mu.Unlock()
			c.log.Debug("h2srv: keepalive PING unanswered", "remote", c.nc.RemoteAddr())
			c.close()
			return
		}
		next = c.lim.pingTimeout - now.Sub(sent)
	case quiet >= c.lim.ping:
		c.pingSent = now
		next = c.lim.pingTimeout
		c.mu.Unlock()
		c.w.Lock()
		c.w.Ping(false, [8]byte{'h', '2', 's', 'r', 'v'})
		c.w.Unlock()
		c.mu.Lock()
	default:
		c.pingSent = time.Time{}
		next = c.lim.ping - quiet
	}
	if !c.closing && !c.ended {
		c.pingTimer.Reset(next)
	}
	c.mu.Unlock()
}
