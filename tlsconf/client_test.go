package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/tlsconf"
)

// upstream is a TLS server that requires client certificates of clientCA.
type upstream struct {
	serverCA, clientCA *testCA
	srv                *tlsServer
	dir                string
	caFile             string
}

func newUpstream(t *testing.T, serverLeaf leafOpts) *upstream {
	t.Helper()
	u := &upstream{serverCA: newCA(t, "upstream CA"), clientCA: newCA(t, "gateway CA"), dir: t.TempDir()}
	leaf := u.serverCA.issue(t, serverLeaf)
	u.srv = startTLSServer(t, &tls.Config{
		Certificates: []tls.Certificate{leaf.tls},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    poolOf(u.clientCA),
		MinVersion:   tls.VersionTLS12,
	})
	u.caFile = filepath.Join(u.dir, "upstream-ca.pem")
	writeFile(t, u.caFile, u.serverCA.pem)
	return u
}

func (u *upstream) clientPair(t *testing.T, name string) tlsconf.CertFiles {
	t.Helper()
	return writePair(t, u.dir, "client", u.clientCA.issue(t, leafOpts{cn: name, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
}

func newClient(t *testing.T, cfg tlsconf.ClientConfig) *tls.Config {
	t.Helper()
	c, err := tlsconf.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func TestNewClientMutualTLS(t *testing.T) {
	u := newUpstream(t, leafOpts{cn: "upstream", ips: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pair := u.clientPair(t, "gateway")
	conf := newClient(t, tlsconf.ClientConfig{CAFile: u.caFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile})
	if conf.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %s, want TLS 1.2", tls.VersionName(conf.MinVersion))
	}
	// The ServerName is empty: the dialled host, 127.0.0.1, is verified.
	_, sr, err := connect(t, u.srv, conf)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tlsconf.PeerIdentity(&sr.state); !ok || id != "gateway" {
		t.Errorf("upstream saw %q, %v; want gateway", id, ok)
	}

	// The certificate is re-read when its files change.
	pair = u.clientPair(t, "gateway-v2")
	_, sr, err = connect(t, u.srv, conf)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tlsconf.PeerIdentity(&sr.state); id != "gateway-v2" {
		t.Errorf("upstream saw %q after the files changed, want gateway-v2", id)
	}

	// A broken replacement keeps the last good certificate.
	writeFile(t, pair.CertFile, []byte("garbage"))
	_, sr, err = connect(t, u.srv, conf)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tlsconf.PeerIdentity(&sr.state); id != "gateway-v2" {
		t.Errorf("upstream saw %q after a broken replacement, want gateway-v2", id)
	}
}

func TestNewClientWithoutCertificate(t *testing.T) {
	u := newUpstream(t, leafOpts{cn: "upstream", ips: []net.IP{net.IPv4(127, 0, 0, 1)}})
	conf := newClient(t, tlsconf.ClientConfig{CAFile: u.caFile})
	if _, _, err := connect(t, u.srv, conf); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %v, want the upstream to require a certificate", err)
	}
}

func TestNewClientServerName(t *testing.T) {
	u := newUpstream(t, leafOpts{cn: "upstream", dns: []string{"upstream.internal"}})
	pair := u.clientPair(t, "gateway")
	for _, tt := range []struct {
		serverName string
		wantOK     bool
	}{
		{"upstream.internal", true},
		{"other.internal", false},
		{"", false}, // 127.0.0.1 is not in the certificate
	} {
		conf := newClient(t, tlsconf.ClientConfig{CAFile: u.caFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile, ServerName: tt.serverName})
		_, _, err := connect(t, u.srv, conf)
		if tt.wantOK && err != nil {
			t.Errorf("ServerName %q: %v", tt.serverName, err)
		}
		var hostErr x509.HostnameError
		if !tt.wantOK && !errors.As(err, &hostErr) {
			t.Errorf("ServerName %q: error %v, want a hostname mismatch", tt.serverName, err)
		}
	}
}

func TestNewClientWrongCA(t *testing.T) {
	u := newUpstream(t, leafOpts{cn: "upstream", ips: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pair := u.clientPair(t, "gateway")
	wrong := filepath.Join(u.dir, "wrong-ca.pem")
	writeFile(t, wrong, newCA(t, "upstream CA").pem)
	conf := newClient(t, tlsconf.ClientConfig{CAFile: wrong, CertFile: pair.CertFile, KeyFile: pair.KeyFile})
	_, _, err := connect(t, u.srv, conf)
	var authErr x509.UnknownAuthorityError
	if !errors.As(err, &authErr) {
		t.Errorf("error %v, want an unknown authority", err)
	}
}

func TestNewClientErrors(t *testing.T) {
	ca := newCA(t, "CA")
	dir := t.TempDir()
	a := writePair(t, dir, "a", ca.issue(t, leafOpts{cn: "a"}))
	b := writePair(t, dir, "b", ca.issue(t, leafOpts{cn: "b"}))
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  tlsconf.ClientConfig
		want []string
	}{
		{"cert without key", tlsconf.ClientConfig{CertFile: a.CertFile}, []string{"KeyFile", "required"}},
		{"key without cert", tlsconf.ClientConfig{KeyFile: a.KeyFile}, []string{"CertFile", "required"}},
		{"missing CA", tlsconf.ClientConfig{CAFile: missing}, []string{"CAFile", missing, "unreadable"}},
		{"garbage CA", tlsconf.ClientConfig{CAFile: garbage}, []string{"CAFile", garbage, "no PEM block"}},
		{"missing cert", tlsconf.ClientConfig{CertFile: missing, KeyFile: a.KeyFile}, []string{"CertFile", missing}},
		{"mismatched key", tlsconf.ClientConfig{CertFile: a.CertFile, KeyFile: b.KeyFile}, []string{"KeyFile", b.KeyFile, "does not match", a.CertFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconf.NewClient(tt.cfg)
			if err == nil {
				t.Fatal("NewClient succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A Client's configs follow the CA bundle file: a replaced bundle is used by
// the next connection, a broken replacement keeps the last good bundle, and
// NewClient's config keeps the bundle it read.
func TestReloadingClientCA(t *testing.T) {
	local := leafOpts{cn: "upstream", ips: []net.IP{net.IPv4(127, 0, 0, 1)}}
	a := newUpstream(t, local)
	// Upstream B: a certificate of another CA (same name), and the same
	// client CA as A.
	caB := newCA(t, "upstream CA")
	srvB := startTLSServer(t, &tls.Config{
		Certificates: []tls.Certificate{caB.issue(t, local).tls},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    poolOf(a.clientCA),
		MinVersion:   tls.VersionTLS12,
	})
	pair := a.clientPair(t, "gateway")
	cfg := tlsconf.ClientConfig{CAFile: a.caFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile}
	c, err := tlsconf.NewReloadingClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := newClient(t, cfg)
	check := func(when string, s *tlsServer, conf *tls.Config, wantOK bool) {
		t.Helper()
		_, _, err := connect(t, s, conf)
		var authErr x509.UnknownAuthorityError
		switch {
		case wantOK && err != nil:
			t.Errorf("%s: %v", when, err)
		case !wantOK && !errors.As(err, &authErr):
			t.Errorf("%s: error %v, want an unknown authority", when, err)
		}
	}
	check("bundle A, upstream A", a.srv, c.Config(), true)
	check("bundle A, upstream B", srvB, c.Config(), false)

	writeFile(t, a.caFile, caB.pem)
	check("bundle replaced by B, upstream B", srvB, c.Config(), true)
	check("bundle replaced by B, upstream A", a.srv, c.Config(), false)
	check("NewClient's config after the replacement, upstream A", a.srv, snapshot, true)

	writeFile(t, a.caFile, []byte("not a bundle"))
	check("broken replacement, upstream B", srvB, c.Config(), true)
}
