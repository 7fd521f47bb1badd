package h2wire

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Per-call values and credentials never enter the HPACK table; the rest
// do, and repeat as one-byte indexed fields.
func TestHeaderBlockIndexing(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 4096, nil)
	for _, tc := range []struct {
		f       hpack.HeaderField
		indexed bool
	}{
		{hpack.HeaderField{Name: "x-request-id", Value: "abc"}, false},
		{hpack.HeaderField{Name: "authorization", Value: "Bearer t"}, false},
		{hpack.HeaderField{Name: "grpc-timeout", Value: "99m"}, false},
		{hpack.HeaderField{Name: "x-tenant", Value: "blue"}, true},
	} {
		out.Reset()
		w.Lock()
		w.HeaderBlock(1, []hpack.HeaderField{tc.f}, false)
		w.HeaderBlock(3, []hpack.HeaderField{tc.f}, false)
		w.FlushLocked()
		w.Unlock()
		fr := http2.NewFramer(nil, bytes.NewReader(out.Bytes()))
		var sizes []int
		for range 2 {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(f.(*http2.HeadersFrame).HeaderBlockFragment()))
		}
		if indexed := sizes[1] == 1; indexed != tc.indexed {
			t.Errorf("%s: the second block is %d bytes (first %d); indexed %v, want %v", tc.f.Name, sizes[1], sizes[0], indexed, tc.indexed)
		}
	}
}
