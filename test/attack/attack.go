// Package attack holds the raw clients of edgegate's attack suite: HTTP/2
// connections driven frame by frame (golang.org/x/net/http2's Framer and
// hpack), and raw HTTP/1.1 requests, so that a test can send what no
// well-behaved client sends (floods, resets, oversized or endless header
// blocks, slow bodies) and read exactly what the gateway answers. Every
// client works on loopback only and is bounded by the deadline it is
// given.
package attack

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2 is a raw HTTP/2 client connection.
type H2 struct {
	Conn net.Conn
	Fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// Next is the next client stream id.
	Next uint32
}

// Loopback fails unless addr is a loopback address: the suite attacks
// nothing else.
func Loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("attack: %s is not a loopback address", addr)
	}
	return nil
}

// Dial opens a TCP connection to addr (TLS with ALPN h2 when tc is set)
// and writes the client preface; settings are sent when non-nil (an
// empty slice sends an empty SETTINGS frame).
func Dial(addr string, tc *tls.Config, settings []http2.Setting) (*H2, error) {
	if err := Loopback(addr); err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		tc = tc.Clone()
		tc.NextProtos = []string{"h2"}
		tlc := tls.Client(c, tc)
		if err := tlc.Handshake(); err != nil {
			_ = c.Close()
			return nil, err
		}
		c = tlc
	}
	h := &H2{Conn: c, Next: 1}
	h.Fr = http2.NewFramer(c, c)
	h.Fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.Fr.MaxHeaderListSize = 1 << 20
	h.enc = hpack.NewEncoder(&h.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		_ = c.Close()
		return nil, err
	}
	if settings != nil {
		if err := h.Fr.WriteSettings(settings...); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return h, nil
}

// Close closes the connection.
func (h *H2) Close() error { return h.Conn.Close() }

// Block encodes a header list with the connection's HPACK encoder.
func (h *H2) Block(fields ...hpack.HeaderField) []byte {
	h.hbuf.Reset()
	for _, f := range fields {
		_ = h.enc.WriteField(f)
	}
	return bytes.Clone(h.hbuf.Bytes())
}

// Request is the header list of a request: the pseudo-headers, then
// extra "name", "value" pairs.
func Request(method, authority, path, contentType string, extra ...string) []hpack.HeaderField {
	f := []hpack.HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: path},
	}
	if contentType != "" {
		f = append(f, hpack.HeaderField{Name: "content-type", Value: contentType})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f = append(f, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return f
}

// GRPC is the header list of a native gRPC call of method
// ("/pkg.Service/Method").
func GRPC(authority, method string, extra ...string) []hpack.HeaderField {
	return Request("POST", authority, method, "application/grpc", append([]string{"te", "trailers"}, extra...)...)
}

// Open sends a HEADERS frame opening a new stream with fields, and
// returns its id.
func (h *H2) Open(fields []hpack.HeaderField, endStream bool) (uint32, error) {
	id := h.Next
	h.Next += 2
	return id, h.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.Block(fields...), EndStream: endStream, EndHeaders: true})
}

// Message is one gRPC message frame's bytes (uncompressed).
func Message(b []byte) []byte {
	out := make([]byte, 5+len(b))
	out[1], out[2], out[3], out[4] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
	copy(out[5:], b)
	return out
}

// Frames reads frames until stop returns true for one (it is returned),
// the connection ends (io.EOF or another read error), or d passes.
func (h *H2) Frames(d time.Duration, stop func(http2.Frame) bool) (http2.Frame, error) {
	_ = h.Conn.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = h.Conn.SetReadDeadline(time.Time{}) }()
	for {
		f, err := h.Fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if stop(f) {
			return f, nil
		}
	}
}

// GoAway waits up to d for a GOAWAY frame and returns it; an error when
// the connection ended without one or d passed.
func (h *H2) GoAway(d time.Duration) (*http2.GoAwayFrame, error) {
	f, err := h.Frames(d, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if err != nil {
		return nil, err
	}
	return f.(*http2.GoAwayFrame), nil
}

// Closed reports whether the peer closed the connection within d (EOF or
// a reset), reading and dropping what it sends meanwhile.
func Closed(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// Raw opens a plain TCP connection to addr (loopback only) and writes
// head, the start of an HTTP/1.1 request.
func Raw(addr, head string) (net.Conn, error) {
	if err := Loopback(addr); err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, head); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// RSSKiB is the resident set size of process pid, in KiB (from /proc).
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("attack: no VmRSS")
}
