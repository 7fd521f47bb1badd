package requestid_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/interceptors/requestid"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// generated is the form of the ids New makes: a random 16-hex-digit
// per-process prefix and a base-36 counter.
var generated = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-z]+$`)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abc", true},
		{"0af7651916cd43dd-1", true},
		{"req_123:456/789~!", true},
		{strings.Repeat("x", requestid.MaxLen), true},
		{"", false},
		{strings.Repeat("x", requestid.MaxLen+1), false},
		{"with space", false},
		{" leading", false},
		{"tab\there", false},
		{"new\nline", false},
		{"del\x7f", false},
		{"nul\x00", false},
		{"idé", false},
		{"日本", false},
	} {
		if got := requestid.Valid(tc.id); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestFromIncoming(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		keep string // the id to keep; "" for a new one
	}{
		{"valid", metadata.Pairs(requestid.Key, "client-id-1"), "client-id-1"},
		{"longest valid", metadata.Pairs(requestid.Key, strings.Repeat("a", requestid.MaxLen)), strings.Repeat("a", requestid.MaxLen)},
		{"too long", metadata.Pairs(requestid.Key, strings.Repeat("a", requestid.MaxLen+1)), ""},
		{"space", metadata.Pairs(requestid.Key, "client id"), ""},
		{"non-ASCII", metadata.Pairs(requestid.Key, "idé"), ""},
		{"empty", metadata.Pairs(requestid.Key, ""), ""},
		{"two values", metadata.Pairs(requestid.Key, "a", requestid.Key, "b"), ""},
		{"absent", metadata.Pairs("other", "x"), ""},
		{"no metadata", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := requestid.FromIncoming(tc.md)
			if tc.keep != "" {
				if got != tc.keep {
					t.Errorf("FromIncoming = %q, want the client's %q", got, tc.keep)
				}
				return
			}
			if !generated.MatchString(got) {
				t.Errorf("FromIncoming = %q, want a new id", got)
			}
		})
	}
}

func TestNewUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		id := requestid.New()
		if seen[id] {
			t.Fatalf("New returned %q twice", id)
		}
		seen[id] = true
		if !requestid.Valid(id) || !generated.MatchString(id) {
			t.Fatalf("New returned %q, not a valid id", id)
		}
	}
}

func TestNewUniqueConcurrent(t *testing.T) {
	const workers, each = 8, 1000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], requestid.New())
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				t.Fatalf("New returned %q twice", id)
			}
			seen[id] = true
		}
	}
}

// headerRecorder records the metadata set with SetHeader. It serves as a
// grpc.ServerTransportStream (for grpc.SetHeader in unary calls) and as a
// grpc.ServerStream.
type headerRecorder struct {
	ctx    context.Context
	header metadata.MD
}

func (r *headerRecorder) Method() string           { return "/shop.v1.S/Get" }
func (r *headerRecorder) Context() context.Context { return r.ctx }
func (r *headerRecorder) SetHeader(md metadata.MD) error {
	r.header = metadata.Join(r.header, md)
	return nil
}
func (r *headerRecorder) SendHeader(md metadata.MD) error {
	return r.SetHeader(md)
}
func (r *headerRecorder) SendMsg(any) error { return nil }
func (r *headerRecorder) RecvMsg(any) error { return nil }

// transportStream gives headerRecorder the SetTrailer of
// grpc.ServerTransportStream.
type transportStream struct{ *headerRecorder }

func (transportStream) SetTrailer(metadata.MD) error { return nil }

// serverStream gives headerRecorder the SetTrailer of grpc.ServerStream.
type serverStream struct{ *headerRecorder }

func (serverStream) SetTrailer(metadata.MD) {}

// unary is the request id interceptor after the chain's first step, which
// makes the call's record (callinfo.Begin), as in the gateway's chain.
func unary() grpc.UnaryServerInterceptor {
	first, rid := callinfo.UnaryServerInterceptor(nil), requestid.UnaryServerInterceptor()
	return func(ctx context.Context, req any, si *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return first(ctx, req, si, func(ctx context.Context, req any) (any, error) { return rid(ctx, req, si, handler) })
	}
}

// stream is unary for streams.
func stream() grpc.StreamServerInterceptor {
	first, rid := callinfo.StreamServerInterceptor(nil), requestid.StreamServerInterceptor()
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return first(srv, ss, si, func(srv any, ss grpc.ServerStream) error { return rid(srv, ss, si, handler) })
	}
}

// unaryCall runs the unary interceptor for a call with incoming metadata md
// in ctx, and returns the record the handler saw and the header set.
func unaryCall(t *testing.T, ctx context.Context, md metadata.MD) (*callinfo.Info, metadata.MD) {
	t.Helper()
	rec := &headerRecorder{}
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = grpc.NewContextWithServerTransportStream(ctx, transportStream{rec})
	var seen *callinfo.Info
	resp, err := unary()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: "/shop.v1.S/Get"},
		func(ctx context.Context, req any) (any, error) {
			seen = callinfo.FromContext(ctx)
			return "resp", nil
		})
	if resp != "resp" || err != nil {
		t.Errorf("interceptor = %v, %v; want the handler's resp, nil", resp, err)
	}
	if seen == nil {
		t.Fatal("the handler's context has no call record")
	}
	return seen, rec.header
}

func TestUnaryInterceptor(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		keep string
	}{
		{"client id kept", metadata.Pairs(requestid.Key, "abc-123"), "abc-123"},
		{"too long replaced", metadata.Pairs(requestid.Key, strings.Repeat("a", 200)), ""},
		{"space replaced", metadata.Pairs(requestid.Key, "a b"), ""},
		{"non-ASCII replaced", metadata.Pairs(requestid.Key, "ünïcode"), ""},
		{"two values replaced", metadata.Pairs(requestid.Key, "a", requestid.Key, "b"), ""},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, header := unaryCall(t, context.Background(), tc.md)
			if info.Door != callinfo.DoorGRPC {
				t.Errorf("record door = %q, want %q", info.Door, callinfo.DoorGRPC)
			}
			id := info.RequestID
			if tc.keep != "" && id != tc.keep {
				t.Errorf("request id = %q, want the client's %q", id, tc.keep)
			}
			if tc.keep == "" && !generated.MatchString(id) {
				t.Errorf("request id = %q, want a new one", id)
			}
			if got := header.Get(requestid.Key); len(got) != 1 || got[0] != id {
				t.Errorf("response header %s = %q, want [%q]", requestid.Key, got, id)
			}
		})
	}
}

// A record made by an outer layer (an HTTP door) keeps its door, and its
// request id when it has one.
func TestUnaryInterceptorExistingRecord(t *testing.T) {
	rest := &callinfo.Info{Door: callinfo.DoorREST}
	info, header := unaryCall(t, callinfo.NewContext(context.Background(), rest), metadata.Pairs(requestid.Key, "client"))
	if info != rest || info.Door != callinfo.DoorREST || info.RequestID != "client" {
		t.Errorf("record = %+v, want the door's own, door rest, id client", info)
	}
	if got := header.Get(requestid.Key); len(got) != 1 || got[0] != "client" {
		t.Errorf("response header = %q, want [client]", got)
	}

	set := &callinfo.Info{Door: callinfo.DoorGRPCWeb, RequestID: "from-door"}
	info, header = unaryCall(t, callinfo.NewContext(context.Background(), set), metadata.Pairs(requestid.Key, "client"))
	if info.RequestID != "from-door" {
		t.Errorf("request id = %q, want the record's from-door", info.RequestID)
	}
	if got := header.Get(requestid.Key); len(got) != 1 || got[0] != "from-door" {
		t.Errorf("response header = %q, want [from-door]", got)
	}
}

// Without a transport stream in the context grpc.SetHeader fails; the
// handler is called all the same.
func TestUnaryInterceptorWithoutTransport(t *testing.T) {
	called := false
	_, err := unary()(context.Background(), "req", &grpc.UnaryServerInfo{},
		func(ctx context.Context, req any) (any, error) {
			called = true
			if info := callinfo.FromContext(ctx); info == nil || info.RequestID == "" {
				t.Error("no request id in the handler's context")
			}
			return nil, nil
		})
	if !called || err != nil {
		t.Errorf("handler called = %v, err = %v; want true, nil", called, err)
	}
}

func streamCall(t *testing.T, ctx context.Context, md metadata.MD) (*callinfo.Info, metadata.MD, grpc.ServerStream, grpc.ServerStream) {
	t.Helper()
	rec := &headerRecorder{ctx: metadata.NewIncomingContext(ctx, md)}
	ss := serverStream{rec}
	var seen grpc.ServerStream
	err := stream()("srv", ss, &grpc.StreamServerInfo{FullMethod: "/shop.v1.S/Watch"},
		func(srv any, s grpc.ServerStream) error {
			seen = s
			return nil
		})
	if err != nil || seen == nil {
		t.Fatalf("interceptor = %v, handler called = %v", err, seen != nil)
	}
	info := callinfo.FromContext(seen.Context()) //nolint:contextcheck // the context the handler's stream carries is what the test inspects
	if info == nil {
		t.Fatal("the handler's stream context has no call record")
	}
	return info, rec.header, ss, seen
}

func TestStreamInterceptor(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		keep string
	}{
		{"client id kept", metadata.Pairs(requestid.Key, "abc-123"), "abc-123"},
		{"too long replaced", metadata.Pairs(requestid.Key, strings.Repeat("a", 129)), ""},
		{"space replaced", metadata.Pairs(requestid.Key, "a b"), ""},
		{"non-ASCII replaced", metadata.Pairs(requestid.Key, "café"), ""},
		{"two values replaced", metadata.Pairs(requestid.Key, "a", requestid.Key, "b"), ""},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, header, ss, seen := streamCall(t, context.Background(), tc.md)
			id := info.RequestID
			if tc.keep != "" && id != tc.keep {
				t.Errorf("request id = %q, want the client's %q", id, tc.keep)
			}
			if tc.keep == "" && !generated.MatchString(id) {
				t.Errorf("request id = %q, want a new one", id)
			}
			if got := header.Get(requestid.Key); len(got) != 1 || got[0] != id {
				t.Errorf("SetHeader %s = %q, want [%q]", requestid.Key, got, id)
			}
			// The wrapped stream still carries the incoming metadata and
			// forwards to the original stream.
			if md, _ := metadata.FromIncomingContext(seen.Context()); len(tc.md) > 0 && md.Len() == 0 {
				t.Error("the handler's context lost the incoming metadata")
			}
			if err := seen.SetHeader(metadata.Pairs("k", "v")); err != nil {
				t.Fatal(err)
			}
			if got := ss.(serverStream).header.Get("k"); len(got) != 1 {
				t.Errorf("SetHeader through the handler's stream did not reach the call's: k = %q", got)
			}
		})
	}
}

// When the stream's context already has a record the handler gets the
// stream itself, unwrapped.
func TestStreamInterceptorExistingRecord(t *testing.T) {
	web := &callinfo.Info{Door: callinfo.DoorGRPCWeb}
	info, header, ss, seen := streamCall(t, callinfo.NewContext(context.Background(), web), metadata.Pairs(requestid.Key, "client"))
	if info != web || info.RequestID != "client" || info.Door != callinfo.DoorGRPCWeb {
		t.Errorf("record = %+v, want the door's own with id client", info)
	}
	if seen != ss {
		t.Error("the handler got a wrapped stream although the context did not change")
	}
	if got := header.Get(requestid.Key); len(got) != 1 || got[0] != "client" {
		t.Errorf("SetHeader = %q, want [client]", got)
	}
}
