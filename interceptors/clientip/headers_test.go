package clientip

import (
	"net/netip"
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// The forwarding rule: a client's forwarding headers are dropped unless
// the peer is a trusted proxy, whose X-Forwarded-For gets the peer
// appended and whose X-Forwarded-Proto, -Host and Forwarded are kept;
// x-real-ip is always the gateway's client IP.
func TestHeaders(t *testing.T) {
	trusted := prefixes("10.0.0.0/8")
	sent := callinfo.Forwarding{
		For:       []string{"203.0.113.7"},
		Proto:     []string{"https"},
		Host:      []string{"app.example"},
		Forwarded: []string{"for=203.0.113.7;proto=https"},
		Authority: "gw.internal:8443",
	}
	for _, c := range []struct {
		name   string
		peer   string
		client string
		f      callinfo.Forwarding
		tls    bool
		want   metadata.MD
	}{
		{"untrusted peer: the client's dropped", "192.0.2.1:5000", "192.0.2.1", sent, false, metadata.MD{
			"x-forwarded-for": {"192.0.2.1"}, "x-forwarded-proto": {"http"}, "x-forwarded-host": {"gw.internal:8443"}, "x-real-ip": {"192.0.2.1"},
		}},
		{"untrusted peer over TLS", "192.0.2.1:5000", "192.0.2.1", sent, true, metadata.MD{
			"x-forwarded-for": {"192.0.2.1"}, "x-forwarded-proto": {"https"}, "x-forwarded-host": {"gw.internal:8443"}, "x-real-ip": {"192.0.2.1"},
		}},
		{"trusted proxy: its own kept, the peer appended", "10.1.2.3:5000", "203.0.113.7", sent, false, metadata.MD{
			"x-forwarded-for": {"203.0.113.7, 10.1.2.3"}, "x-forwarded-proto": {"https"}, "x-forwarded-host": {"app.example"},
			"x-real-ip": {"203.0.113.7"}, "forwarded": {"for=203.0.113.7;proto=https"},
		}},
		{"trusted proxy that sent none", "10.1.2.3:5000", "10.1.2.3", callinfo.Forwarding{Authority: "gw.internal"}, true, metadata.MD{
			"x-forwarded-for": {"10.1.2.3"}, "x-forwarded-proto": {"https"}, "x-forwarded-host": {"gw.internal"}, "x-real-ip": {"10.1.2.3"},
		}},
		{"trusted proxy, several values, one not printable", "10.1.2.3:5000", "198.51.100.1",
			callinfo.Forwarding{For: []string{"198.51.100.9", "caf\u00e9", "198.51.100.1"}, Proto: []string{"\t"}}, false, metadata.MD{
				"x-forwarded-for": {"198.51.100.9, 198.51.100.1, 10.1.2.3"}, "x-forwarded-proto": {"http"}, "x-real-ip": {"198.51.100.1"},
			}},
		{"IPv6 peer", "[2001:db8::1]:5000", "2001:db8::1", callinfo.Forwarding{}, false, metadata.MD{
			"x-forwarded-for": {"2001:db8::1"}, "x-forwarded-proto": {"http"}, "x-real-ip": {"2001:db8::1"},
		}},
		{"no peer address", "", "", sent, false, metadata.MD{
			"x-forwarded-proto": {"http"}, "x-forwarded-host": {"gw.internal:8443"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var client netip.Addr
			if c.client != "" {
				client = netip.MustParseAddr(c.client)
			}
			if got := Of(c.peer, c.f.For, trusted); got != client {
				t.Errorf("Of = %v, want %v", got, client)
			}
			if got := Headers(c.peer, client, c.f, trusted, c.tls); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Headers =\n %q\nwant\n %q", got, c.want)
			}
		})
	}
}

// BenchmarkHeaders is the cost of a call's forwarding headers from a
// client that is not a trusted proxy (the common case).
func BenchmarkHeaders(b *testing.B) {
	f := callinfo.Forwarding{Authority: "api.example.com"}
	client := netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	for b.Loop() {
		_ = Headers("192.0.2.7:40000", client, f, nil, true)
	}
}
