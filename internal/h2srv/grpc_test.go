package h2srv

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpcEcho answers any gRPC call with the request's bytes as they come
// (each message back as it arrives), and grpc-status 0 after the
// request's end: an echo for unary and streaming calls alike, without
// parsing gRPC framing.
var grpcEcho = HandlerFunc(func(st *Stream) {
	if err := st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}, {Name: "x-path", Value: st.Path()}}, false); err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := st.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return
		}
	}
	_ = st.WriteTrailers([]hpack.HeaderField{{Name: "grpc-status", Value: "0"}})
})

// grpc-go's client talks to the engine: unary calls of every size, a
// bidirectional stream of a thousand messages, headers and trailers.
func TestGRPCGoClient(t *testing.T) {
	ts := startServer(t, &Server{Handler: grpcEcho}, false)
	cc, err := grpc.NewClient(ts.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	for _, size := range []int{0, 10, 100, 16 << 10, 1 << 20} {
		in := wrapperspb.String(strings.Repeat("u", size))
		out := new(wrapperspb.StringValue)
		var hdr metadata.MD
		if err := cc.Invoke(ctx, "/test.Echo/Unary", in, out, grpc.Header(&hdr)); err != nil {
			t.Fatalf("unary of %d bytes: %v", size, err)
		}
		if out.GetValue() != in.GetValue() || hdr.Get("x-path")[0] != "/test.Echo/Unary" {
			t.Fatalf("unary of %d bytes: %d back, headers %v", size, len(out.GetValue()), hdr)
		}
	}
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Bidi")
	if err != nil {
		t.Fatal(err)
	}
	msg := wrapperspb.String(strings.Repeat("s", 1000))
	done := make(chan error, 1)
	go func() {
		for range 1000 {
			if err := s.SendMsg(msg); err != nil {
				done <- err
				return
			}
		}
		done <- s.CloseSend()
	}()
	got := 0
	for {
		out := new(wrapperspb.StringValue)
		err := s.RecvMsg(out)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if out.GetValue() != msg.GetValue() {
			t.Fatalf("message %d: %d bytes", got, len(out.GetValue()))
		}
		got++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != 1000 {
		t.Fatalf("%d messages back, want 1000", got)
	}
}
