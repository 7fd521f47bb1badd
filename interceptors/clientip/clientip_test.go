package clientip

import (
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestOf(t *testing.T) {
	trusted := prefixes("127.0.0.1/32", "10.0.0.0/8", "::1/128")
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:5000", []string{"203.0.113.7"}, "192.0.2.1"},                      // untrusted peer: XFF ignored
		{"127.0.0.1:5000", nil, "127.0.0.1"},                                          // trusted, no XFF
		{"127.0.0.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},                    // trusted proxy
		{"127.0.0.1:5000", []string{"1.1.1.1, 203.0.113.7, 10.1.1.1"}, "203.0.113.7"}, // right-most untrusted
		{"127.0.0.1:5000", []string{"1.1.1.1", "10.2.2.2"}, "1.1.1.1"},                // several header values
		{"127.0.0.1:5000", []string{"garbage, 10.2.2.2"}, "10.2.2.2"},                 // garbled entry stops the walk
		{"[::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},                        // IPv6
		{"[::ffff:127.0.0.1]:5000", []string{"198.51.100.9"}, "198.51.100.9"},         // mapped v4 peer
		{"10.0.0.2:1", []string{"10.0.0.3"}, "10.0.0.3"},                              // all trusted: the left-most
	} {
		if got := Of(c.peer, c.xff, trusted); got.String() != c.want {
			t.Errorf("Of(%q, %q) = %v, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// ipString gives what ip.String() gives, for every form a peer address
// takes.
func TestIPString(t *testing.T) {
	for _, peer := range []string{"203.0.113.7:443", "127.0.0.1:1", "[::1]:80", "[::ffff:192.0.2.1]:80",
		"[fe80::1%eth0]:9", "[2001:db8::1]:8080", "192.0.2.9"} {
		host, ip := peerHost(peer)
		if !ip.IsValid() {
			t.Fatalf("%s: no address", peer)
		}
		if got, want := ipString(host, ip), ip.String(); got != want {
			t.Errorf("ipString(%q) = %q, want %q", peer, got, want)
		}
	}
}
