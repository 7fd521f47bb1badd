package ipfilter

import (
	"net/netip"
	"testing"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

func TestFilter(t *testing.T) {
	f, err := NewFilter(&configv1.IPFilter{Allow: []string{"10.0.0.0/8", "2001:db8::/32"}, Block: []string{"10.6.0.0/16"}}, "ip_filter")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"10.1.2.3": true, "10.6.1.1": false, "192.0.2.1": false, "2001:db8::1": true, "2001:db9::1": false} {
		if ok, _ := f.Allows(netip.MustParseAddr(ip)); ok != want {
			t.Errorf("%s: %v, want %v", ip, ok, want)
		}
	}
	if f, _ := NewFilter(nil, "ip_filter"); f != nil {
		t.Error("an empty filter must be nil (allows all)")
	}
	var none *Filter
	if ok, _ := none.Allows(netip.MustParseAddr("192.0.2.1")); !ok {
		t.Error("a nil filter must allow")
	}
	if _, err := NewFilter(&configv1.IPFilter{Allow: []string{"nope"}}, "ip_filter"); err == nil {
		t.Error("a bad CIDR must be an error")
	}
}
