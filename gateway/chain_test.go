package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
)

// TestWalkStreamOrder checks that the walked stream chain runs its links
// outermost first, then the handler, and that a link calling its handler
// a second time runs the rest of the chain again (as grpc-go's own
// chaining does).
func TestWalkStreamOrder(t *testing.T) {
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
	chained := walkStream(link("a", 1), link("b", 2), link("c", 1))
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

// TestWalkUnaryOrder is TestWalkStreamOrder for the unary walk, with the
// request and answer passed through.
func TestWalkUnaryOrder(t *testing.T) {
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
	chained := walkUnary(link("a", 1), link("b", 2), link("c", 1))
	resp, err := chained(context.Background(), "", &grpc.UnaryServerInfo{FullMethod: "/s/m"}, func(_ context.Context, req any) (any, error) {
		got = append(got, "handler:"+req.(string))
		return req, nil
	})
	want := []string{"a", "b", "c", "handler:abc", "b", "c", "handler:abc"}
	if !slices.Equal(got, want) || err != nil || resp != "abc" {
		t.Fatalf("order %q, answer %v, %v; want %q, abc", got, resp, err, want)
	}
}

// TestChainStreamLater checks that a link of chainStream calling its
// handler after it returned, from another goroutine (the response cache's
// background refresh), runs the links after it, then the handler, with
// the gateway's fixed links walked in front.
func TestChainStreamLater(t *testing.T) {
	var mu sync.Mutex
	var got []string
	record := func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}
	pass := func(name string) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			record(name)
			return handler(srv, ss)
		}
	}
	later := make(chan error, 1)
	refresh := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		record("refresh")
		go func() { later <- handler(srv, ss) }()
		return nil
	}
	chained := chainStream([]grpc.StreamServerInterceptor{walkStream(pass("a"), pass("b")), refresh, pass("c")})
	if err := chained(nil, nil, &grpc.StreamServerInfo{FullMethod: "/s/m"}, func(any, grpc.ServerStream) error {
		record("handler")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a", "b", "refresh", "c", "handler"}; !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// BenchmarkChainStream measures the cost per call of 13 links that only
// call their handler, chained with a handler per link and walked.
func BenchmarkChainStream(b *testing.B) {
	pass := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, ss)
	}
	links := slices.Repeat([]grpc.StreamServerInterceptor{pass}, 13)
	info := &grpc.StreamServerInfo{FullMethod: "/s/m"}
	final := func(any, grpc.ServerStream) error { return nil }
	for _, bc := range []struct {
		name    string
		chained grpc.StreamServerInterceptor
	}{
		{"chained", chainStream(links)},
		{"walked", walkStream(links...)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.chained(nil, nil, info, final)
			}
		})
	}
}
