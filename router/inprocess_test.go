package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
)

// Once an in-process call has ended, its header and trailer were handed
// to the caller: a header or trailer set later (by a goroutine that
// outlived the handler) is refused or ignored, as grpc-go does, and the
// caller's maps do not change.
func TestMetadataAfterEnd(t *testing.T) {
	var saved grpc.ServerStream
	ip := NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		saved = ss
		if err := ss.SetHeader(metadata.Pairs("x-h", "1")); err != nil {
			return err
		}
		ss.SetTrailer(metadata.Pairs("x-t", "1"))
		return status.Error(codes.NotFound, "no")
	})
	var hdr, tlr metadata.MD
	err := ip.Invoke(context.Background(), "/pkg.Svc/Method", &Frame{}, &Frame{}, grpc.Header(&hdr), grpc.Trailer(&tlr))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Invoke: %v, want NOT_FOUND", err)
	}
	if err := saved.SetHeader(metadata.Pairs("x-late", "1")); err == nil {
		t.Error("SetHeader after the call ended: no error")
	}
	saved.SetTrailer(metadata.Pairs("x-late", "1"))
	if len(hdr) != 1 || hdr.Get("x-h")[0] != "1" || len(tlr) != 1 || tlr.Get("x-t")[0] != "1" {
		t.Errorf("after the call: header %v, trailer %v; want x-h and x-t only", hdr, tlr)
	}
}

// refusing is a chain that refuses every call before the handler, as a
// policy does: a header, then a status.
func refusing(st *status.Status) grpc.StreamServerInterceptor {
	return func(_ any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, _ grpc.StreamHandler) error {
		if err := ss.SetHeader(metadata.Pairs("www-authenticate", "Bearer")); err != nil {
			return err
		}
		return st.Err()
	}
}

var serverStream = &grpc.StreamDesc{ServerStreams: true}

// A server stream the chain refuses before it reads the request still
// takes the request (SendMsg says nil, not io.EOF), and the refusal comes
// from RecvMsg with the header the chain set: grpc-gateway's generated
// clients return SendMsg's error before they read the status.
func TestServerStreamRefusalComesFromRecvMsg(t *testing.T) {
	ip := NewInProcess(refusing(status.New(codes.Unauthenticated, "who are you")), func(any, grpc.ServerStream) error {
		t.Error("the handler ran")
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := ip.NewStream(ctx, serverStream, "/pkg.Svc/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&testingv1.EchoRequest{Message: "m"}); err != nil {
		t.Fatalf("SendMsg: %v, want nil", err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	hdr, err := cs.Header()
	if err != nil || len(hdr.Get("www-authenticate")) != 1 {
		t.Fatalf("Header: %v %v, want the chain's header", hdr, err)
	}
	if err := cs.RecvMsg(&testingv1.EchoResponse{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("RecvMsg: %v, want UNAUTHENTICATED", err)
	}
}

// A server stream starts with its request: the handler's first RecvMsg
// has it, the second says io.EOF.
func TestServerStreamStartsWithItsRequest(t *testing.T) {
	got := make(chan string, 2)
	ip := NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		var req testingv1.EchoRequest
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		got <- req.GetMessage()
		if err := ss.RecvMsg(&req); !errors.Is(err, io.EOF) {
			got <- fmt.Sprintf("second RecvMsg: %v", err)
		}
		return ss.SendMsg(&testingv1.EchoResponse{Message: req.GetMessage()})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := ip.NewStream(ctx, serverStream, "/pkg.Svc/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&testingv1.EchoRequest{Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&testingv1.EchoRequest{}); status.Code(err) != codes.Internal {
		t.Errorf("a second request: %v, want INTERNAL", err)
	}
	_ = cs.CloseSend()
	var resp testingv1.EchoResponse
	if err := cs.RecvMsg(&resp); err != nil || resp.GetMessage() != "m" {
		t.Fatalf("RecvMsg: %v %v", &resp, err)
	}
	if err := cs.RecvMsg(&resp); !errors.Is(err, io.EOF) {
		t.Fatalf("after the response: %v, want io.EOF", err)
	}
	if m := <-got; m != "m" {
		t.Fatalf("the handler read %q", m)
	}
	select {
	case m := <-got:
		t.Fatal(m)
	default:
	}
}

// A stream's first response sends the header, when the handler did not:
// a caller waiting in Header (grpc-gateway's clients do, before they read
// a message) gets it, instead of waiting forever.
func TestStreamFirstResponseSendsTheHeader(t *testing.T) {
	ip := NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		if err := ss.RecvMsg(&testingv1.EchoRequest{}); err != nil {
			return err
		}
		if err := ss.SetHeader(metadata.Pairs("x-h", "1")); err != nil {
			return err
		}
		return ss.SendMsg(&testingv1.EchoResponse{Message: "m"})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := ip.NewStream(ctx, serverStream, "/pkg.Svc/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	hdr, err := cs.Header()
	if err != nil || len(hdr.Get("x-h")) != 1 {
		t.Fatalf("Header: %v %v", hdr, err)
	}
	var resp testingv1.EchoResponse
	if err := cs.RecvMsg(&resp); err != nil || resp.GetMessage() != "m" {
		t.Fatalf("RecvMsg: %v %v", &resp, err)
	}
	if err := cs.RecvMsg(&resp); !errors.Is(err, io.EOF) {
		t.Fatalf("after the response: %v", err)
	}
}

// A request whose string fields are not all UTF-8 cannot be marshalled:
// it is refused with INVALID_ARGUMENT naming the field, before the call
// starts, instead of failing to marshal (INTERNAL) once it has.
func TestRequestWithInvalidUTF8IsRefused(t *testing.T) {
	ran := false
	ip := NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		ran = true
		if err := ss.RecvMsg(&Frame{}); err != nil {
			return err
		}
		return ss.SendMsg(&Frame{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		req  proto.Message
		path string
	}{
		{&testingv1.EchoRequest{Message: "ok\xff"}, "message"},
		{&testingv1.EchoRequest{FailWith: &spb.Status{Message: "\xc3"}}, "fail_with.message"},
		{&catalogv1.ListBooksRequest{Tags: []string{"a", "\xfe"}}, "tags[1]"},
		{&catalogv1.ListBooksRequest{Filter: &catalogv1.ListBooksRequest_Filter{Author: "\xff"}}, "filter.author"},
		{&structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("\xff")}}, `fields["k"].string_value`},
		{&structpb.Struct{Fields: map[string]*structpb.Value{"\xff": structpb.NewNullValue()}}, `fields key "\xff"`},
	} {
		want := "edgegate: string field " + c.path + " holds invalid UTF-8"
		err := ip.Invoke(ctx, "/pkg.Svc/Unary", c.req, &Frame{})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != want {
			t.Errorf("Invoke: %v, want INVALID_ARGUMENT %q", err, want)
		}
		cs, err := ip.NewStream(ctx, serverStream, "/pkg.Svc/Watch")
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(c.req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("SendMsg: %v, want INVALID_ARGUMENT", err)
		}
		if err := cs.RecvMsg(&Frame{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("RecvMsg after the refusal: %v, want INVALID_ARGUMENT", err)
		}
	}
	if ran {
		t.Fatal("the handler ran for a refused request")
	}
	// Valid strings and bytes that are not UTF-8 pass.
	if err := ip.Invoke(ctx, "/pkg.Svc/Unary", &testingv1.EchoRequest{Message: "ü", Payload: []byte{0xff}}, &testingv1.EchoResponse{}); err != nil || !ran {
		t.Errorf("a valid request: %v (handler ran: %v)", err, ran)
	}
}
