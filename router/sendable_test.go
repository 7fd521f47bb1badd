package router_test

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/router"
)

// What gRPC cannot carry as metadata is left out of what is forwarded, and
// nothing else: a UTF-8 or TAB value (the other values of its key kept), a
// key gRPC does not allow; binary values are bytes and always pass.
func TestForwardMetadataLeavesOutWhatGRPCCannotCarry(t *testing.T) {
	in := metadata.MD{
		"cookie":     {"session=abc", "name=caf\u00e9"},
		"x-tab":      {"a\tb"},
		"x-ctl":      {"a\x01b"},
		"x-del":      {"a\x7fb"},
		"x-ok":       {"plain ~ text"},
		"x-blob-bin": {"\x00\xff\t"},
		"x~odd":      {"v"},
		"X-Upper":    {"v"},
	}
	before := in.Copy()
	out := router.ForwardMetadata(in, "")
	want := metadata.MD{
		"cookie":     {"session=abc"},
		"x-ok":       {"plain ~ text"},
		"x-blob-bin": {"\x00\xff\t"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("ForwardMetadata = %q, want %q", out, want)
	}
	if !reflect.DeepEqual(in, before) {
		t.Errorf("ForwardMetadata modified its input: %q", in)
	}
}
