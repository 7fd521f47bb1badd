package callmeta

import (
	"context"
	"slices"
	"testing"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// doorStream is a door's stream: Meta's header methods.
type doorStream struct {
	grpc.ServerStream
	Meta
}

func (s *doorStream) SetHeader(md metadata.MD) error { return s.Meta.SetHeader(md) }
func (s *doorStream) SetTrailer(md metadata.MD)      { s.Meta.SetTrailer(md) }

// otherStream only has SetHeader, and counts its calls.
type otherStream struct {
	grpc.ServerStream
	set []metadata.MD
}

func (s *otherStream) SetHeader(md metadata.MD) error { s.set = append(s.set, md); return nil }

func TestAddHeaders(t *testing.T) {
	d := &doorStream{}
	var ss grpc.ServerStream = &middleware.WrappedServerStream{ServerStream: d, WrappedContext: context.Background()}
	if err := AddHeaders(ss, "a", "1", "b", "2"); err != nil {
		t.Fatal(err)
	}
	if err := AddHeaders(ss, "a", "3"); err != nil {
		t.Fatal(err)
	}
	if got := d.Header["a"]; !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("a = %q, want [1 3]", got)
	}
	if got := d.Header["b"]; !slices.Equal(got, []string{"2"}) {
		t.Errorf("b = %q, want [2]", got)
	}
	d.HeaderSent = true
	if err := AddHeaders(ss, "c", "4"); err == nil {
		t.Error("a header added after it was sent: no error")
	}

	o := &otherStream{}
	if err := AddHeaders(o, "a", "1", "b", "2"); err != nil {
		t.Fatal(err)
	}
	if len(o.set) != 1 || o.set[0].Get("a")[0] != "1" || o.set[0].Get("b")[0] != "2" {
		t.Errorf("a stream without Meta: SetHeader calls %v, want one with a and b", o.set)
	}
}

// Merge keeps a new key's values without copying them, and appends a
// later value for the key to a copy, never into the caller's array.
func TestMergeKeepsCallersValues(t *testing.T) {
	in := []string{"1", "2", "3"}
	md := Merge(nil, metadata.MD{"a": in[:1]})
	md = Merge(md, metadata.MD{"a": {"x"}})
	if !slices.Equal(md["a"], []string{"1", "x"}) || in[1] != "2" {
		t.Errorf("merged %q, caller's values %q; want [1 x] and [1 2 3]", md["a"], in)
	}
}
