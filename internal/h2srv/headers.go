package h2srv

import (
	"errors"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// headerBlock is the header block being read: HEADERS and its
// CONTINUATIONs, decoded as they arrive (c.hdec).
type headerBlock struct {
	id        uint32
	trailers  *Stream // the stream it ends (trailers); nil: it opens stream id
	endStream bool
	refuse    http2.ErrCode // non-zero: decode only, then RST_STREAM with it
}

func (c *conn) onHeaders(f *h2wire.HeadersFrame) error {
	id := f.StreamID
	hb := &c.hb
	*hb = headerBlock{id: id, endStream: f.StreamEnded()}
	c.hdec.Start()
	if f.HasPriority() && f.Priority.StreamDep == id {
		hb.refuse = http2.ErrCodeProtocol
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		switch {
		case st.remoteClosed():
			hb.refuse = http2.ErrCodeStreamClosed
		case !f.StreamEnded():
			hb.refuse = http2.ErrCodeProtocol // a second HEADERS must end the stream
		default:
			hb.trailers = st
		}
		c.mu.Unlock()
	} else {
		if err := c.checkNewStreamLocked(id); err != nil {
			c.mu.Unlock()
			return err
		}
		c.maxClientID = id
		switch {
		case c.goingAway:
			hb.refuse = http2.ErrCodeRefusedStream
		case uint32(len(c.streams)) >= c.lim.maxStreams:
			hb.refuse = http2.ErrCodeRefusedStream
		}
		c.mu.Unlock()
	}
	return c.headerFragment(f.Fragment, f.HeadersEnded())
}

func (c *conn) onContinuation(f *h2wire.ContinuationFrame) error {
	// The framer checks the sequence (CONTINUATION only right after an
	// unfinished HEADERS or CONTINUATION of the same stream).
	return c.headerFragment(f.Fragment, f.HeadersEnded())
}

func (c *conn) headerFragment(frag []byte, end bool) error {
	if err := c.hdec.Fragment(frag, end); err != nil {
		if errors.Is(err, h2wire.ErrBlockTooLarge) {
			return errConn(http2.ErrCodeEnhanceYourCalm, "header block over %d bytes", c.lim.maxBlock)
		}
		return errConn(http2.ErrCodeCompression, "%v", err)
	}
	if !end {
		return nil
	}
	return c.headerBlockDone()
}

func (c *conn) headerBlockDone() error {
	hb := &c.hb
	id := hb.id
	fields, tooBig := c.hdec.Scratch(), c.hdec.TooBig()
	if hb.refuse != 0 {
		if hb.refuse == http2.ErrCodeRefusedStream {
			c.w.Lock()
			c.w.RSTStream(id, hb.refuse)
			c.w.Unlock()
			return nil
		}
		return errStream(id, hb.refuse)
	}
	if st := hb.trailers; st != nil {
		if tooBig || !validTrailers(fields) {
			return errStream(id, http2.ErrCodeProtocol)
		}
		if st.contentLength >= 0 && st.received != st.contentLength {
			return errStream(id, http2.ErrCodeProtocol)
		}
		c.remoteEnded(st) // before the handler can see io.EOF
		st.deliver(nil, true, c.hdec.Fields())
		return nil
	}
	st := &Stream{c: c, id: id, contentLength: -1, opened: time.Now()}
	if tooBig {
		if c.srv.HeaderListTooLarge == nil {
			c.answer431(st, hb.endStream)
			return nil
		}
		st.tooLarge = true
		st.pseudo(fields)
		st.header = c.hdec.FieldsIn(st.headerRoom[:])
		c.register(st, hb.endStream)
		c.openStream(st)
		return nil
	}
	if !st.parseRequest(fields) {
		return errStream(id, http2.ErrCodeProtocol)
	}
	if hb.endStream && st.contentLength > 0 {
		return errStream(id, http2.ErrCodeProtocol)
	}
	st.header = c.hdec.FieldsIn(st.headerRoom[:])
	c.register(st, hb.endStream)
	c.openStream(st)
	return nil
}

// answer431 answers a request whose header list is over
// MaxHeaderListSize with :status 431, without a handler; RST_STREAM
// NO_ERROR tells the client to send no more of it.
func (c *conn) answer431(st *Stream, endStream bool) {
	c.register(st, endStream)
	c.mu.Lock()
	st.answered, st.wroteHeaders = true, true
	c.mu.Unlock()
	_ = st.writeBlock([]hpack.HeaderField{{Name: ":status", Value: "431"}}, true)
	st.handlerDone()
}

// register puts a new stream in the table.
func (c *conn) register(st *Stream, endStream bool) {
	st.init()
	c.mu.Lock()
	st.sendWin = c.peerWindow
	if endStream {
		st.state |= remoteDone
		st.rclosed = true
	}
	c.streams[st.id] = st
	c.mu.Unlock()
}

// parseRequest validates a request's header list (RFC 9113 §8.2, §8.3)
// and records its pseudo-headers and content-length.
func (st *Stream) parseRequest(fields []hpack.HeaderField) bool {
	var seen uint8
	regular := false
	for _, f := range fields {
		if f.IsPseudo() {
			if regular {
				return false
			}
			var bit uint8
			var dst *string
			switch f.Name {
			case ":method":
				bit, dst = 1, &st.method
			case ":scheme":
				bit, dst = 2, &st.scheme
			case ":authority":
				bit, dst = 4, &st.authority
			case ":path":
				bit, dst = 8, &st.path
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			*dst = f.Value
			continue
		}
		regular = true
		if !validField(f) {
			return false
		}
		if f.Name == "content-length" {
			n, err := strconv.ParseUint(f.Value, 10, 63)
			if err != nil || st.contentLength >= 0 && st.contentLength != int64(n) {
				return false
			}
			st.contentLength = int64(n)
		}
	}
	if st.method == "CONNECT" {
		return seen == 1|4 && st.authority != ""
	}
	return seen&(1|2|8) == 1|2|8 && st.path != "" && st.method != ""
}

// pseudo records the pseudo-headers of a header list cut short at
// MaxHeaderListSize, unvalidated.
func (st *Stream) pseudo(fields []hpack.HeaderField) {
	for _, f := range fields {
		switch f.Name {
		case ":method":
			st.method = f.Value
		case ":scheme":
			st.scheme = f.Value
		case ":authority":
			st.authority = f.Value
		case ":path":
			st.path = f.Value
		}
	}
}

func validTrailers(fields []hpack.HeaderField) bool {
	for _, f := range fields {
		if f.IsPseudo() || !validField(f) {
			return false
		}
	}
	return true
}

// validField checks a regular field (h2wire.ValidField), and that it is
// none of HTTP/1's connection-specific fields.
func validField(f hpack.HeaderField) bool {
	if !h2wire.ValidField(f) {
		return false
	}
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		return false
	case "te":
		return f.Value == "trailers"
	}
	return true
}
