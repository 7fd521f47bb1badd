package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc"
)

// TestChainStreamOrder checks that the combined stream chain runs its
// links outermost first, then the handler, and that a link calling its
// handler a second time runs the rest of the chain again (as grpc-go's
// own chaining does).
func TestChainStreamOrder(t *testing.T) {
	var got []string
	link := func(name string, calls int) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			var err error
			for range calls {
				got = append(got, name)
				err = errors.Join(err, handler(srv, ss))
			}
			got = append(got, name+" done")
			return err
		}
	}
	chained := chainStream([]grpc.StreamServerInterceptor{link("a", 1), link("b", 2), link("c", 1)})
	info := &grpc.StreamServerInfo{FullMethod: "/s/m"}
	errFinal := errors.New("final")
	err := chained(nil, nil, info, func(any, grpc.ServerStream) error {
		got = append(got, "handler")
		return errFinal
	})
	want := []string{"a", "b", "c", "handler", "c done", "b", "c", "handler", "c done", "b done", "a done"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	if !errors.Is(err, errFinal) {
		t.Fatalf("err %v, want the handler's", err)
	}
	// A second call through the same chain starts again at the top.
	got = nil
	_ = chained(nil, nil, info, func(any, grpc.ServerStream) error { got = append(got, "handler"); return nil })
	if want := []string{"a", "b", "c", "handler", "c done", "b", "c", "handler", "c done", "b done", "a done"}; !slices.Equal(got, want) {
		t.Fatalf("second call: order %q, want %q", got, want)
	}
}

// TestChainUnaryOrder is TestChainStreamOrder for the unary chain, with
// the request and answer passed through.
func TestChainUnaryOrder(t *testing.T) {
	var got []string
	link := func(name string, calls int) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			var resp any
			var err error
			for range calls {
				got = append(got, name)
				resp, err = handler(ctx, req.(string)+name)
			}
			return resp, err
		}
	}
	chained := chainUnary([]grpc.UnaryServerInterceptor{link("a", 1), link("b", 2), link("c", 1)})
	resp, err := chained(context.Background(), "", &grpc.UnaryServerInfo{FullMethod: "/s/m"}, func(_ context.Context, req any) (any, error) {
		got = append(got, "handler:"+req.(string))
		return req, nil
	})
	want := []string{"a", "b", "c", "handler:abc", "b", "c", "handler:abc"}
	if !slices.Equal(got, want) || err != nil || resp != "abc" {
		t.Fatalf("order %q, answer %v, %v; want %q, abc", got, resp, err, want)
	}
}

// BenchmarkChainStream measures the combined chain's cost per call with
// links that only call their handler.
func BenchmarkChainStream(b *testing.B) {
	pass := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, ss)
	}
	chained := chainStream(slices.Repeat([]grpc.StreamServerInterceptor{pass}, 13))
	info := &grpc.StreamServerInfo{FullMethod: "/s/m"}
	final := func(any, grpc.ServerStream) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = chained(nil, nil, info, final)
	}
}
