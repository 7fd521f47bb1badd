package grpcwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestFormatTimeoutRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 0, 1, 999, 99999999, 100000000, 1500 * time.Millisecond, 30 * time.Second, 5 * time.Hour, 1<<63 - 1} {
		v := FormatTimeout(d)
		got, ok, err := ParseTimeout(v)
		if err != nil || !ok {
			t.Fatalf("FormatTimeout(%v) = %q, which does not parse: %v", d, v, err)
		}
		if len(v) > 9 {
			t.Errorf("FormatTimeout(%v) = %q: more than 8 digits", d, v)
		}
		// Rounded up, never below d, and within one unit of it.
		if d > 0 && (got < d || (d < time.Hour && got-d > d/1e7+time.Nanosecond)) {
			t.Errorf("FormatTimeout(%v) = %q = %v", d, v, got)
		}
	}
}

// A status written by AppendStatus reads back the same through
// ParseStatus: code, a message with '%' and non-ASCII bytes, details.
func TestStatusRoundTrips(t *testing.T) {
	withDetails, _ := status.New(codes.FailedPrecondition, "50% done: ünïcode").WithDetails(&errdetails.ErrorInfo{Reason: "R"})
	for _, st := range []*status.Status{status.New(codes.OK, ""), status.New(codes.NotFound, "no such thing"), withDetails} {
		v := map[string]string{}
		for _, f := range AppendStatus(nil, st) {
			v[f.Name] = f.Value
		}
		got := ParseStatus(v["grpc-status"], v["grpc-message"], v["grpc-status-details-bin"])
		if !proto.Equal(got.Proto(), st.Proto()) {
			t.Errorf("%v read back as %v", st.Proto(), got.Proto())
		}
	}
	if st := ParseStatus("x", "", ""); st.Code() != codes.Internal {
		t.Errorf("a malformed grpc-status: %v", st)
	}
	if st := ParseStatus("", "m", ""); st.Code() != codes.Unknown {
		t.Errorf("no grpc-status: %v", st)
	}
}

// A repeated key's second value is appended to a copy: the next key's
// value, in the same array, stays as it was.
func TestFieldsMetadata(t *testing.T) {
	m := NewFieldsMetadata(2)
	m.Add("a", "1")
	m.Add("b", "2")
	m.Add("a", "3")
	if got := m.MD["a"]; len(got) != 2 || got[0] != "1" || got[1] != "3" {
		t.Errorf("a = %q, want [1 3]", got)
	}
	if got := m.MD["b"]; len(got) != 1 || got[0] != "2" {
		t.Errorf("b = %q, want [2]", got)
	}
}

// ReadMessage gives a message's bytes below and above grpc-go's pooling
// threshold; a small one costs two allocations (its bytes, and the
// buffer slice with its buffer); a short read is the reader's error.
func TestReadMessage(t *testing.T) {
	for _, n := range []int{0, 1, 100, 1023, 1024, 64 << 10} {
		want := bytes.Repeat([]byte{'x'}, n)
		data, err := ReadMessage(bytes.NewReader(want), n)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got := data.Materialize(); data.Len() != n || !bytes.Equal(got, want) {
			t.Errorf("%d bytes: read %d, equal %v", n, data.Len(), bytes.Equal(got, want))
		}
		data.Free()
	}
	if _, err := ReadMessage(bytes.NewReader(make([]byte, 10)), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short small message: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := ReadMessage(bytes.NewReader(make([]byte, 10)), 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short large message: %v, want io.ErrUnexpectedEOF", err)
	}
	src := make([]byte, 100)
	r := bytes.NewReader(src)
	if allocs := testing.AllocsPerRun(100, func() {
		r.Reset(src)
		data, _ := ReadMessage(r, len(src))
		data.Free()
	}); allocs > 2 {
		t.Errorf("a 100-byte message: %v allocations, want 2", allocs)
	}
}
