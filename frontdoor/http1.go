package frontdoor

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
)

// An HTTP/1.1 request with both Content-Length and Transfer-Encoding is
// the classic request smuggling vector (RFC 9112 §6.1, §11.2): a proxy in
// front that frames it by Content-Length and the gateway, which frames it
// by the chunked coding, see different requests on one connection.
// net/http accepts it, reads the chunked body, deletes both headers and
// keeps the connection alive, so a handler cannot tell it from a plain
// chunked request. The front door therefore follows the framing of every
// HTTP/1 connection in the bytes net/http reads (h1Framing), and the HTTP
// handler refuses such a request with 400 before anything is forwarded,
// and closes the connection, as RFC 9112 asks of a server that rejects
// it.

// connContext is the http.Server ConnContext of the front door: the
// connection's TLS state (ConnContext) and, for an HTTP/1 connection,
// the h1Framing of its requests.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = ConnContext(ctx, c)
	// An HTTP/1 connection reaches net/http as the sniffer's replayConn
	// (HTTP/2 ones behind a guardConn). net/http has not read from it yet:
	// its bytes are the sniffed ones (what the sniffer's reader holds),
	// then the connection's.
	rc, ok := c.(*replayConn)
	if !ok {
		return ctx
	}
	f := &h1Framing{}
	f.feed(rc.pending)
	if rc.br != nil {
		held, _ := rc.br.Peek(rc.br.Buffered())
		f.feed(held)
	}
	rc.Conn = &h1Conn{Conn: rc.Conn, f: f}
	return context.WithValue(ctx, h1FramingKey{}, f)
}

type h1FramingKey struct{}

// h1Conn passes what net/http reads through its h1Framing.
type h1Conn struct {
	net.Conn
	f *h1Framing
}

func (c *h1Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.f.feed(p[:n])
	return n, err
}

// framingRefusal returns why r must be refused for its framing ("" when
// it need not): the request has both Content-Length and
// Transfer-Encoding, or the connection's framing could not be followed
// (which net/http, stricter, refuses first in every case the tests know).
func framingRefusal(r *http.Request) string {
	f, ok := r.Context().Value(h1FramingKey{}).(*h1Framing)
	if !ok {
		return ""
	}
	switch f.claim(r) {
	case headOK:
		return ""
	case headSmuggling:
		return "edgegate: a request with both Content-Length and Transfer-Encoding is refused (RFC 9112 section 6.1)"
	default:
		return "edgegate: the HTTP/1.1 framing of the connection could not be followed"
	}
}

// h1Framing follows the request framing of an HTTP/1 connection in the
// bytes net/http reads, as net/http frames them (net/http/transfer.go):
// request heads (lines ending in LF or CRLF), bodies by Content-Length or
// by the chunked coding (which wins over Content-Length on HTTP/1.1; on
// HTTP/1.0 Transfer-Encoding is ignored), chunk lines ending in CRLF,
// trailers. It records each head for the handler, which claims them in
// order. Anything it cannot follow makes it lost: every later request is
// refused. Its methods are safe for concurrent use (net/http reads on
// another goroutine while a handler runs).
type h1Framing struct {
	mu    sync.Mutex
	heads []h1Head // seen, not yet claimed
	lost  bool

	state h1State
	line  []byte // the line being read, as much of it as is kept (lineLimit)
	long  bool   // there was more of it than white space
	size  int    // its length
	n     uint64 // body or chunk bytes still to pass
	head  h1Head
	http1 bool     // the head is HTTP/1.0 (which has no Transfer-Encoding)
	cl    []string // its Content-Length values
	te    []string // its Transfer-Encoding values
	last  string   // the name of its last header line
}

// h1Head is what the handler needs of a request head: how to know it, and
// whether it had both Content-Length and Transfer-Encoding.
type h1Head struct {
	method, target string
	both           bool
}

type h1State int

const (
	stateRequestLine h1State = iota
	stateHeader
	stateBody
	stateChunkLine
	stateChunkData
	stateChunkEnd // the CRLF after a chunk's data
	stateTrailer
)

// The part of a line kept: of a header or chunk line, enough for any
// Content-Length, Transfer-Encoding or chunk size a client sends; of a
// request line, more than net/http reads of a whole head (MaxHeaderBytes
// and 4 KiB), so that the target is known exactly.
const (
	maxH1Line      = 8 << 10
	maxRequestLine = 1<<20 + 8<<10
)

type headClaim int

const (
	headOK headClaim = iota
	headSmuggling
	headLost
)

// claim takes the head of r: the first recorded one with its method and
// target, the ones before it dropped (net/http answered them without the
// handler: OPTIONS *).
func (f *h1Framing) claim(r *http.Request) headClaim {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.heads) > 0 {
		h := f.heads[0]
		f.heads = f.heads[1:]
		if h.method == r.Method && h.target == r.RequestURI {
			if h.both {
				return headSmuggling
			}
			return headOK
		}
	}
	return headLost
}

func (f *h1Framing) feed(p []byte) {
	if len(p) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 && !f.lost {
		switch f.state {
		case stateBody, stateChunkData:
			k := min(uint64(len(p)), f.n)
			p, f.n = p[k:], f.n-k
			if f.n == 0 {
				if f.state == stateBody {
					f.state = stateRequestLine
				} else {
					f.state = stateChunkEnd
				}
			}
		case stateChunkEnd:
			// CR, then LF: two bytes, maybe in two reads.
			want := byte('\r')
			if f.size == 1 {
				want = '\n'
			}
			if p[0] != want {
				f.lost = true
				return
			}
			p = p[1:]
			if f.size++; f.size == 2 {
				f.size = 0
				f.state = stateChunkLine
			}
		default:
			i := bytes.IndexByte(p, '\n')
			part := p
			if i >= 0 {
				part = p[:i+1]
			}
			p = p[len(part):]
			f.addToLine(part)
			if i >= 0 {
				f.endLine()
			}
		}
	}
}

// addToLine adds part of a line, keeping what lineLimit says.
func (f *h1Framing) addToLine(part []byte) {
	f.size += len(part)
	limit := maxH1Line
	if f.state == stateRequestLine {
		limit = maxRequestLine
	}
	keep := min(len(part), max(limit-len(f.line), 0))
	f.line = append(f.line, part[:keep]...)
	if rest := part[keep:]; len(bytes.Trim(rest, " \t\r\n")) > 0 {
		f.long = true
	}
}

// endLine acts on the line read, which ends in LF.
func (f *h1Framing) endLine() {
	line, long, cut := f.line, f.long, f.size > len(f.line)
	f.line, f.long, f.size = f.line[:0], false, 0
	if cap(line) > maxH1Line {
		f.line = nil // a long request line's buffer is not kept
	}
	switch f.state {
	case stateChunkLine:
		f.chunkLine(line, cut)
		return
	case stateRequestLine:
		if cut {
			f.lost = true // net/http answers 431 and closes
			return
		}
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	switch f.state {
	case stateRequestLine:
		f.requestLine(string(line))
	case stateHeader:
		if len(line) == 0 {
			f.endHead()
			return
		}
		f.headerLine(string(line), long)
	case stateTrailer:
		if len(line) == 0 {
			f.state = stateRequestLine
		}
	}
}

func (f *h1Framing) requestLine(line string) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	// HTTP/1.x, as net/http's ParseHTTPVersion takes it.
	if !ok1 || !ok2 || len(proto) != len("HTTP/1.1") || !strings.HasPrefix(proto, "HTTP/1.") || proto[7] < '0' || proto[7] > '9' {
		f.lost = true // net/http answers 400 (or 505) and closes
		return
	}
	f.head = h1Head{method: method, target: target}
	f.http1 = proto == "HTTP/1.0"
	f.cl, f.te, f.last = f.cl[:0], f.te[:0], ""
	f.state = stateHeader
}

func (f *h1Framing) headerLine(line string, long bool) {
	if line[0] == ' ' || line[0] == '\t' {
		// A continuation (obs-fold) of the last header: one of the framing
		// headers folded is not a value net/http takes.
		if f.last == "" || f.last == "content-length" || f.last == "transfer-encoding" {
			f.lost = true
		}
		return
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok || name == "" || strings.ContainsRune(name, '\t') {
		f.lost = true // net/http refuses a malformed header line
		return
	}
	// A name with a space (net/http takes "Content-Length :" as is, not as
	// Content-Length) is no framing header.
	f.last = strings.ToLower(name)
	switch f.last {
	case "content-length":
		f.cl = append(f.cl, strings.Trim(value, " \t"))
	case "transfer-encoding":
		f.te = append(f.te, strings.Trim(value, " \t"))
	default:
		return
	}
	if long {
		f.lost = true
	}
}

// endHead finds how the head's body is framed, and records the head.
func (f *h1Framing) endHead() {
	f.head.both = len(f.cl) > 0 && len(f.te) > 0
	switch {
	case len(f.te) > 0 && !f.http1:
		if len(f.te) != 1 || !strings.EqualFold(f.te[0], "chunked") {
			f.lost = true // net/http answers 501 and closes
			return
		}
		f.state = stateChunkLine
	case len(f.cl) > 0:
		n, ok := parseLength(f.cl[0])
		for _, v := range f.cl[1:] {
			ok = ok && v == f.cl[0]
		}
		if !ok {
			f.lost = true // net/http answers 400 and closes
			return
		}
		f.n, f.state = n, stateBody
		if n == 0 {
			f.state = stateRequestLine
		}
	default:
		f.state = stateRequestLine
	}
	f.heads = append(f.heads, f.head)
}

// chunkLine reads a chunk's size line (CRLF, no other CR; an extension
// after ";"; trailing white space).
func (f *h1Framing) chunkLine(line []byte, cut bool) {
	if cut || !bytes.HasSuffix(line, []byte("\r\n")) || bytes.IndexByte(line, '\r') != len(line)-2 {
		f.lost = true
		return
	}
	hex, _, _ := bytes.Cut(bytes.TrimRight(line[:len(line)-2], " \t"), []byte(";"))
	n, ok := parseHex(hex)
	switch {
	case !ok:
		f.lost = true
	case n == 0:
		f.state = stateTrailer
	default:
		f.n, f.state = n, stateChunkData
	}
}

// parseLength parses a Content-Length value as net/http does: decimal
// digits only.
func parseLength(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size: 1 to 16 hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}
