package config

import (
	"testing"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

func TestDidYouMean(t *testing.T) {
	for _, c := range []struct {
		msg  proto.Message
		key  string
		want string // "" for no suggestion
	}{
		{&configv1.Listener{}, "adress", "address"},
		{&configv1.Listener{}, "nmae", "name"},   // a swap is one edit
		{&configv1.Listener{}, "tsl", "tls"},     // also in a short key
		{&configv1.Listener{}, "Name", "name"},   // letter case is free
		{&configv1.Listener{}, "ab", ""},         // more than half of the key
		{&configv1.Listener{}, "frobnicate", ""}, // too far from every field
		{&configv1.Config{}, "listner", "listeners"},
		{&configv1.Config{}, "rateLimit", "rateLimits"},            // lowerCamel key, lowerCamel name
		{&configv1.Cluster{}, "conectTimeout", "connectTimeout"},   // lowerCamel
		{&configv1.Cluster{}, "conect_timeout", "connect_timeout"}, // snake_case
		{&configv1.Cluster{}, "health", "health_check"},            // the one field it starts
		{&configv1.RouteMatch{}, "servce", "service"},
		{&configv1.CertificateFiles{}, "ce_file", ""}, // cert_file and key_file both 2 edits away
		{&configv1.JWTProvider{}, "jwks", ""},         // jwks_file, jwks_url and jwks_ca_file start with it
	} {
		md := c.msg.ProtoReflect().Descriptor()
		_, got := didYouMean(md, c.key)
		if got != c.want {
			t.Errorf("didYouMean(%s, %q) = %q, want %q", md.Name(), c.key, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"name", "name", 0}, {"nmae", "name", 1},
		{"adress", "address", 1}, {"listner", "listeners", 2}, {"tls", "lts", 1}, {"kitten", "sitting", 3},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// messageAt follows keys in either form and names the path as protovalidate
// does; no message there, no descriptor.
func TestMessageAt(t *testing.T) {
	for path, want := range map[string]string{
		"":                        "Config",
		"listeners[0]":            "Listener",
		"rateLimits[1].limits[0]": "RateLimit",
		"routes[2].match":         "RouteMatch",
		"listeners[0].address":    "",
		"nowhere[0]":              "",
	} {
		md, canon := messageAt(path)
		got := ""
		if md != nil {
			got = string(md.Name())
		}
		if got != want {
			t.Errorf("messageAt(%q) = %q, want %q", path, got, want)
		}
		if path == "rateLimits[1].limits[0]" && canon != "rate_limits[1].limits[0]" {
			t.Errorf("messageAt(%q) path = %q, want rate_limits[1].limits[0]", path, canon)
		}
	}
}
