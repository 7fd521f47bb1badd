package frontdoor

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// guardConn is an HTTP/2 connection after its first request, between the
// client and the server that serves it (grpc.Server's transport or
// net/http). It reads frame headers as they pass, both ways, without
// copying or holding them, and ends the connection with GOAWAY
// ENHANCE_YOUR_CALM when the client
//
//   - sends a header block (HEADERS and its CONTINUATIONs) of more than
//     maxBlock bytes: HPACK decoders do not count dynamic table size
//     updates, so a CONTINUATION flood would never end otherwise;
//   - resets, within premature of opening them and before the server
//     ended them, more than maxResets streams, when those are more than
//     half of the streams it opened (HTTP/2 Rapid Reset, CVE-2023-44487,
//     in the way of Envoy's premature reset counting).
//
// It also removes the frames the sniffer answered itself: the client's
// first SETTINGS ACK when it had not come before the first request (the
// acknowledgement of the sniffer's SETTINGS, which the server did not
// send), and the server's first acked SETTINGS ACKs (the client's SETTINGS
// were acknowledged already). The GOAWAY is written between the server's
// frames.
type guardConn struct {
	*replayConn          // reads (the sniffed bytes replayed first)
	raw         net.Conn // writes

	maxBlock  int
	maxResets int // 0: no limit

	// Read side: owned by the server's reading goroutine.
	rd      frameScan
	block   int    // bytes of the header block being read; -1: none
	dropAck bool   // remove the client's next SETTINGS ACK
	rhold   []byte // an incomplete frame header, held while dropAck
	out     []byte // bytes for the server not yet read
	rerr    error
	dead    bool

	mu        sync.Mutex // the stream states, shared by both sides
	streams   map[uint32]time.Time
	lastID    uint32 // the highest stream the client opened
	opened    int
	premature int

	wmu      sync.Mutex // the write side
	wr       frameScan
	wdrop    int    // server SETTINGS ACKs still to remove
	whold    []byte // an incomplete frame header held while wdrop > 0
	killCode http2.ErrCode
	killWhy  string
	kill     bool // GOAWAY at the next frame boundary, then close
	closed   bool
}

// premature is how young a stream must be when the client resets it to
// count as reset prematurely.
const premature = time.Second

func newGuardConn(rc *replayConn, raw net.Conn, sn *sniffer, maxResets int) *guardConn {
	g := &guardConn{replayConn: rc, raw: raw, maxBlock: sn.maxBlock, maxResets: maxResets, block: -1, wdrop: sn.acked, streams: map[uint32]time.Time{}}
	g.rd.left = len(http2.ClientPreface) // the replay starts with it: not a frame
	return g
}

// frameScan follows frame boundaries in a byte stream.
type frameScan struct {
	hdr  [9]byte
	nhdr int // header bytes collected
	left int // payload bytes left of the current frame
}

// next consumes p up to the end of the next frame header and reports it:
// the bytes consumed, and whether a whole header was completed (then in
// s.hdr). Payload bytes are consumed without being looked at.
func (s *frameScan) next(p []byte) (n int, header bool) {
	if s.left > 0 {
		n = min(s.left, len(p))
		s.left -= n
		return n, false
	}
	n = copy(s.hdr[s.nhdr:], p)
	s.nhdr += n
	if s.nhdr < 9 {
		return n, false
	}
	s.nhdr = 0
	s.left = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
	return n, true
}

// atBoundary reports whether the stream stands between two frames.
func (s *frameScan) atBoundary() bool { return s.nhdr == 0 && s.left == 0 }

// frameOf is what a frame header says.
func frameOf(h [9]byte) (typ http2.FrameType, flags http2.Flags, id uint32, length int) {
	return http2.FrameType(h[3]), http2.Flags(h[4]), binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1), int(h[0])<<16 | int(h[1])<<8 | int(h[2])
}

// Read reads the client's bytes for the server, watching its frames. Once
// the connection is ended it returns io.EOF.
func (g *guardConn) Read(p []byte) (int, error) {
	for {
		if g.dead {
			return 0, io.EOF
		}
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		if g.rerr != nil {
			return 0, g.rerr
		}
		n, err := g.replayConn.Read(p)
		if !g.dropAck {
			// The common case: pass through, noting the frames.
			for i := 0; i < n && !g.dead; {
				k, header := g.rd.next(p[i:n])
				i += k
				if header && !g.watch(frameOf(g.rd.hdr)) {
					g.end(http2.ErrCodeEnhanceYourCalm, g.killWhy)
				}
			}
			if g.dead {
				return 0, io.EOF
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		// Until the client's first SETTINGS ACK is removed, frame headers
		// are looked at whole before they are passed on.
		q := append(g.rhold, p[:n]...) //nolint:gocritic // q takes over the held bytes; g.rhold is reset next
		g.rhold = nil
		var kept []byte
		for i := 0; i < len(q); {
			if g.rd.left > 0 {
				k := min(g.rd.left, len(q)-i)
				kept = append(kept, q[i:i+k]...)
				g.rd.left -= k
				i += k
				continue
			}
			if len(q)-i < 9 {
				g.rhold = append(g.rhold, q[i:]...)
				break
			}
			copy(g.rd.hdr[:], q[i:i+9])
			typ, flags, id, length := frameOf(g.rd.hdr)
			g.rd.left = length
			if g.dropAck && typ == http2.FrameSettings && flags.Has(http2.FlagSettingsAck) && length == 0 {
				g.dropAck = false
				i += 9
				continue
			}
			kept = append(kept, q[i:i+9]...)
			i += 9
			if !g.watch(typ, flags, id, length) {
				g.end(http2.ErrCodeEnhanceYourCalm, g.killWhy)
				return 0, io.EOF
			}
		}
		if !g.dropAck && len(g.rhold) > 0 {
			kept = append(kept, g.rhold...) // whole headers no longer matter
			for len(g.rhold) > 0 {
				k, header := g.rd.next(g.rhold)
				g.rhold = g.rhold[k:]
				if header && !g.watch(frameOf(g.rd.hdr)) {
					g.end(http2.ErrCodeEnhanceYourCalm, g.killWhy)
					return 0, io.EOF
				}
			}
		}
		g.out, g.rerr = kept, err // the error after what was read
	}
}

// watch records one client frame; false when the client broke a bound
// (g.killWhy says which).
func (g *guardConn) watch(typ http2.FrameType, flags http2.Flags, id uint32, length int) bool {
	switch typ {
	case http2.FrameHeaders:
		g.mu.Lock()
		if id > g.lastID && id%2 == 1 {
			g.lastID = id
			g.opened++
			if len(g.streams) > 10000 {
				g.pruneLocked()
			}
			g.streams[id] = time.Now()
		}
		g.mu.Unlock()
		g.block = -1
		if !flags.Has(http2.FlagHeadersEndHeaders) {
			g.block = length
		}
	case http2.FrameContinuation:
		if g.block >= 0 {
			g.block += length
			if flags.Has(http2.FlagContinuationEndHeaders) {
				g.block = -1
			}
		}
	case http2.FrameRSTStream:
		if g.maxResets > 0 && g.reset(id) {
			g.killWhy = "edgegate: too many streams reset early (rapid reset)"
			return false
		}
	}
	if g.block > g.maxBlock {
		g.killWhy = "edgegate: header block larger than the limit"
		return false
	}
	return true
}

// reset records the client's reset of stream id; true when the
// premature resets are over the bound.
func (g *guardConn) reset(id uint32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	opened, ok := g.streams[id]
	if !ok {
		return false
	}
	delete(g.streams, id)
	if time.Since(opened) >= premature {
		return false
	}
	g.premature++
	return g.premature > g.maxResets && 2*g.premature > g.opened
}

// pruneLocked forgets streams too old to be reset prematurely.
func (g *guardConn) pruneLocked() {
	for id, t := range g.streams {
		if time.Since(t) >= premature {
			delete(g.streams, id)
		}
	}
}

// ended records that the server ended stream id (END_STREAM or
// RST_STREAM): a reset of it by the client is not premature.
func (g *guardConn) ended(id uint32) {
	g.mu.Lock()
	delete(g.streams, id)
	g.mu.Unlock()
}

// end ends the connection: GOAWAY with code at the next boundary of the
// server's frames (at once when the server is between frames; within a
// short while without GOAWAY when it does not get there), then close.
// The server reads io.EOF from now on.
func (g *guardConn) end(code http2.ErrCode, why string) {
	g.dead = true
	_ = g.raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.closed {
		return
	}
	if g.wr.atBoundary() && len(g.whold) == 0 {
		g.goAwayLocked(code, why)
		return
	}
	g.kill, g.killCode, g.killWhy = true, code, why
	time.AfterFunc(100*time.Millisecond, func() {
		g.wmu.Lock()
		defer g.wmu.Unlock()
		if !g.closed {
			g.closed = true
			_ = g.raw.Close()
		}
	})
}

func (g *guardConn) goAwayLocked(code http2.ErrCode, why string) {
	g.mu.Lock()
	last := g.lastID
	g.mu.Unlock()
	_, _ = g.raw.Write(goAwayFrame(last, code, why))
	g.closed = true
	go lingerClose(g.raw) // the server reads io.EOF meanwhile
}

// Write writes the server's bytes to the client, watching its frames.
func (g *guardConn) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.closed {
		return 0, net.ErrClosed
	}
	if g.wdrop == 0 && !g.kill && len(g.whold) == 0 {
		// The common case: pass through, noting where frames end and
		// which streams the server ended.
		for i := 0; i < len(p); {
			n, header := g.wr.next(p[i:])
			i += n
			if header {
				g.noteWrite(g.wr.hdr)
			}
		}
		return g.raw.Write(p)
	}
	return g.writeSlow(p)
}

// noteWrite records a frame header the server wrote.
func (g *guardConn) noteWrite(hdr [9]byte) {
	typ, flags, id, _ := frameOf(hdr)
	switch {
	case typ == http2.FrameRSTStream,
		(typ == http2.FrameHeaders || typ == http2.FrameData) && flags.Has(http2.FlagDataEndStream):
		g.ended(id)
	}
}

// writeSlow writes p while server SETTINGS ACKs are to be removed or a
// GOAWAY waits for a frame boundary: frame headers are looked at whole
// before they are written (an incomplete one is held for the next write).
func (g *guardConn) writeSlow(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+9)
	// A header the fast path began writing is finished as it goes.
	i := 0
	for g.wr.nhdr > 0 && i < len(p) {
		n, header := g.wr.next(p[i:])
		out = append(out, p[i:i+n]...)
		i += n
		if header {
			g.noteWrite(g.wr.hdr)
		}
	}
	q := append(g.whold, p[i:]...) //nolint:gocritic // q takes over the held bytes; g.whold is reset next
	g.whold = nil
	for j := 0; j < len(q); {
		if g.kill && g.wr.atBoundary() {
			if _, err := g.raw.Write(out); err != nil {
				return 0, err
			}
			g.goAwayLocked(g.killCode, g.killWhy)
			return len(p), nil
		}
		if g.wr.left > 0 {
			k := min(g.wr.left, len(q)-j)
			out = append(out, q[j:j+k]...)
			g.wr.left -= k
			j += k
			continue
		}
		if len(q)-j < 9 {
			g.whold = append(g.whold, q[j:]...)
			break
		}
		copy(g.wr.hdr[:], q[j:j+9])
		typ, flags, _, length := frameOf(g.wr.hdr)
		g.wr.left = length
		j += 9
		if g.wdrop > 0 && typ == http2.FrameSettings && flags.Has(http2.FlagSettingsAck) && length == 0 {
			g.wdrop--
			continue
		}
		out = append(out, g.wr.hdr[:]...)
		g.noteWrite(g.wr.hdr)
	}
	if g.kill && g.wr.atBoundary() && len(g.whold) == 0 {
		if _, err := g.raw.Write(out); err != nil {
			return 0, err
		}
		g.goAwayLocked(g.killCode, g.killWhy)
		return len(p), nil
	}
	if _, err := g.raw.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the connection.
func (g *guardConn) Close() error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.closed = true
	return g.raw.Close()
}
