package router

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// The proto codec is the fallback of Codec.
	_ "google.golang.org/grpc/encoding/proto"
)

// Frame is one gRPC message kept as the bytes it came in as. Receiving into
// a Frame takes a reference to gRPC's buffers instead of copying; sending a
// Frame hands that reference back to gRPC, which frees it once written. A
// Frame is reused across messages; it is not safe for concurrent use.
type Frame struct {
	data mem.BufferSlice
}

// Len returns the length of the message in bytes.
func (f *Frame) Len() int { return f.data.Len() }

// Bytes returns a copy of the message.
func (f *Frame) Bytes() []byte { return f.data.Materialize() }

// SetBytes makes the frame carry b. The frame does not copy b; b must not be
// modified until the frame has been sent.
func (f *Frame) SetBytes(b []byte) {
	f.Free()
	f.data = mem.BufferSlice{mem.SliceBuffer(b)}
}

// SetBuffers makes the frame carry data, whose reference it takes (the
// buffers it carried before are freed).
func (f *Frame) SetBuffers(data mem.BufferSlice) {
	f.Free()
	f.data = data
}

// TakeBuffers returns the frame's buffers, whose reference passes to the
// caller, and leaves the frame empty.
func (f *Frame) TakeBuffers() mem.BufferSlice {
	data := f.data
	f.data = nil
	return data
}

// Free releases the frame's buffers when it is not going to be sent.
func (f *Frame) Free() {
	if f.data != nil {
		f.data.Free()
		f.data = nil
	}
}

// Codec passes *Frame values through as raw bytes and gives every other
// value to the proto codec, so that one grpc.Server can both proxy raw
// frames and serve its own protobuf services (health, reflection). Its
// name is "proto": on the wire, proxied calls keep the content type
// application/grpc that upstreams expect.
type Codec struct {
	fallback encoding.CodecV2
}

// NewCodec returns the frame codec.
func NewCodec() Codec {
	return Codec{fallback: encoding.GetCodecV2("proto")}
}

// Marshal implements encoding.CodecV2.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		out := f.data
		f.data = nil
		return out, nil
	}
	return c.fallback.Marshal(v)
}

// Unmarshal implements encoding.CodecV2.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		f.Free()
		data.Ref()
		f.data = data
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }
