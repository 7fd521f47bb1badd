package router_test

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/router"
)

// transportHeaders are set by the transport on each hop and never copied.
var transportHeaders = []string{
	":authority", ":path", ":method", ":scheme",
	"content-type", "user-agent", "te", "host", "connection",
	"grpc-accept-encoding", "grpc-encoding", "grpc-timeout",
	"grpc-status", "grpc-message", "grpc-status-details-bin",
}

func incomingMD() metadata.MD {
	md := metadata.MD{
		"x-tenant":      {"acme", "beta"},
		"authorization": {"Bearer t0ken"},
		"trace-bin":     {"\x00\x01\xff"},
		"traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"x-request-id":  {"client-id"},
	}
	for _, k := range transportHeaders {
		md[k] = []string{"from-client"}
	}
	return md
}

func TestForwardMetadata(t *testing.T) {
	in := incomingMD()
	before := in.Copy()

	out := router.ForwardMetadata(in, "gw-id")

	for _, k := range transportHeaders {
		if v, ok := out[k]; ok {
			t.Errorf("forwarded %s = %q, want it dropped", k, v)
		}
	}
	for k, want := range map[string][]string{
		"x-tenant":      {"acme", "beta"},
		"authorization": {"Bearer t0ken"},
		"trace-bin":     {"\x00\x01\xff"},
		"traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"x-request-id":  {"gw-id"},
	} {
		if got := out[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("forwarded %s = %q, want %q", k, got, want)
		}
	}
	if len(out) != 5 {
		t.Errorf("forwarded %d keys, want 5: %v", len(out), out)
	}
	if !reflect.DeepEqual(in, before) {
		t.Errorf("ForwardMetadata modified its input:\n got %v\nwant %v", in, before)
	}
}

func TestForwardMetadataNoRequestID(t *testing.T) {
	out := router.ForwardMetadata(metadata.Pairs("x-request-id", "client-id", "k", "v"), "")
	want := metadata.Pairs("x-request-id", "client-id", "k", "v")
	if !reflect.DeepEqual(out, want) {
		t.Errorf("ForwardMetadata(_, \"\") = %v, want the client's id kept: %v", out, want)
	}

	out = router.ForwardMetadata(nil, "")
	if out == nil || len(out) != 0 {
		t.Errorf("ForwardMetadata(nil, \"\") = %#v, want an empty MD", out)
	}
	out = router.ForwardMetadata(nil, "id")
	if got := out.Get("x-request-id"); !reflect.DeepEqual(got, []string{"id"}) {
		t.Errorf("ForwardMetadata(nil, id) x-request-id = %q, want [id]", got)
	}
	// The result is the caller's: adding to it leaves the input alone.
	in := metadata.Pairs("k", "v")
	out = router.ForwardMetadata(in, "id")
	out.Set("new", "x")
	if _, ok := in["new"]; ok {
		t.Error("the result of ForwardMetadata shares its map with the input")
	}
}

func TestResponseMetadata(t *testing.T) {
	md := metadata.MD{
		"x-custom":        {"1", "2"},
		"x-request-id":    {"id"},
		"details-bin":     {"\x00"},
		"x-ratelimit-max": {"10"},
	}
	for _, k := range transportHeaders {
		md[k] = []string{"from-upstream"}
	}
	out := router.ResponseMetadata(md)
	want := metadata.MD{
		"x-custom":        {"1", "2"},
		"x-request-id":    {"id"},
		"details-bin":     {"\x00"},
		"x-ratelimit-max": {"10"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("ResponseMetadata = %v, want %v", out, want)
	}
	if router.ResponseMetadata(nil) != nil {
		t.Error("ResponseMetadata(nil) != nil")
	}
}
