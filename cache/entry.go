package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Entry is one stored answer. It is immutable once stored: readers share
// it, and its slices and maps must not be changed.
type Entry struct {
	// Header and Trailer are the answer's response metadata.
	Header  map[string][]string
	Trailer map[string][]string
	// Body is the response message (nil for a stored error).
	Body []byte
	// Status is the marshalled google.rpc.Status of a stored error; nil
	// for an answer that is OK.
	Status []byte
	// ETag is the strong validator of Body.
	ETag string
	// Stored is when the answer was received; Fresh is until when it is
	// fresh; Expires is until when it is kept (the end of its stale
	// windows, at least Fresh).
	Stored  time.Time
	Fresh   time.Time
	Expires time.Time
}

// Size is the entry's weight in a memory budget: its bytes, with an
// estimate of what its maps and strings hold.
func (e *Entry) Size() int {
	n := 96 + len(e.Body) + len(e.Status) + len(e.ETag)
	for _, md := range [2]map[string][]string{e.Header, e.Trailer} {
		for k, vs := range md {
			n += 16 + len(k)
			for _, v := range vs {
				n += 16 + len(v)
			}
		}
	}
	return n
}

const entryVersion = 1

// MarshalBinary encodes the entry for the Redis tier.
func (e *Entry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, e.Size()+32)
	b = append(b, entryVersion)
	for _, t := range [3]time.Time{e.Stored, e.Fresh, e.Expires} {
		b = binary.AppendVarint(b, t.UnixNano())
	}
	b = appendBytes(b, []byte(e.ETag))
	b = appendBytes(b, e.Body)
	b = appendBytes(b, e.Status)
	b = appendMD(b, e.Header)
	b = appendMD(b, e.Trailer)
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendMD(b []byte, md map[string][]string) []byte {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, []byte(k))
		b = binary.AppendUvarint(b, uint64(len(md[k])))
		for _, v := range md[k] {
			b = appendBytes(b, []byte(v))
		}
	}
	return b
}

// errCorrupt is the error of an encoding that is not an entry's.
var errCorrupt = errors.New("cache: corrupt entry")

// UnmarshalBinary decodes an entry MarshalBinary encoded; anything else
// is an error, never a panic.
func (e *Entry) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); v != entryVersion {
		return fmt.Errorf("cache: entry version %d: %w", v, errCorrupt)
	}
	var ts [3]time.Time
	for i := range ts {
		ts[i] = time.Unix(0, d.varint())
	}
	*e = Entry{Stored: ts[0], Fresh: ts[1], Expires: ts[2]}
	e.ETag = string(d.bytes())
	e.Body = d.bytes()
	e.Status = d.bytes()
	e.Header = d.md()
	e.Trailer = d.md()
	if d.err != nil || len(d.b) != 0 {
		return errCorrupt
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) md() map[string][]string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	if n == 0 {
		return nil
	}
	md := make(map[string][]string, n)
	for range n {
		k := string(d.bytes())
		m := d.uvarint()
		if d.err != nil || m > uint64(len(d.b)) {
			d.err = errCorrupt
			return nil
		}
		vs := make([]string, 0, m)
		for range m {
			vs = append(vs, string(d.bytes()))
		}
		md[k] = vs
	}
	return md
}
