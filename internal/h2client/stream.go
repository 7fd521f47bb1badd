package h2client

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// Stream is one request stream. Its caller writes the request (Write,
// CloseSend) from one goroutine and reads the response (Header, Read,
// Trailer) from one goroutine, which may be another; Reset and Close may
// be called from any goroutine. Every stream must be closed.
type Stream struct {
	c   *Conn
	id  uint32
	ctx context.Context
	// stop ends the watch of ctx.
	stop func() bool

	// Receive side, under rmu.
	rmu       sync.Mutex
	rcond     sync.Cond
	header    []hpack.HeaderField
	gotHeader bool
	onlyHdr   bool // the header block ended the stream (trailers only)
	rbuf      h2wire.RecvBuf
	rclosed   bool
	rerr      error
	trailer   []hpack.HeaderField
	// fieldRoom holds the response's header and trailer fields when they
	// fit (a gRPC answer's do), so that the stream and its fields are one
	// allocation.
	fieldRoom [6]hpack.HeaderField
	roomUsed  int
	unsent    int64
	recvAvail atomic.Int64 // stream window the server may still use

	corks atomic.Int32 // the writer's, released while Write waits

	// Send side and state, under c.mu.
	sendWin    int64
	sendCond   sync.Cond
	sendErr    error
	localDone  bool
	remoteDone bool
	removed    bool
}

// NewStream opens a stream with the request header block h (pseudo-headers
// first) and, when end is set, no body. When the server's limit of
// concurrent streams is reached it waits for a stream to end, until ctx
// is done. A stream that cannot be opened because the connection is
// going away or has ended fails with an error that errors.Is ErrRefused.
// With cork set, the stream starts corked (see Cork): the headers wait
// for what the caller writes next. ctx bounds the stream: when it is
// done, the stream is reset (CANCEL) and its reads and writes fail with
// ctx's error.
func (c *Conn) NewStream(ctx context.Context, h []hpack.HeaderField, end, cork bool) (*Stream, error) {
	st := &Stream{c: c, ctx: ctx}
	st.rcond.L = &st.rmu
	st.sendCond.L = &c.mu
	st.recvAvail.Store(int64(c.o.InitialWindowSize))
	if err := c.waitSlot(ctx); err != nil {
		return nil, err
	}
	if cork {
		st.corks.Store(1)
		c.w.Cork()
	}
	c.w.Lock()
	c.mu.Lock()
	if err := c.refusedLocked(); err != nil {
		c.mu.Unlock()
		c.w.Unlock()
		if cork {
			st.Uncork()
		}
		return nil, err
	}
	st.id = c.nextID
	c.nextID += 2
	st.sendWin = c.peerWindow
	st.localDone = end
	c.streams[st.id] = st
	c.mu.Unlock()
	c.w.HeaderBlock(st.id, h, end)
	werr := c.w.Err()
	c.w.Unlock()
	if werr != nil {
		// Never sent: the connection failed under it.
		st.fail(&ConnError{Err: werr, refused: true})
		c.mu.Lock()
		c.removeLocked(st)
		c.mu.Unlock()
		if cork {
			st.Uncork()
		}
		return nil, st.rerr
	}
	if ctx.Done() != nil {
		st.stop = context.AfterFunc(ctx, st.canceled)
	}
	return st, nil
}

// waitSlot waits until the server's stream limit allows one more.
func (c *Conn) waitSlot(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if uint32(len(c.streams)) < c.maxStreams || c.refusedLocked() != nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.slots.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for uint32(len(c.streams)) >= c.maxStreams && c.refusedLocked() == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.slots.Wait()
	}
	return nil
}

func (c *Conn) refusedLocked() error {
	switch {
	case c.closed:
		err := &ConnError{Err: io.EOF, refused: true}
		if ce, ok := errors.AsType[*ConnError](c.err); ok {
			cp := *ce
			cp.refused = true
			err = &cp
		}
		return err
	case c.goAway != nil:
		cp := *c.goAway
		cp.refused = true
		return &cp
	}
	return nil
}

// ID is the stream's id.
func (st *Stream) ID() uint32 { return st.id }

// Conn is the connection the stream is on.
func (st *Stream) Conn() *Conn { return st.c }

// canceled resets the stream when its context is done.
func (st *Stream) canceled() {
	st.resetWith(http2.ErrCodeCancel, st.ctx.Err())
}

// Cork holds back the connection's flushes until Uncork, so that what
// the caller writes in between (headers, DATA, on this or other streams)
// leaves in as few writes as possible; a Write that must wait for window
// flushes anyway. Cork and Uncork belong to the writing goroutine.
func (st *Stream) Cork() {
	st.corks.Add(1)
	st.c.w.Cork()
}

// Uncork undoes a Cork, flushing when no other writer is left.
func (st *Stream) Uncork() {
	st.corks.Add(-1)
	st.c.w.Uncork()
}

// Write sends p as DATA, in frames of at most the server's frame size,
// with END_STREAM on the last when end is set. prefix, when not empty,
// goes before p in the first frame (a gRPC message's 5 bytes). It waits on
// the stream's and connection's send windows, and fails when the stream
// or connection ends meanwhile.
func (st *Stream) Write(prefix, p []byte, end bool) error {
	c := st.c
	c.w.Cork() // Write's own, released while it waits
	defer c.w.Uncork()
	for first := true; first || len(p) > 0 || len(prefix) > 0; first = false {
		want := len(prefix) + len(p)
		n, err := st.reserve(want)
		if err != nil {
			return err
		}
		pre := prefix[:min(n, len(prefix))]
		body := p[:n-len(pre)]
		last := end && n == want
		c.w.Lock()
		c.w.DataPrefixed(st.id, last, pre, body)
		err = c.w.Err()
		c.w.Unlock()
		if err != nil {
			return &ConnError{Err: err}
		}
		prefix, p = prefix[len(pre):], p[len(body):]
		if last {
			st.endLocal()
		}
	}
	return nil
}

// CloseSend ends the request (an empty DATA frame with END_STREAM).
func (st *Stream) CloseSend() error {
	c := st.c
	c.mu.Lock()
	if st.localDone {
		c.mu.Unlock()
		return nil
	}
	if st.sendErr != nil {
		err := st.sendErr
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	c.w.Lock()
	c.w.Data(st.id, true, nil)
	err := c.w.Err()
	c.w.Unlock()
	st.endLocal()
	if err != nil {
		return &ConnError{Err: err}
	}
	return nil
}

func (st *Stream) endLocal() {
	c := st.c
	c.mu.Lock()
	st.localDone = true
	if st.remoteDone {
		c.removeLocked(st)
	}
	c.mu.Unlock()
}

// reserve waits until the windows allow some of want bytes (0 for an
// empty frame) and takes them, at most a frame's worth.
func (st *Stream) reserve(want int) (int, error) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var held int32
	released := false
	defer func() {
		if released {
			c.w.AddPending(held)
		}
	}()
	for {
		switch {
		case st.sendErr != nil:
			return 0, st.sendErr
		case st.localDone:
			return 0, errors.New("h2client: write after the end of the request")
		case want == 0:
			return 0, nil
		}
		if avail := min(st.sendWin, c.connSend); avail > 0 {
			n := int(min(avail, int64(want), int64(c.w.PeerFrame.Load())))
			st.sendWin -= int64(n)
			c.connSend -= int64(n)
			return n, nil
		}
		if !released {
			// What is buffered may be what the server waits for before
			// it returns window: hold no cork while waiting, and flush.
			c.mu.Unlock()
			held = st.corks.Load() + 1
			c.w.AddPending(-held)
			released = true
			c.w.FlushNow()
			c.mu.Lock()
			continue
		}
		st.sendCond.Wait()
	}
}

// Header waits for the response's header block and returns it,
// pseudo-headers included; ended reports an answer of one header block
// that ended the stream (gRPC's trailers-only), which is also the
// stream's Trailer.
func (st *Stream) Header() (fields []hpack.HeaderField, ended bool, err error) {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	for !st.gotHeader {
		if st.rerr != nil {
			return nil, false, st.rerr
		}
		st.rcond.Wait()
	}
	return st.header, st.onlyHdr, nil
}

// Read reads the response's DATA; io.EOF after END_STREAM. What it
// returns goes back to the server as window.
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
		st.rcond.Wait()
	}
	n := st.rbuf.Read(p)
	st.unsent += int64(n)
	var inc int64
	if st.unsent >= int64(st.c.o.InitialWindowSize)/2 && !st.rclosed {
		inc, st.unsent = st.unsent, 0
	}
	st.rmu.Unlock()
	if inc > 0 {
		st.recvAvail.Add(inc)
		st.c.w.Lock()
		st.c.w.WindowUpdate(st.id, uint32(inc))
		st.c.w.Unlock()
	}
	st.c.giveBack(int64(n))
	return n, nil
}

// Trailer is the response's trailers, once Read has returned io.EOF (nil
// before, and for a response that ended without trailers).
func (st *Stream) Trailer() []hpack.HeaderField {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	return st.trailer
}

// Reset ends the stream with RST_STREAM code, unless it has ended; reads
// and writes then fail.
func (st *Stream) Reset(code http2.ErrCode) {
	st.resetWith(code, &StreamError{Code: code})
}

func (st *Stream) resetWith(code http2.ErrCode, err error) {
	c := st.c
	c.mu.Lock()
	if st.removed {
		c.mu.Unlock()
		st.fail(err) // ended already: nothing to send, but a waiter may still wait
		return
	}
	c.removeLocked(st)
	c.mu.Unlock()
	c.w.Lock()
	c.w.RSTStream(st.id, code)
	c.w.Unlock()
	st.fail(err)
}

// errClosed is what a stream closed before its end fails with.
var errClosed = &StreamError{Code: http2.ErrCodeCancel}

// Close releases the stream: one that has not ended both ways is reset
// (CANCEL), what it buffered is dropped.
func (st *Stream) Close() {
	if st.stop != nil {
		st.stop()
	}
	st.resetWith(http2.ErrCodeCancel, errClosed)
	st.rmu.Lock()
	st.dropLocked()
	st.rmu.Unlock()
}

// deliverHeaders hands the reader's header block (d's) to the stream:
// the response headers, or its trailers.
func (st *Stream) deliverHeaders(d *h2wire.HeaderDecoder, end bool) {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	if st.rerr != nil {
		return
	}
	if !st.gotHeader {
		if s := statusOf(d.Scratch()); len(s) == 3 && s[0] == '1' {
			return // informational (1xx): the answer follows
		}
	}
	room := st.fieldRoom[st.roomUsed:]
	fields := d.FieldsIn(room)
	if len(fields) <= len(room) {
		st.roomUsed += len(fields) // in the room; the next block takes what is left
	}
	if !st.gotHeader {
		st.header = fields
		st.gotHeader = true
		if end {
			st.trailer, st.onlyHdr = fields, true
		}
	} else {
		st.trailer = fields
	}
	if end {
		st.rclosed = true
	}
	st.rcond.Broadcast()
}

func statusOf(fields []hpack.HeaderField) string {
	for _, f := range fields {
		if f.Name == ":status" {
			return f.Value
		}
	}
	return ""
}

// answered reports whether the response's headers have arrived.
func (st *Stream) answered() bool {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	return st.gotHeader
}

// deliver hands the reader's DATA to the stream; false when the stream no
// longer takes it.
func (st *Stream) deliver(data []byte, end bool) bool {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	if st.rerr != nil {
		return false
	}
	st.rbuf.Write(data)
	if end {
		st.rclosed = true
	}
	st.rcond.Broadcast()
	return true
}

// fail ends the stream's writes with err, and its reads unless the
// response was complete (a reset after END_STREAM, say STREAM_CLOSED for
// request DATA the server no longer wanted, leaves the response readable).
func (st *Stream) fail(err error) {
	st.rmu.Lock()
	if st.rerr == nil && (!st.rclosed || !st.gotHeader) {
		st.rerr = err
		st.dropLocked()
	}
	st.rcond.Broadcast()
	st.rmu.Unlock()
	c := st.c
	c.mu.Lock()
	if st.sendErr == nil {
		st.sendErr = err
	}
	st.sendCond.Broadcast()
	c.mu.Unlock()
}

// dropLocked discards the buffered DATA, its connection window owed back
// to the server.
func (st *Stream) dropLocked() {
	if n := st.rbuf.Len(); n > 0 {
		st.c.connUnsent.Add(int64(n))
	}
	st.rbuf.Reset()
}

// giveBack returns stream window for bytes the caller never sees (padding).
func (st *Stream) giveBack(n int64) {
	st.rmu.Lock()
	st.unsent += n
	st.rmu.Unlock()
}
