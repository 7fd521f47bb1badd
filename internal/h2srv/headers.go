package h2srv

import (
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is the header block being read: HEADERS and its
// CONTINUATIONs, decoded as they arrive.
type headerBlock struct {
	c         *conn
	active    bool
	id        uint32
	trailers  *Stream // the stream it ends (trailers); nil: it opens stream id
	endStream bool
	wire      int    // bytes on the wire so far, frame headers included
	size      uint32 // decoded size (RFC 9113: name + value + 32 per field)
	tooBig    bool
	fields    []hpack.HeaderField
	refuse    http2.ErrCode // non-zero: decode only, then RST_STREAM with it
}

func (hb *headerBlock) emit(f hpack.HeaderField) {
	hb.size += f.Size()
	if hb.size > hb.c.lim.maxList {
		hb.tooBig = true // the fields so far are kept (HeaderListTooLarge sees them)
		hb.c.dec.SetEmitEnabled(false)
		return
	}
	hb.fields = append(hb.fields, f)
}

func (c *conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	hb := &c.hb
	*hb = headerBlock{c: c, active: true, id: id, endStream: f.StreamEnded(), fields: hb.fields[:0]}
	c.dec.SetEmitEnabled(true)
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
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (c *conn) onContinuation(f *http2.ContinuationFrame) error {
	// The framer checks the sequence (CONTINUATION only right after an
	// unfinished HEADERS or CONTINUATION of the same stream).
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (c *conn) headerFragment(frag []byte, end bool) error {
	hb := &c.hb
	hb.wire += frameHeaderLen + len(frag)
	if hb.wire > c.lim.maxBlock {
		return errConn(http2.ErrCodeEnhanceYourCalm, "header block over %d bytes", c.lim.maxBlock)
	}
	if _, err := c.dec.Write(frag); err != nil {
		return errConn(http2.ErrCodeCompression, "header block: %v", err)
	}
	if !end {
		return nil
	}
	hb.active = false
	if err := c.dec.Close(); err != nil {
		return errConn(http2.ErrCodeCompression, "header block: %v", err)
	}
	return c.headerBlockDone()
}

func (c *conn) headerBlockDone() error {
	hb := &c.hb
	id := hb.id
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
		if hb.tooBig || !validTrailers(hb.fields) {
			return errStream(id, http2.ErrCodeProtocol)
		}
		if st.contentLength >= 0 && st.received != st.contentLength {
			return errStream(id, http2.ErrCodeProtocol)
		}
		c.remoteEnded(st) // before the handler can see io.EOF
		st.deliver(nil, true, cloneFields(hb.fields))
		return nil
	}
	st := &Stream{c: c, id: id, contentLength: -1, opened: time.Now()}
	if hb.tooBig {
		if c.srv.HeaderListTooLarge == nil {
			c.answer431(st, hb.endStream)
			return nil
		}
		st.tooLarge = true
		st.pseudo(hb.fields)
		st.header = cloneFields(hb.fields)
		c.register(st, hb.endStream)
		c.openStream(st)
		return nil
	}
	if !st.parseRequest(hb.fields) {
		return errStream(id, http2.ErrCodeProtocol)
	}
	if hb.endStream && st.contentLength > 0 {
		return errStream(id, http2.ErrCodeProtocol)
	}
	st.header = cloneFields(hb.fields)
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

func cloneFields(f []hpack.HeaderField) []hpack.HeaderField {
	out := make([]hpack.HeaderField, len(f))
	copy(out, f)
	return out
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

// validField checks a regular field: a lowercase token name, a value
// without CR, LF or NUL, and none of HTTP/1's connection-specific fields.
func validField(f hpack.HeaderField) bool {
	if !httpguts.ValidHeaderFieldName(f.Name) || !httpguts.ValidHeaderFieldValue(f.Value) {
		return false
	}
	for i := 0; i < len(f.Name); i++ {
		if c := f.Name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		return false
	case "te":
		return f.Value == "trailers"
	}
	return true
}
