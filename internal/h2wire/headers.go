package h2wire

import (
	"errors"
	"fmt"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// HeaderLimits bound the header blocks a HeaderDecoder decodes.
type HeaderLimits struct {
	// MaxList bounds a block's decoded size (RFC 9113 §6.5.2: name, value
	// and 32 bytes a field): past it the block is decoded to its end, to
	// keep the connection's HPACK state, but its fields are no longer
	// kept (TooBig).
	MaxList uint32
	// MaxBlock bounds a block's size on the wire, frame headers included
	// (HEADERS and its CONTINUATIONs): past it Fragment fails with
	// ErrBlockTooLarge (a CONTINUATION flood).
	MaxBlock int
	// MaxString bounds one decoded string; a longer one is a decoding
	// error.
	MaxString int
}

// ErrBlockTooLarge is Fragment's error for a header block over MaxBlock
// bytes on the wire.
var ErrBlockTooLarge = errors.New("h2wire: header block too large")

// HeaderDecoder decodes the header blocks of one connection as their
// frames arrive, with the connection's one HPACK decoder, into a scratch
// list it reuses: decoding a block allocates only the strings HPACK
// must make, and Fields' copy. It belongs to the connection's reading
// goroutine.
type HeaderDecoder struct {
	dec    *hpack.Decoder
	lim    HeaderLimits
	wire   int
	size   uint32
	tooBig bool
	fields []hpack.HeaderField
}

// keptFields bounds the scratch list kept between blocks.
const keptFields = 256

// NewHeaderDecoder returns a decoder with the protocol's initial dynamic
// table size (4096).
func NewHeaderDecoder(lim HeaderLimits) *HeaderDecoder {
	d := &HeaderDecoder{lim: lim}
	d.dec = hpack.NewDecoder(4096, d.emit)
	d.dec.SetMaxStringLength(lim.MaxString)
	return d
}

func (d *HeaderDecoder) emit(f hpack.HeaderField) {
	d.size += f.Size()
	if d.size > d.lim.MaxList {
		d.tooBig = true // the fields so far are kept (a 431 answer may look at them)
		d.dec.SetEmitEnabled(false)
		return
	}
	d.fields = append(d.fields, f)
}

// Start begins a block (a HEADERS frame).
func (d *HeaderDecoder) Start() {
	if cap(d.fields) > keptFields {
		d.fields = nil
	}
	d.fields = d.fields[:0]
	d.wire, d.size, d.tooBig = 0, 0, false
	d.dec.SetEmitEnabled(true)
}

// Fragment decodes the block's fragment of one frame; end is its
// END_HEADERS. An error (ErrBlockTooLarge, or the block's HPACK is
// malformed) is the connection's: its HPACK state is lost.
func (d *HeaderDecoder) Fragment(frag []byte, end bool) error {
	d.wire += FrameHeaderLen + len(frag) // a frame header per fragment
	if d.wire > d.lim.MaxBlock {
		return fmt.Errorf("%w: over %d bytes", ErrBlockTooLarge, d.lim.MaxBlock)
	}
	if _, err := d.dec.Write(frag); err != nil {
		return fmt.Errorf("header block: %w", err)
	}
	if end {
		if err := d.dec.Close(); err != nil {
			return fmt.Errorf("header block: %w", err)
		}
	}
	return nil
}

// TooBig reports that the block was over MaxList: Scratch holds its
// first fields only.
func (d *HeaderDecoder) TooBig() bool { return d.tooBig }

// Scratch is the block's fields as decoded, valid until the next Start.
func (d *HeaderDecoder) Scratch() []hpack.HeaderField { return d.fields }

// Fields is a copy of the block's fields, of their exact size, the
// caller's to keep.
func (d *HeaderDecoder) Fields() []hpack.HeaderField { return d.FieldsIn(nil) }

// FieldsIn is Fields copied into buf when they fit (a stream's room for
// its header fields, so that a stream and its headers are one
// allocation), else into an allocation of their exact size. The result's
// capacity is its length: appending to it never writes into the rest of
// buf.
func (d *HeaderDecoder) FieldsIn(buf []hpack.HeaderField) []hpack.HeaderField {
	n := len(d.fields)
	if n > len(buf) {
		buf = make([]hpack.HeaderField, n)
	}
	copy(buf, d.fields)
	return buf[:n:n]
}

// ValidField checks a regular field as RFC 9113 §8.2.1 does: a name of
// lowercase token characters, a value without CR, LF or NUL.
func ValidField(f hpack.HeaderField) bool {
	if !httpguts.ValidHeaderFieldName(f.Name) || !httpguts.ValidHeaderFieldValue(f.Value) {
		return false
	}
	for i := 0; i < len(f.Name); i++ {
		if c := f.Name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}
