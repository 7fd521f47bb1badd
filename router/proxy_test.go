package router_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/upstream"
)

// fakeStream is a grpc.ServerStream of one call to method; it fails every
// message operation.
type fakeStream struct {
	ctx    context.Context
	method string
}

func newFakeStream(ctx context.Context, method string) *fakeStream {
	s := &fakeStream{method: method}
	s.ctx = grpc.NewContextWithServerTransportStream(ctx, transportStream{s})
	return s
}

func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)       {}
func (s *fakeStream) SendMsg(any) error            { return status.Error(codes.Internal, "fake: SendMsg") }
func (s *fakeStream) RecvMsg(any) error            { return status.Error(codes.Internal, "fake: RecvMsg") }

// transportStream is the grpc.ServerTransportStream that names the call's
// method to grpc.MethodFromServerStream.
type transportStream struct{ *fakeStream }

func (t transportStream) Method() string                  { return t.method }
func (t transportStream) SetTrailer(md metadata.MD) error { return nil }

func newProxy(t *testing.T, yamlText string) *router.Proxy {
	t.Helper()
	pool, err := upstream.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	return router.NewProxy(&router.Snapshot{Table: compile(t, yamlText), Pool: pool}, router.ProxyOptions{})
}

func TestProxyNoRoute(t *testing.T) {
	p := newProxy(t, `
listeners: [{address: ':8080'}]
clusters: [{name: c, endpoints: ['c:1']}]
routes: [{name: a, match: {package: a}, cluster: c}]
`)
	info := &callinfo.Info{}
	ss := newFakeStream(callinfo.NewContext(context.Background(), info), "/b.v1.S/M")
	err := p.Handler()(nil, ss)
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("call without a route = %v, want UNIMPLEMENTED", err)
	}
	if info.Route != "" || info.Cluster != "" {
		t.Errorf("call info = route %q cluster %q, want both empty", info.Route, info.Cluster)
	}
}

func TestProxyNoMethod(t *testing.T) {
	p := newProxy(t, "listeners: [{address: ':8080'}]\n")
	// A stream whose context has no transport stream has no method.
	err := p.Handler()(nil, &fakeStream{ctx: context.Background()})
	if status.Code(err) != codes.Internal {
		t.Errorf("call without a method = %v, want INTERNAL", err)
	}
}

// A route whose cluster is missing from the snapshot's pool (a table and a
// pool from different configurations) is INTERNAL, after the call record
// names the route.
func TestProxyUnknownCluster(t *testing.T) {
	p := newProxy(t, `
listeners: [{address: ':8080'}]
clusters: [{name: users, endpoints: ['c:1']}]
routes: [{name: users, match: {default: true}, cluster: users}]
`)
	info := &callinfo.Info{}
	ss := newFakeStream(callinfo.NewContext(context.Background(), info), "/b.v1.S/M")
	err := p.Handler()(nil, ss)
	if status.Code(err) != codes.Internal {
		t.Errorf("call to a cluster missing from the pool = %v, want INTERNAL", err)
	}
	if info.Route != "users" || info.Cluster != "users" {
		t.Errorf("call info = route %q cluster %q, want users, users", info.Route, info.Cluster)
	}
}

func TestProxySwap(t *testing.T) {
	p := newProxy(t, "listeners: [{address: ':8080'}]\n")
	first := p.Snapshot()
	next := &router.Snapshot{Table: compile(t, "listeners: [{address: ':8080'}]\n")}
	if prev := p.Swap(next); prev != first {
		t.Error("Swap did not return the previous snapshot")
	}
	if p.Snapshot() != next {
		t.Error("Snapshot is not the swapped-in one")
	}
}
