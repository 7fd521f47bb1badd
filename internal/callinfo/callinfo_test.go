package callinfo_test

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// fakeStream is a grpc.ServerStream with a context and nothing else.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }

// The chain's first step removes a client's copy of the identity keys,
// records the cleaned metadata once, and makes a native call's record.
func TestBeginStrips(t *testing.T) {
	first := callinfo.StreamServerInterceptor([]string{"x-p"})
	ss := &fakeStream{ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-p", "spoofed", "y", "1"))}
	called := false
	_ = first(nil, ss, &grpc.StreamServerInfo{FullMethod: "/a.v1.S/M"}, func(_ any, s grpc.ServerStream) error {
		called = true
		in, _ := metadata.FromIncomingContext(s.Context())
		if len(in.Get("x-p")) != 0 || in.Get("y")[0] != "1" {
			t.Errorf("after strip: %v", in)
		}
		// The rest of the chain shares one cleaned copy.
		shared := callinfo.Incoming(s.Context())
		if len(shared.Get("x-p")) != 0 || shared.Get("y")[0] != "1" {
			t.Errorf("callinfo.Incoming after strip: %v", shared)
		}
		if reflect.ValueOf(callinfo.Incoming(s.Context())).Pointer() != reflect.ValueOf(shared).Pointer() {
			t.Error("callinfo.Incoming copied the metadata again")
		}
		if info := callinfo.FromContext(s.Context()); info == nil || info.Door != callinfo.DoorGRPC || info.Method != "/a.v1.S/M" {
			t.Errorf("call record %+v, want one for a native call of the method", info)
		}
		return nil
	})
	if !called {
		t.Fatal("the first step did not call the handler")
	}
}

// A record the HTTP door made is the call's; the first step does not make
// another, and does not wrap a stream whose context it did not change.
func TestBeginKeepsTheDoorsRecord(t *testing.T) {
	door := callinfo.New(callinfo.DoorREST)
	door.Peer = "192.0.2.1:5"
	ss := &fakeStream{ctx: callinfo.NewContext(context.Background(), door)}
	_ = callinfo.StreamServerInterceptor(nil)(nil, ss, &grpc.StreamServerInfo{FullMethod: "/a.v1.S/M"}, func(_ any, s grpc.ServerStream) error {
		if s != ss {
			t.Error("the stream was wrapped")
		}
		if info := callinfo.FromContext(s.Context()); info != door || info.Method != "/a.v1.S/M" || info.Peer != "192.0.2.1:5" {
			t.Errorf("record %+v, want the door's", info)
		}
		return nil
	})
}
