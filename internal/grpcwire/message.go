package grpcwire

import (
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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

// FieldsMetadata gathers the values of a header list into call metadata
// whose values share one array: a key's first value is a slice of it
// (full, so that a repeated key's append copies instead of overwriting
// the next key's value). Its zero value is not usable: NewFieldsMetadata.
type FieldsMetadata struct {
	MD   metadata.MD
	vals []string
}

// NewFieldsMetadata returns a FieldsMetadata sized for n keys.
func NewFieldsMetadata(n int) FieldsMetadata {
	return FieldsMetadata{MD: make(metadata.MD, n), vals: make([]string, 0, n)}
}

// Add adds the value v of key k (lower case, -bin values decoded).
func (m *FieldsMetadata) Add(k, v string) {
	if old, ok := m.MD[k]; ok {
		m.MD[k] = append(old, v)
		return
	}
	m.vals = append(m.vals, v)
	m.MD[k] = m.vals[len(m.vals)-1 : len(m.vals) : len(m.vals)]
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

// AppendStatus adds st to an HTTP/2 header list as grpc-status,
// grpc-message and grpc-status-details-bin (the last two when st has
// them).
func AppendStatus(fields []hpack.HeaderField, st *status.Status) []hpack.HeaderField {
	code, msg, details := statusValues(st)
	fields = append(fields, hpack.HeaderField{Name: "grpc-status", Value: code})
	if msg != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-message", Value: msg})
	}
	if details != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-status-details-bin", Value: details})
	}
	return fields
}

// okStatus is the status of every call that ended OK without a message.
var okStatus = status.New(codes.OK, "")

// ParseStatus is the status a peer sent as grpc-status, grpc-message and
// grpc-status-details-bin (the values as sent, "" for an absent one):
// the details when they are a google.rpc.Status of the same code. An
// absent grpc-status is UNKNOWN, a malformed one INTERNAL.
func ParseStatus(code, msg, details string) *status.Status {
	if code == "0" && msg == "" && details == "" {
		return okStatus
	}
	c := codes.Unknown
	if code != "" {
		n, err := strconv.ParseUint(code, 10, 32)
		if err != nil {
			return status.Newf(codes.Internal, "transport: malformed grpc-status: %q", code)
		}
		c = codes.Code(n)
	}
	if details != "" {
		if b, err := DecodeBin(details); err == nil {
			sp := &spb.Status{}
			if err := proto.Unmarshal(b, sp); err == nil && codes.Code(sp.GetCode()) == c {
				return status.FromProto(sp)
			}
		}
	}
	return status.New(c, DecodeMessage(msg))
}

// DecodeMessage undoes EncodeMessage; a value that is not well formed is
// kept as it is.
func DecodeMessage(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	if s, err := url.PathUnescape(v); err == nil {
		return s
	}
	return v
}

// smallMessage is a small message's buffer slice, its one buffer and
// that buffer's slice header in one allocation (a SliceBuffer value in the
// interface would be a second, the slice a third).
type smallMessage struct {
	b   mem.SliceBuffer
	one [1]mem.Buffer
}

// ReadMessage reads a message of n bytes from r. A message of 1 KiB or
// more is read into a buffer of grpc-go's default pool, which freeing it
// returns; a smaller one into a slice of its own (grpc-go's mem.NewBuffer
// does not pool those, so a pooled buffer would never come back). On a
// read error nothing is kept and the error is r's.
func ReadMessage(r io.Reader, n int) (mem.BufferSlice, error) {
	if mem.IsBelowBufferPoolingThreshold(n) {
		m := &smallMessage{b: make([]byte, n)}
		if _, err := io.ReadFull(r, m.b); err != nil {
			return nil, err
		}
		m.one[0] = &m.b
		return m.one[:], nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(n)
	if _, err := io.ReadFull(r, *buf); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}
