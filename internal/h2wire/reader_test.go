package h2wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func rawFrame(t http2.FrameType, flags http2.Flags, id uint32, payload ...byte) []byte {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), byte(t), byte(flags), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	return append(b, payload...)
}

func newTestReader(wire []byte) *Reader {
	r := bytes.NewReader(wire)
	fr := http2.NewFramer(nil, r)
	fr.SetReuseFrames()
	return NewReader(fr, r)
}

// The frames the Reader parses itself come out as x/net's would, padding
// and priority taken off a HEADERS frame's fragment; the others are the
// Framer's.
func TestReaderParses(t *testing.T) {
	var wire []byte
	wire = append(wire, rawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersPriority|http2.FlagHeadersEndStream, 3,
		2, 0x80, 0, 0, 1, 15, 'a', 'b', 'c', 0, 0)...)
	wire = append(wire, rawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 3, 'd')...)
	wire = append(wire, rawFrame(http2.FramePing, http2.FlagPingAck, 0, 1, 2, 3, 4, 5, 6, 7, 8)...)
	wire = append(wire, rawFrame(http2.FrameWindowUpdate, 0, 5, 0x80, 0, 1, 0)...)
	wire = append(wire, rawFrame(http2.FrameRSTStream, 0, 7, 0, 0, 0, 8)...)
	wire = append(wire, rawFrame(http2.FrameData, http2.FlagDataEndStream, 3, 'x')...)
	r := newTestReader(wire)

	f, err := r.ReadFrame()
	h, ok := f.(*HeadersFrame)
	if err != nil || !ok {
		t.Fatalf("HEADERS: %T %v", f, err)
	}
	if string(h.Fragment) != "abc" || !h.StreamEnded() || h.HeadersEnded() || !h.HasPriority() ||
		h.Priority != (http2.PriorityParam{StreamDep: 1, Exclusive: true, Weight: 15}) || h.StreamID != 3 {
		t.Fatalf("HEADERS parsed as %+v", h)
	}
	f, err = r.ReadFrame()
	if c, ok := f.(*ContinuationFrame); err != nil || !ok || string(c.Fragment) != "d" || !c.HeadersEnded() {
		t.Fatalf("CONTINUATION: %#v %v", f, err)
	}
	f, err = r.ReadFrame()
	if p, ok := f.(*http2.PingFrame); err != nil || !ok || !p.IsAck() || p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Fatalf("PING: %#v %v", f, err)
	}
	f, err = r.ReadFrame()
	if w, ok := f.(*http2.WindowUpdateFrame); err != nil || !ok || w.StreamID != 5 || w.Increment != 256 {
		t.Fatalf("WINDOW_UPDATE: %#v %v", f, err)
	}
	f, err = r.ReadFrame()
	if rs, ok := f.(*http2.RSTStreamFrame); err != nil || !ok || rs.StreamID != 7 || rs.ErrCode != http2.ErrCodeCancel {
		t.Fatalf("RST_STREAM: %#v %v", f, err)
	}
	f, err = r.ReadFrame()
	if d, ok := f.(*http2.DataFrame); err != nil || !ok || string(d.Data()) != "x" {
		t.Fatalf("DATA: %#v %v", f, err)
	}
}

// Malformed frames are the errors RFC 9113 names; the Framer's order
// check still holds (a PING inside a header block).
func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		code http2.ErrCode
		conn bool
	}{
		{"PING of 7 bytes", rawFrame(http2.FramePing, 0, 0, 1, 2, 3, 4, 5, 6, 7), http2.ErrCodeFrameSize, true},
		{"PING on a stream", rawFrame(http2.FramePing, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8), http2.ErrCodeProtocol, true},
		{"WINDOW_UPDATE of 5 bytes", rawFrame(http2.FrameWindowUpdate, 0, 1, 0, 0, 0, 1, 0), http2.ErrCodeFrameSize, true},
		{"WINDOW_UPDATE of 0 on a stream", rawFrame(http2.FrameWindowUpdate, 0, 1, 0, 0, 0, 0), http2.ErrCodeProtocol, false},
		{"WINDOW_UPDATE of 0 on the connection", rawFrame(http2.FrameWindowUpdate, 0, 0, 0, 0, 0, 0), http2.ErrCodeProtocol, true},
		{"RST_STREAM on stream 0", rawFrame(http2.FrameRSTStream, 0, 0, 0, 0, 0, 8), http2.ErrCodeProtocol, true},
		{"RST_STREAM of 3 bytes", rawFrame(http2.FrameRSTStream, 0, 1, 0, 0, 8), http2.ErrCodeFrameSize, true},
		{"HEADERS on stream 0", rawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 0, 0x88), http2.ErrCodeProtocol, true},
		{"HEADERS padded, empty", rawFrame(http2.FrameHeaders, http2.FlagHeadersPadded, 1), http2.ErrCodeFrameSize, true},
		{"HEADERS padding too long", rawFrame(http2.FrameHeaders, http2.FlagHeadersPadded, 1, 3, 0x88, 0), http2.ErrCodeProtocol, true},
		{"HEADERS priority short", rawFrame(http2.FrameHeaders, http2.FlagHeadersPriority, 1, 0, 0, 0), http2.ErrCodeFrameSize, true},
		{"CONTINUATION on stream 0", append(rawFrame(http2.FrameHeaders, 0, 1, 0x88), rawFrame(http2.FrameContinuation, 0, 0)...), http2.ErrCodeProtocol, true},
		{"PING inside a header block", append(rawFrame(http2.FrameHeaders, 0, 1, 0x88), rawFrame(http2.FramePing, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)...), http2.ErrCodeProtocol, true},
		{"CONTINUATION alone", rawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, 0x88), http2.ErrCodeProtocol, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestReader(tc.wire)
			var err error
			for err == nil {
				_, err = r.ReadFrame()
			}
			var ce http2.ConnectionError
			var se http2.StreamError
			switch {
			case tc.conn && errors.As(err, &ce):
				if http2.ErrCode(ce) != tc.code || r.ErrorDetail() == nil {
					t.Fatalf("connection error %v (%v), want %v", http2.ErrCode(ce), r.ErrorDetail(), tc.code)
				}
			case !tc.conn && errors.As(err, &se):
				if se.Code != tc.code {
					t.Fatalf("stream error %v, want %v", se.Code, tc.code)
				}
			default:
				t.Fatalf("error %v, want a %v error (connection: %v)", err, tc.code, tc.conn)
			}
		})
	}
}

// Reading a call's frames allocates nothing, a header block's decoding
// only its copy.
func TestReaderAllocations(t *testing.T) {
	// Fields of HPACK's static table: decoding them makes no string.
	block := encodeBlock(hpack.HeaderField{Name: ":status", Value: "200"}, hpack.HeaderField{Name: "accept-encoding", Value: "gzip, deflate"})
	var one []byte
	one = append(one, rawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, block...)...)
	one = append(one, rawFrame(http2.FramePing, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)...)
	one = append(one, rawFrame(http2.FrameWindowUpdate, 0, 0, 0, 0, 1, 0)...)
	one = append(one, rawFrame(http2.FrameRSTStream, 0, 1, 0, 0, 0, 8)...)
	one = append(one, rawFrame(http2.FrameData, 0, 1, 'x')...)
	const rounds = 100
	wire := bytes.Repeat(one, rounds+1)
	r := newTestReader(wire)
	d := NewHeaderDecoder(HeaderLimits{MaxList: 1 << 10, MaxBlock: 1 << 10, MaxString: 1 << 10})
	var kept []hpack.HeaderField
	allocs := testing.AllocsPerRun(rounds, func() {
		for range 5 {
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if h, ok := f.(*HeadersFrame); ok {
				d.Start()
				if err := d.Fragment(h.Fragment, h.HeadersEnded()); err != nil {
					t.Fatal(err)
				}
				kept = d.Fields()
			}
		}
	})
	if allocs != 1 {
		t.Fatalf("%v allocations per round of 5 frames, want 1 (the fields' copy)", allocs)
	}
	if len(kept) != 2 || kept[1].Value != "gzip, deflate" {
		t.Fatalf("fields %v", kept)
	}
}

func encodeBlock(fields ...hpack.HeaderField) []byte {
	var b headerBuf
	enc := hpack.NewEncoder(&b)
	for _, f := range fields {
		_ = enc.WriteField(f)
	}
	return b
}

// A list over MaxList keeps its first fields and decodes to the end (the
// next block still decodes against the same table); a block over
// MaxBlock on the wire, however fragmented, fails; Fields is the caller's
// copy, unchanged by the next block.
func TestHeaderDecoderLimits(t *testing.T) {
	d := NewHeaderDecoder(HeaderLimits{MaxList: 100, MaxBlock: 200, MaxString: 300})
	big := hpack.HeaderField{Name: "x-big", Value: strings.Repeat("v", 80)}
	d.Start()
	if err := d.Fragment(encodeBlock(hpack.HeaderField{Name: "a", Value: "1"}, big), true); err != nil {
		t.Fatal(err)
	}
	if !d.TooBig() || len(d.Scratch()) != 1 || d.Scratch()[0].Name != "a" {
		t.Fatalf("too big %v, fields %v", d.TooBig(), d.Scratch())
	}

	d.Start()
	if err := d.Fragment(encodeBlock(hpack.HeaderField{Name: "b", Value: "2"}), true); err != nil {
		t.Fatal(err)
	}
	first := d.Fields()
	if d.TooBig() || len(first) != 1 || first[0].Name != "b" {
		t.Fatalf("too big %v, fields %v", d.TooBig(), first)
	}
	d.Start()
	if err := d.Fragment(encodeBlock(hpack.HeaderField{Name: "c", Value: "3"}), true); err != nil {
		t.Fatal(err)
	}
	if first[0].Name != "b" {
		t.Fatalf("a block's copy changed with the next block: %v", first)
	}

	d.Start()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = d.Fragment(nil, false) // empty CONTINUATIONs
	}
	if !errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("a flood of empty fragments: %v", err)
	}

	d = NewHeaderDecoder(HeaderLimits{MaxList: 1000, MaxBlock: 1000, MaxString: 10})
	d.Start()
	if err := d.Fragment(encodeBlock(hpack.HeaderField{Name: "x-long", Value: strings.Repeat("v", 11)}), true); err == nil || errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("a string over MaxString: %v", err)
	}
}
