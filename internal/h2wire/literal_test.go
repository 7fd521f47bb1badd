package h2wire

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Blocks mixing the encoder's fields and the never-indexed literals decode
// to the fields written, with the literals marked sensitive, across a
// dynamic table size change and values of every length class.
func TestHeaderBlockRoundTrip(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 4096, nil)
	dec := hpack.NewDecoder(4096, nil)
	long := strings.Repeat("v", 300)
	blocks := [][]hpack.HeaderField{
		{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}, {Name: "x-request-id", Value: "0b5e"}},
		{{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: long}, {Name: "date", Value: "Tue, 01 Dec 2026 21:00:00 GMT"}},
		{{Name: "x-request-id", Value: "first"}, {Name: "authorization", Value: "Bearer " + long}, {Name: "x-tenant", Value: "blue"}},
		{{Name: ":method", Value: "POST"}, {Name: "cookie", Value: ""}, {Name: "x-secret", Value: "s", Sensitive: true},
			{Name: "set-cookie", Value: strings.Repeat("c", 127)}, {Name: "retry-after", Value: "1"}, {Name: "proxy-authorization", Value: "p"},
			{Name: "content-length", Value: "12"}, {Name: strings.Repeat("n", 200), Value: "x"}},
	}
	for i, want := range blocks {
		if i == 2 {
			w.Lock()
			w.SetMaxDynamicTableSizeLimit(1024) // the next block opens with a size update
			w.Unlock()
			dec.SetAllowedMaxDynamicTableSize(1024)
		}
		out.Reset()
		w.Lock()
		w.HeaderBlock(1, want, false)
		w.FlushLocked()
		w.Unlock()
		f, err := http2.NewFramer(nil, bytes.NewReader(out.Bytes())).ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.DecodeFull(f.(*http2.HeadersFrame).HeaderBlockFragment())
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		for j := range want {
			want[j].Sensitive = want[j].Sensitive || neverIndexed(want[j].Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("block %d decodes to\n%v\nwant\n%v", i, got, want)
		}
	}
}

func TestAppendInt(t *testing.T) {
	for _, tc := range []struct {
		i    uint64
		n    uint
		want []byte
	}{
		{10, 5, []byte{10}},            // RFC 7541 C.1.1
		{1337, 5, []byte{31, 154, 10}}, // C.1.2
		{42, 8, []byte{42}},            // C.1.3
		{127, 7, []byte{127, 0}},       // the prefix full: a zero octet follows
		{126, 7, []byte{126}},
	} {
		if got := appendInt(nil, 0, tc.n, tc.i); !bytes.Equal(got, tc.want) {
			t.Errorf("appendInt(%d, %d bits) = %v, want %v", tc.i, tc.n, got, tc.want)
		}
	}
}

// BenchmarkHeaderBlock encodes a relayed unary call's three blocks: the
// upstream request, the response's headers and its trailers.
func BenchmarkHeaderBlock(b *testing.B) {
	w := NewWriter(discard{}, 32<<10, nil)
	req := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/edgegate.testing.v1.EchoService/Unary"},
		{Name: ":authority", Value: "127.0.0.1:9000"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		{Name: "grpc-timeout", Value: "19999924u"}, {Name: "user-agent", Value: "grpc-go/1.77.0"},
		{Name: "x-request-id", Value: "5f0c6e0e-3a6d-4e52-9a41-1c2b3d4e5f60"}, {Name: "x-forwarded-for", Value: "127.0.0.1"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	head := []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "x-request-id", Value: "5f0c6e0e-3a6d-4e52-9a41-1c2b3d4e5f60"}, {Name: "ratelimit-policy", Value: `"default";q=1000;w=1`}, {Name: "ratelimit", Value: `"default";r=999;t=1`}}
	trail := []hpack.HeaderField{{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: ""}}
	b.ReportAllocs()
	for b.Loop() {
		w.Lock()
		w.HeaderBlock(1, req, false)
		w.HeaderBlock(1, head, false)
		w.HeaderBlock(1, trail, true)
		w.FlushLocked()
		w.Unlock()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
