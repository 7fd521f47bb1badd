package grpcwire

import (
	"io"
	"strconv"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// FormatTimeout encodes d as a grpc-timeout value: at most 8 digits, in
// the finest unit that holds it, rounded up (a deadline passed already is
// "1n").
func FormatTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	const most = 1e8
	for _, u := range [...]struct {
		d    time.Duration
		unit string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if d/u.d < most {
			return strconv.FormatInt(int64((d+u.d-1)/u.d), 10) + u.unit
		}
	}
	return strconv.FormatInt(int64(d/time.Hour)+1, 10) + "H"
}

// Decompress decompresses a received message (freeing data) with comp,
// reading no more than max bytes of output: a compressed flag without an
// encoding, or output that fails or is too large, is the status grpc-go
// gives for it.
func Decompress(comp encoding.Compressor, data mem.BufferSlice, max int) (mem.BufferSlice, error) {
	defer data.Free()
	if comp == nil {
		return nil, status.Error(codes.Internal, "grpc: compressed flag set with identity or empty encoding")
	}
	r, err := comp.Decompress(data.Reader())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "grpc: failed to decompress the received message: %v", err)
	}
	out, err := mem.ReadAll(io.LimitReader(r, int64(max)+1), mem.DefaultBufferPool())
	if err != nil {
		out.Free()
		return nil, status.Errorf(codes.Internal, "grpc: failed to decompress the received message: %v", err)
	}
	if out.Len() > max {
		out.Free()
		return nil, status.Errorf(codes.ResourceExhausted, "grpc: received message after decompression larger than max %d", max)
	}
	return out, nil
}

// AppendFields adds md's keys to an HTTP/2 header list, -bin values
// base64-encoded, reserved keys and pseudo-headers left out (WireValues).
func AppendFields(fields []hpack.HeaderField, md metadata.MD) []hpack.HeaderField {
	for k, vs := range md {
		wire, ok := WireValues(k, vs)
		if !ok {
			continue
		}
		for _, v := range wire {
			fields = append(fields, hpack.HeaderField{Name: k, Value: v})
		}
	}
	return fields
}
