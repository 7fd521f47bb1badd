package router_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/router"
)

var _ encoding.CodecV2 = router.Codec{}

func TestCodecName(t *testing.T) {
	if got := router.NewCodec().Name(); got != "proto" {
		t.Errorf("Name() = %q, want %q", got, "proto")
	}
}

// countingPool is a mem.BufferPool that counts the buffers returned to it.
type countingPool struct{ puts atomic.Int32 }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.puts.Add(1) }

// pooled returns a pooled buffer holding a copy of b; b must be large
// enough to be pooled (mem.IsBelowBufferPoolingThreshold false).
func pooled(b []byte, pool mem.BufferPool) mem.Buffer {
	buf := pool.Get(len(b))
	copy(*buf, b)
	return mem.NewBuffer(buf, pool)
}

func TestCodecFrameRoundTrip(t *testing.T) {
	codec := router.NewCodec()
	pool := &countingPool{}
	part1 := bytes.Repeat([]byte("a"), 4096)
	part2 := bytes.Repeat([]byte("b"), 2048)
	if mem.IsBelowBufferPoolingThreshold(len(part2)) {
		t.Fatal("test buffers are too small to be pooled")
	}
	in := mem.BufferSlice{pooled(part1, pool), pooled(part2, pool)}
	want := append(append([]byte{}, part1...), part2...)

	var f router.Frame
	if err := codec.Unmarshal(in, &f); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	// gRPC frees the received data after Unmarshal; the frame keeps its
	// own reference.
	in.Free()
	if n := pool.puts.Load(); n != 0 {
		t.Fatalf("%d buffers returned to the pool while the frame holds them", n)
	}
	if f.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", f.Len(), len(want))
	}
	if !bytes.Equal(f.Bytes(), want) {
		t.Error("Bytes() differs from the received data")
	}

	out, err := codec.Marshal(&f)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if f.Len() != 0 {
		t.Errorf("frame holds %d bytes after Marshal, want 0", f.Len())
	}
	if !bytes.Equal(out.Materialize(), want) {
		t.Error("Marshal returned other bytes than Unmarshal received")
	}
	// gRPC frees what it sent; that is the last reference.
	out.Free()
	if n := pool.puts.Load(); n != 2 {
		t.Errorf("%d buffers returned to the pool after the send, want 2", n)
	}
	f.Free() // freeing an empty frame is a no-op
}

func TestCodecFrameReuse(t *testing.T) {
	codec := router.NewCodec()
	pool := &countingPool{}
	var f router.Frame
	first := mem.BufferSlice{pooled(bytes.Repeat([]byte("1"), 2048), pool)}
	if err := codec.Unmarshal(first, &f); err != nil {
		t.Fatal(err)
	}
	first.Free()
	// Receiving the next message into the same frame releases the first.
	second := mem.BufferSlice{mem.SliceBuffer("second")}
	if err := codec.Unmarshal(second, &f); err != nil {
		t.Fatal(err)
	}
	if n := pool.puts.Load(); n != 1 {
		t.Errorf("%d buffers returned after reuse, want 1", n)
	}
	if got := string(f.Bytes()); got != "second" {
		t.Errorf("Bytes() = %q, want %q", got, "second")
	}
	f.Free()
	if f.Len() != 0 {
		t.Errorf("Len() = %d after Free, want 0", f.Len())
	}
}

func TestFrameSetBytes(t *testing.T) {
	var f router.Frame
	f.SetBytes([]byte("hello"))
	if f.Len() != 5 || string(f.Bytes()) != "hello" {
		t.Fatalf("frame = %q (len %d), want hello", f.Bytes(), f.Len())
	}
	out, err := router.NewCodec().Marshal(&f)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.Materialize()); got != "hello" {
		t.Errorf("Marshal = %q, want hello", got)
	}
	if f.Len() != 0 {
		t.Errorf("frame holds %d bytes after Marshal", f.Len())
	}
	out.Free()

	// An empty frame marshals to an empty message.
	out, err = router.NewCodec().Marshal(&router.Frame{})
	if err != nil || out.Len() != 0 {
		t.Errorf("Marshal(empty frame) = %d bytes, %v; want 0, nil", out.Len(), err)
	}
}

func TestCodecProtoFallback(t *testing.T) {
	codec := router.NewCodec()
	msg := durationpb.New(90 * time.Minute)
	out, err := codec.Marshal(msg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	want, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Materialize()
	out.Free()
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal = %x, want proto %x", got, want)
	}

	var back durationpb.Duration
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !proto.Equal(&back, msg) {
		t.Errorf("Unmarshal = %v, want %v", &back, msg)
	}

	if _, err := codec.Marshal("not a message"); err == nil {
		t.Error("Marshal(string) succeeded, want an error")
	}
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, new(int)); err == nil {
		t.Error("Unmarshal into *int succeeded, want an error")
	}
}
