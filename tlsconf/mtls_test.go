package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/tlsconf"
)

// mtlsFixture is a server certificate, a client CA with a CRL, and client
// certificates of every kind.
type mtlsFixture struct {
	serverCA, clientCA *testCA
	dir                string
	cert               tlsconf.CertFiles
	caFile, crlFile    string

	spiffe, dnsOnly, cnOnly, expired, notYet, serverOnly, revoked, foreign *testLeaf
}

const revokedSerial = 666

func newMTLSFixture(t *testing.T) *mtlsFixture {
	t.Helper()
	f := &mtlsFixture{serverCA: newCA(t, "server CA"), clientCA: newCA(t, "client CA"), dir: t.TempDir()}
	f.cert = writePair(t, f.dir, "server", f.serverCA.issue(t, leafOpts{cn: "gw", dns: []string{"gw.test"}}))
	f.caFile = filepath.Join(f.dir, "clients-ca.pem")
	writeFile(t, f.caFile, f.clientCA.pem)
	f.crlFile = filepath.Join(f.dir, "clients.crl")
	writeFile(t, f.crlFile, crlPEM(t, f.clientCA, revokedSerial, 4242))

	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	f.spiffe = f.clientCA.issue(t, leafOpts{cn: "svc", dns: []string{"svc.test"}, uris: []string{"spiffe://edgegate.test/ns/prod/sa/orders"}, usage: client})
	f.dnsOnly = f.clientCA.issue(t, leafOpts{cn: "svc", dns: []string{"billing.test"}, uris: []string{"https://billing.test/"}, usage: client})
	f.cnOnly = f.clientCA.issue(t, leafOpts{cn: "batch-job", usage: client})
	f.expired = f.clientCA.issue(t, leafOpts{cn: "old", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour), usage: client})
	f.notYet = f.clientCA.issue(t, leafOpts{cn: "future", notBefore: time.Now().Add(time.Hour), notAfter: time.Now().Add(48 * time.Hour), usage: client})
	f.serverOnly = f.clientCA.issue(t, leafOpts{cn: "server-only", usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	f.revoked = f.clientCA.issue(t, leafOpts{cn: "revoked", serial: revokedSerial, usage: client})
	f.foreign = newCA(t, "client CA").issue(t, leafOpts{cn: "svc", usage: client}) // same CA name, other key
	return f
}

func (f *mtlsFixture) config(auth tlsconf.ClientAuth) tlsconf.ServerConfig {
	return tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{f.cert}, ClientAuth: auth, ClientCAFile: f.caFile, CRLFile: f.crlFile}
}

func (f *mtlsFixture) client(leaf *testLeaf, maxVersion uint16) *tls.Config {
	c := &tls.Config{ServerName: "gw.test", RootCAs: poolOf(f.serverCA), MaxVersion: maxVersion}
	if leaf != nil {
		c.Certificates = []tls.Certificate{leaf.tls}
	}
	return c
}

type mtlsCase struct {
	name    string
	leaf    *testLeaf
	wantOK  bool
	wantID  string // when wantOK; "" means PeerIdentity reports none
	wantErr string // when !wantOK, in the error
}

func runMTLSCases(t *testing.T, f *mtlsFixture, srv *tlsServer, cases []mtlsCase) {
	t.Helper()
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range cases {
			t.Run(tls.VersionName(version)+"/"+tc.name, func(t *testing.T) {
				_, sr, err := connect(t, srv, f.client(tc.leaf, version))
				if !tc.wantOK {
					if err == nil {
						t.Fatal("handshake succeeded, want failure")
					}
					if !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error %q does not contain %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				id, ok := tlsconf.PeerIdentity(&sr.state)
				if ok != (tc.wantID != "") || id != tc.wantID {
					t.Errorf("PeerIdentity = %q, %v; want %q, %v", id, ok, tc.wantID, tc.wantID != "")
				}
			})
		}
	}
}

func TestMutualTLSRequire(t *testing.T) {
	f := newMTLSFixture(t)
	srv := startTLSServer(t, newServer(t, f.config(tlsconf.ClientAuthRequire)).TLSConfig())
	runMTLSCases(t, f, srv, []mtlsCase{
		{name: "no certificate", wantErr: "didn't provide a certificate"},
		{name: "expired", leaf: f.expired, wantErr: "expired"},
		{name: "not yet valid", leaf: f.notYet, wantErr: "not yet valid"},
		{name: "other CA", leaf: f.foreign, wantErr: "unknown authority"},
		{name: "revoked", leaf: f.revoked, wantErr: "revoked"},
		{name: "server auth only", leaf: f.serverOnly, wantErr: "key usage"},
		{name: "spiffe", leaf: f.spiffe, wantOK: true, wantID: "spiffe://edgegate.test/ns/prod/sa/orders"},
		{name: "dns", leaf: f.dnsOnly, wantOK: true, wantID: "billing.test"},
		{name: "common name", leaf: f.cnOnly, wantOK: true, wantID: "batch-job"},
	})
}

func TestMutualTLSRequest(t *testing.T) {
	f := newMTLSFixture(t)
	srv := startTLSServer(t, newServer(t, f.config(tlsconf.ClientAuthRequest)).TLSConfig())
	runMTLSCases(t, f, srv, []mtlsCase{
		{name: "no certificate", wantOK: true},
		{name: "expired", leaf: f.expired, wantErr: "expired"},
		{name: "other CA", leaf: f.foreign, wantErr: "unknown authority"},
		{name: "revoked", leaf: f.revoked, wantErr: "revoked"},
		{name: "spiffe", leaf: f.spiffe, wantOK: true, wantID: "spiffe://edgegate.test/ns/prod/sa/orders"},
	})
}

// TestMutualTLSRequestWithoutCA accepts any client certificate but never
// reports an identity for it, since nothing verified it.
func TestMutualTLSRequestWithoutCA(t *testing.T) {
	f := newMTLSFixture(t)
	cfg := tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{f.cert}, ClientAuth: tlsconf.ClientAuthRequest}
	srv := startTLSServer(t, newServer(t, cfg).TLSConfig())
	for _, leaf := range []*testLeaf{nil, f.foreign, f.spiffe} {
		_, sr, err := connect(t, srv, f.client(leaf, 0))
		if err != nil {
			t.Fatal(err)
		}
		if leaf != nil && len(sr.state.PeerCertificates) == 0 {
			t.Error("server did not receive the client certificate")
		}
		if id, ok := tlsconf.PeerIdentity(&sr.state); ok {
			t.Errorf("PeerIdentity = %q, true for an unverified certificate", id)
		}
	}
}

func TestCRLInDER(t *testing.T) {
	f := newMTLSFixture(t)
	writeFile(t, f.crlFile, crlDER(t, f.clientCA, f.clientCA, revokedSerial))
	srv := startTLSServer(t, newServer(t, f.config(tlsconf.ClientAuthRequire)).TLSConfig())
	if _, _, err := connect(t, srv, f.client(f.revoked, 0)); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked certificate: error %v, want a revocation", err)
	}
	if _, _, err := connect(t, srv, f.client(f.cnOnly, 0)); err != nil {
		t.Errorf("valid certificate rejected: %v", err)
	}
}

// TestRevocationAppliesToResumedSessions revokes a client whose session
// was resumable: the resumed handshake must fail too.
func TestRevocationAppliesToResumedSessions(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			f := newMTLSFixture(t)
			leaf := f.clientCA.issue(t, leafOpts{cn: "soon-revoked", serial: 9001, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			srv := startTLSServer(t, newServer(t, f.config(tlsconf.ClientAuthRequire)).TLSConfig())
			conf := f.client(leaf, version)
			conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if _, _, err := connect(t, srv, conf); err != nil {
				t.Fatal(err)
			}
			c, _, err := connect(t, srv, conf)
			if err != nil {
				t.Fatal(err)
			}
			if !c.ConnectionState().DidResume {
				t.Fatal("second connection did not resume; the test proves nothing")
			}
			writeFile(t, f.crlFile, crlPEM(t, f.clientCA, revokedSerial, 9001))
			eventually(t, "the revocation to apply", func() bool {
				_, _, err := connect(t, srv, conf)
				if err != nil && !strings.Contains(err.Error(), "revoked") {
					t.Fatalf("error %v, want a revocation", err)
				}
				return err != nil
			})
		})
	}
}
