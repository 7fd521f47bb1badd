package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/edgegate/edgegate/tlsconf"
)

func TestIdentity(t *testing.T) {
	ca := newCA(t, "CA")
	tests := []struct {
		name string
		opts leafOpts
		want string
	}{
		{"spiffe wins", leafOpts{cn: "cn", dns: []string{"dns.test"}, uris: []string{"spiffe://td.test/svc/a"}}, "spiffe://td.test/svc/a"},
		{"first spiffe of several URIs", leafOpts{cn: "cn", uris: []string{"https://x.test/", "spiffe://td.test/one", "spiffe://td.test/two"}}, "spiffe://td.test/one"},
		{"scheme is case-insensitive", leafOpts{uris: []string{"SPIFFE://td.test/up"}}, "spiffe://td.test/up"},
		{"non-spiffe URI falls to DNS", leafOpts{cn: "cn", dns: []string{"first.test", "second.test"}, uris: []string{"https://x.test/"}}, "first.test"},
		{"common name last", leafOpts{cn: "just-cn"}, "just-cn"},
		{"nothing", leafOpts{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tlsconf.Identity(ca.issue(t, tt.opts).cert); got != tt.want {
				t.Errorf("Identity = %q, want %q", got, tt.want)
			}
		})
	}
	if got := tlsconf.Identity(nil); got != "" {
		t.Errorf("Identity(nil) = %q", got)
	}
}

func TestPeerIdentity(t *testing.T) {
	ca := newCA(t, "CA")
	leaf := ca.issue(t, leafOpts{cn: "svc"}).cert
	tests := []struct {
		name   string
		cs     *tls.ConnectionState
		wantID string
		wantOK bool
	}{
		{"nil state", nil, "", false},
		{"no certificate", &tls.ConnectionState{}, "", false},
		{"unverified certificate", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, "", false},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, "", false},
		{"verified", &tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{leaf},
			VerifiedChains:   [][]*x509.Certificate{{leaf, ca.cert}},
		}, "svc", true},
		{"verified without a name", &tls.ConnectionState{
			VerifiedChains: [][]*x509.Certificate{{ca.issue(t, leafOpts{}).cert, ca.cert}},
		}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := tlsconf.PeerIdentity(tt.cs)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("PeerIdentity = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}
