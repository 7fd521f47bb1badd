package h2srv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// Stream states, as bits: what each side has ended.
const (
	remoteDone uint8 = 1 << iota // END_STREAM received (half-closed remote)
	localDone                    // END_STREAM sent (half-closed local)
	closed     = remoteDone | localDone
)

// ResetError is what Read and Write return on a stream that was reset:
// by the client (Code is its RST_STREAM code) or by the server.
type ResetError struct{ Code http2.ErrCode }

func (e ResetError) Error() string { return fmt.Sprintf("h2srv: stream reset (%v)", e.Code) }

// Stream is one request stream. Its handler reads the request with Read
// and answers with WriteHeaders, Write and WriteTrailers (in that order,
// from one goroutine at a time); Reset and the accessors may be called
// from any goroutine.
type Stream struct {
	c             *conn
	id            uint32
	ctx           context.Context
	cancel        context.CancelFunc
	header        []hpack.HeaderField
	method        string
	path          string
	authority     string
	scheme        string
	opened        time.Time
	contentLength int64 // -1: none
	tooLarge      bool  // its header list was over MaxHeaderListSize
	received      int64 // DATA payload so far (the reader only)
	// headerRoom holds a request's header list when it fits (most do),
	// so that the stream and its header list are one allocation.
	headerRoom [8]hpack.HeaderField

	// Receive side.
	recvAvail atomic.Int64 // stream window the client may still use
	rmu       sync.Mutex
	rcond     sync.Cond
	rbuf      h2wire.RecvBuf
	rclosed   bool  // END_STREAM received
	rerr      error // reset or connection end
	trailer   []hpack.HeaderField
	unsent    int64 // bytes read and not yet returned by WINDOW_UPDATE
	finished  bool

	// corks are the handler's (Cork), released while Read or Write waits.
	// Atomic: Read may run on another goroutine than the writer's (a
	// gRPC stream's RecvMsg and SendMsg).
	corks atomic.Int32

	// Send side, under c.mu.
	state        uint8
	sendWin      int64
	sendCond     sync.Cond
	sendErr      error
	waiting      bool
	wroteHeaders bool
	answered     bool // HEADERS or RST_STREAM sent (for Rapid Reset)
}

func (st *Stream) init() {
	if d, ok := st.timeout(); ok {
		st.ctx, st.cancel = context.WithTimeout(st.c.ctx, d)
	} else {
		st.ctx, st.cancel = context.WithCancel(st.c.ctx)
	}
	st.rcond.L = &st.rmu
	st.sendCond.L = &st.c.mu
	st.recvAvail.Store(int64(st.c.lim.streamWindow))
}

// timeout is the request's bound by the Server's Timeout, if any.
func (st *Stream) timeout() (time.Duration, bool) {
	if f := st.c.srv.Timeout; f != nil {
		return f(st.header)
	}
	return 0, false
}

// Context is canceled when the client resets the stream, the connection
// ends, or the handler returns (context.Canceled), and at the request's
// deadline when the Server's Timeout gives one (context.DeadlineExceeded).
func (st *Stream) Context() context.Context { return st.ctx }

// ID is the stream's id.
func (st *Stream) ID() uint32 { return st.id }

// Header is the request's header list as decoded, pseudo-headers first,
// validated (RFC 9113 §8.2-8.3). The caller must not modify it.
func (st *Stream) Header() []hpack.HeaderField { return st.header }

// Method is the request's :method.
func (st *Stream) Method() string { return st.method }

// Path is the request's :path.
func (st *Stream) Path() string { return st.path }

// Authority is the request's :authority ("" when absent).
func (st *Stream) Authority() string { return st.authority }

// Scheme is the request's :scheme.
func (st *Stream) Scheme() string { return st.scheme }

// Conn is the connection the stream came on (for the peer's address and
// a *tls.Conn's state). Reading or writing it breaks the connection.
func (st *Stream) Conn() net.Conn { return st.c.nc }

// Read reads the request's DATA payload (padding removed); io.EOF after
// END_STREAM, a ResetError after a reset, ErrConnClosed after the
// connection's end. What it returns goes back to the client as window
// (stream and connection WINDOW_UPDATE), so a slow reader slows the
// client; nothing is buffered beyond the windows.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	st.rmu.Lock()
	for st.rbuf.Len() == 0 {
		if st.rerr != nil {
			err := st.rerr
			st.rmu.Unlock()
			return 0, err
		}
		if st.rclosed {
			st.rmu.Unlock()
			return 0, io.EOF
		}
		if st.corks.Load() > 0 {
			// Waiting with a cork would hold back every other writer's
			// flush: release it for the wait.
			st.rmu.Unlock()
			st.parked(func() {
				st.rmu.Lock()
				for st.rbuf.Len() == 0 && st.rerr == nil && !st.rclosed {
					st.rcond.Wait()
				}
				st.rmu.Unlock()
			})
			st.rmu.Lock()
			continue
		}
		st.rcond.Wait()
	}
	n := st.rbuf.Read(p)
	var streamInc int64
	if !st.rclosed {
		st.unsent += int64(n)
		if st.unsent >= int64(st.c.lim.streamWindow)/2 {
			streamInc, st.unsent = st.unsent, 0
		}
	}
	st.rmu.Unlock()
	c := st.c
	if streamInc > 0 {
		st.recvAvail.Add(streamInc)
		c.w.Cork()
		c.w.Lock()
		c.w.WindowUpdate(st.id, uint32(streamInc))
		c.w.Unlock()
		c.giveBack(int64(n))
		c.w.Uncork()
	} else {
		c.giveBack(int64(n))
	}
	return n, nil
}

// Trailer is the request's trailers, once Read returned io.EOF (nil when
// the request had none).
func (st *Stream) Trailer() []hpack.HeaderField {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	return st.trailer
}

var (
	errHeadersWritten = errors.New("h2srv: response headers already written")
	errNoHeaders      = errors.New("h2srv: DATA before the response headers")
	errStreamEnded    = errors.New("h2srv: stream already ended")
)

// WriteHeaders sends the response's header list (HEADERS, and
// CONTINUATIONs past the client's frame size), ending the stream when
// endStream (a trailers-only answer). Once per stream.
func (st *Stream) WriteHeaders(h []hpack.HeaderField, endStream bool) error {
	c := st.c
	c.mu.Lock()
	switch {
	case st.sendErr != nil:
		c.mu.Unlock()
		return st.sendErr
	case st.wroteHeaders:
		c.mu.Unlock()
		return errHeadersWritten
	}
	st.wroteHeaders, st.answered = true, true
	c.mu.Unlock()
	return st.writeBlock(h, endStream)
}

// writeBlock writes a header block; endStream also ends the stream.
func (st *Stream) writeBlock(h []hpack.HeaderField, endStream bool) error {
	c := st.c
	if endStream {
		c.mu.Lock()
		ended := st.state&localDone != 0
		c.mu.Unlock()
		if ended {
			return errStreamEnded
		}
	}
	c.w.Lock()
	c.w.HeaderBlock(st.id, h, endStream)
	err := c.w.Err()
	c.w.Unlock()
	if endStream {
		// After the frame is in the buffer: a graceful close that the
		// stream's end allows flushes it first.
		c.mu.Lock()
		st.endLocalLocked()
		c.mu.Unlock()
	}
	return err
}

// endLocalLocked records our END_STREAM (c.mu held).
func (st *Stream) endLocalLocked() {
	st.state |= localDone
	if st.sendErr == nil {
		st.sendErr = errStreamEnded
	}
	if st.state == closed {
		st.c.removeLocked(st)
	}
}

// Write sends response DATA, split to the client's frame size. It blocks
// on the stream's and the connection's send windows (a slow reader slows
// the writer) and returns a ResetError or ErrConnClosed when the stream
// or connection ends meanwhile.
func (st *Stream) Write(p []byte) (int, error) { return st.write(p, true) }

// TryWrite sends as much of p as the stream's and the connection's send
// windows allow now, without waiting for more, and returns how much it
// sent (an error as Write). A relay's reading goroutine can write what
// the windows allow at once and leave the rest to the stream's
// goroutine; TryWrite never waits, so it may be called from a goroutine
// other than the handler's, though not at the same time as Write.
func (st *Stream) TryWrite(p []byte) (int, error) { return st.write(p, false) }

func (st *Stream) write(p []byte, wait bool) (int, error) {
	c := st.c
	c.w.Cork() // released while reserve waits
	defer c.w.Uncork()
	written := 0
	for len(p) > 0 {
		var n int
		var err error
		if wait {
			n, err = st.reserve(len(p))
		} else {
			n, err = st.take(len(p))
		}
		if err != nil || n == 0 {
			return written, err
		}
		c.w.Lock()
		c.w.Data(st.id, false, p[:n])
		err = c.w.Err()
		c.w.Unlock()
		if err != nil {
			return written, err
		}
		p = p[n:]
		written += n
	}
	return written, nil
}

// take takes window for up to want bytes (at most a frame), none when
// the windows are closed.
func (st *Stream) take(want int) (int, error) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return st.takeLocked(want)
}

func (st *Stream) takeLocked(want int) (int, error) {
	c := st.c
	switch {
	case st.sendErr != nil:
		return 0, st.sendErr
	case !st.wroteHeaders:
		return 0, errNoHeaders
	}
	avail := min(st.sendWin, c.connSend)
	if avail <= 0 {
		return 0, nil
	}
	n := int(min(avail, int64(want), int64(c.w.PeerFrame.Load())))
	st.sendWin -= int64(n)
	c.connSend -= int64(n)
	return n, nil
}

// reserve waits until the stream and connection windows allow some of
// want bytes and takes them (at most a frame).
func (st *Stream) reserve(want int) (int, error) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	// Released while waiting: the handler's corks and Write's own.
	var held int32
	released := false
	defer func() {
		if released {
			c.w.AddPending(held)
		}
	}()
	for {
		if n, err := st.takeLocked(want); n > 0 || err != nil {
			return n, err
		}
		if !released {
			// What is buffered may be what the client waits for before
			// it returns window: hold no cork while waiting (the others'
			// writes must leave meanwhile) and flush.
			c.mu.Unlock()
			held = st.corks.Load() + 1
			c.w.AddPending(-held)
			released = true
			c.w.FlushNow()
			c.mu.Lock()
			continue
		}
		st.waiting = true
		st.sendCond.Wait()
		st.waiting = false
	}
}

// WriteTrailers ends the stream with the response's trailers (HEADERS
// with END_STREAM); with none, with an empty DATA frame carrying
// END_STREAM. Called before WriteHeaders it sends a trailers-only answer.
func (st *Stream) WriteTrailers(h []hpack.HeaderField) error {
	c := st.c
	c.mu.Lock()
	if st.sendErr != nil {
		c.mu.Unlock()
		return st.sendErr
	}
	st.wroteHeaders, st.answered = true, true
	if len(h) > 0 {
		c.mu.Unlock()
		return st.writeBlock(h, true)
	}
	if st.state&localDone != 0 {
		c.mu.Unlock()
		return errStreamEnded
	}
	c.mu.Unlock()
	c.w.Lock()
	c.w.Data(st.id, true, nil)
	err := c.w.Err()
	c.w.Unlock()
	c.mu.Lock()
	st.endLocalLocked()
	c.mu.Unlock()
	return err
}

// Cork holds back the connection's flushes until Uncork, so that what
// the caller writes in between (headers, DATA, trailers, on this or
// other streams of the connection) leaves in as few writes as possible.
// A Write that must wait for window flushes anyway. Every Cork needs its
// Uncork.
// Read and Write release the stream's corks while they wait. Cork and
// Uncork belong to the goroutine that writes the stream; do not hold a
// cork while another goroutine may be reading it (the accounting of a
// cork released by a waiting Read and undone meanwhile is then off until
// the Read returns).
func (st *Stream) Cork() {
	st.corks.Add(1)
	st.c.w.Cork()
}

// Uncork undoes a Cork, flushing when no other writer is left.
func (st *Stream) Uncork() {
	st.corks.Add(-1)
	st.c.w.Uncork()
}

// parked runs wait with the stream's corks released.
func (st *Stream) parked(wait func()) {
	n := st.corks.Load()
	if c := st.c; c.w.AddPending(-n) == 0 {
		c.w.FlushNow()
	}
	wait()
	st.c.w.AddPending(n)
}

// Reset ends the stream with RST_STREAM code (unless it already ended):
// the client's frames on it are dropped, Read and Write return a
// ResetError.
func (st *Stream) Reset(code http2.ErrCode) {
	c := st.c
	c.mu.Lock()
	if st.state == closed {
		c.mu.Unlock()
		return
	}
	st.answered = true
	c.closeStreamLocked(st, ResetError{code})
	c.mu.Unlock()
	c.w.Lock()
	c.w.RSTStream(st.id, code)
	c.w.Unlock()
}

// handlerDone ends what the handler left open: RST_STREAM CANCEL when it
// did not end its side, NO_ERROR when the client's side is still open
// (the client need not send the rest of its request).
func (st *Stream) handlerDone() {
	c := st.c
	if n := st.corks.Swap(0); n > 0 { // a handler that returned (or panicked) corked
		c.w.UncorkN(n)
	}
	c.mu.Lock()
	var code http2.ErrCode
	reset := true
	switch {
	case st.state&localDone == 0:
		code = http2.ErrCodeCancel
	case st.state&remoteDone == 0:
		code = http2.ErrCodeNo
	default:
		reset = false
	}
	if reset {
		c.closeStreamLocked(st, ResetError{code})
	}
	c.mu.Unlock()
	if reset {
		c.w.Lock()
		c.w.RSTStream(st.id, code)
		c.w.Unlock()
	}
	st.finish()
}

// deliver hands the reader's DATA (and END_STREAM, trailers) to the
// stream; false when the stream no longer takes it (the bytes are the
// caller's to give back).
func (st *Stream) deliver(data []byte, end bool, trailers []hpack.HeaderField) bool {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	if st.rerr != nil || st.finished {
		return false
	}
	st.rbuf.Write(data)
	if end {
		st.rclosed = true
	}
	if trailers != nil {
		st.trailer = trailers
	}
	st.rcond.Signal()
	return true
}

// fail wakes the stream's reader with err and drops what it buffered.
func (st *Stream) fail(err error) {
	st.rmu.Lock()
	if st.rerr == nil {
		st.rerr = err
	}
	st.dropLocked()
	st.rcond.Broadcast()
	st.rmu.Unlock()
}

// finish releases the stream's buffers once its handler is done (or it
// never started).
func (st *Stream) finish() {
	st.rmu.Lock()
	st.finished = true
	st.dropLocked()
	st.rmu.Unlock()
	st.cancel()
}

// dropLocked discards the buffered DATA, its connection window owed back
// to the client (sent with the next WINDOW_UPDATE).
func (st *Stream) dropLocked() {
	if n := st.rbuf.Len(); n > 0 {
		st.c.connUnsent.Add(int64(n))
	}
	st.rbuf.Reset()
}

// giveBack returns stream window for bytes the handler never sees
// (padding); sent with the next WINDOW_UPDATE the stream's reads cause.
func (st *Stream) giveBack(n int64) {
	st.rmu.Lock()
	st.unsent += n
	st.rmu.Unlock()
}

// remoteClosed reports END_STREAM received or the stream closed (c.mu held).
func (st *Stream) remoteClosed() bool { return st.state&remoteDone != 0 }
