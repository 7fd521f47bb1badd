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

// reloadFixture serves one certificate for r.test from files the test
// replaces.
type reloadFixture struct {
	ca   *testCA
	dir  string
	cert tlsconf.CertFiles
	logs *logBuffer
	srv  *tlsServer
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	f := &reloadFixture{ca: newCA(t, "server CA"), dir: t.TempDir(), logs: &logBuffer{}}
	f.cert = writePair(t, f.dir, "server", f.ca.issue(t, leafOpts{cn: "v1", dns: []string{"r.test"}}))
	s := newServer(t, tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{f.cert}}, tlsconf.WithLogger(f.logs.logger()))
	f.srv = startTLSServer(t, s.TLSConfig())
	return f
}

func (f *reloadFixture) client() *tls.Config {
	return &tls.Config{ServerName: "r.test", RootCAs: poolOf(f.ca)}
}

// served returns the common name of the certificate a new connection gets.
func (f *reloadFixture) served(t *testing.T) string {
	t.Helper()
	c, _, err := connect(t, f.srv, f.client())
	if err != nil {
		t.Fatal(err)
	}
	cn := servedCert(t, c).Subject.CommonName
	_ = c.Close()
	return cn
}

func TestReloadCertificate(t *testing.T) {
	f := newReloadFixture(t)
	old, _, err := connect(t, f.srv, f.client())
	if err != nil {
		t.Fatal(err)
	}
	writePair(t, f.dir, "server", f.ca.issue(t, leafOpts{cn: "v2", dns: []string{"r.test"}}))
	eventually(t, "the new certificate", func() bool { return f.served(t) == "v2" })

	// The connection made before the reload is untouched.
	if err := ping(old); err != nil {
		t.Fatalf("connection established before the reload: %v", err)
	}
	if cn := servedCert(t, old).Subject.CommonName; cn != "v1" {
		t.Errorf("old connection's certificate %q, want v1", cn)
	}
	if !strings.Contains(f.logs.String(), "certificate reloaded") {
		t.Errorf("reload not logged:\n%s", f.logs)
	}
}

func TestReloadBrokenFileKeepsPrevious(t *testing.T) {
	f := newReloadFixture(t)
	writeFile(t, f.cert.CertFile, []byte("garbage\x00\x01"))
	eventually(t, "the failure to be logged", func() bool {
		return strings.Contains(f.logs.String(), "reload failed")
	})
	if logs := f.logs.String(); !strings.Contains(logs, f.cert.CertFile) || !strings.Contains(logs, "no PEM block") {
		t.Errorf("log does not name the file and the problem:\n%s", logs)
	}
	for range 3 {
		if cn := f.served(t); cn != "v1" {
			t.Fatalf("served %q after a broken replacement, want v1", cn)
		}
	}
	// The next change is tried again.
	writePair(t, f.dir, "server", f.ca.issue(t, leafOpts{cn: "v2", dns: []string{"r.test"}}))
	eventually(t, "the repaired certificate", func() bool { return f.served(t) == "v2" })
}

// TestReloadCertBeforeKey replaces the certificate first and the key a
// while later: the mismatch in between keeps the old pair.
func TestReloadCertBeforeKey(t *testing.T) {
	f := newReloadFixture(t)
	next := f.ca.issue(t, leafOpts{cn: "v2", dns: []string{"r.test"}})
	writeFile(t, f.cert.CertFile, next.certPEM)
	eventually(t, "the mismatch to be logged", func() bool {
		return strings.Contains(f.logs.String(), "does not match")
	})
	if cn := f.served(t); cn != "v1" {
		t.Fatalf("served %q with a mismatched pair on disk, want v1", cn)
	}
	writeFile(t, f.cert.KeyFile, next.keyPEM)
	eventually(t, "the new pair", func() bool { return f.served(t) == "v2" })
}

func TestReloadStopsAfterClose(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	cert := writePair(t, dir, "server", ca.issue(t, leafOpts{cn: "v1", dns: []string{"r.test"}}))
	s, err := tlsconf.NewServer(tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{cert}}, tlsconf.WithReloadInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	srv := startTLSServer(t, s.TLSConfig())
	writePair(t, dir, "server", ca.issue(t, leafOpts{cn: "v2", dns: []string{"r.test"}}))
	time.Sleep(100 * time.Millisecond) // ten intervals
	c, _, err := connect(t, srv, &tls.Config{ServerName: "r.test", RootCAs: poolOf(ca)})
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCert(t, c).Subject.CommonName; cn != "v1" {
		t.Errorf("served %q after Close, want v1", cn)
	}
}

func TestReloadClientCA(t *testing.T) {
	serverCA, ca1, ca2 := newCA(t, "server CA"), newCA(t, "client CA 1"), newCA(t, "client CA 2")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "clients.pem")
	writeFile(t, caFile, ca1.pem)
	logs := &logBuffer{}
	s := newServer(t, tlsconf.ServerConfig{
		Certs:        []tlsconf.CertFiles{writePair(t, dir, "server", serverCA.issue(t, leafOpts{cn: "gw", dns: []string{"gw.test"}}))},
		ClientAuth:   tlsconf.ClientAuthRequire,
		ClientCAFile: caFile,
	}, tlsconf.WithLogger(logs.logger()))
	srv := startTLSServer(t, s.TLSConfig())
	client := func(ca *testCA, cn string) *tls.Config {
		leaf := ca.issue(t, leafOpts{cn: cn, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		// GetClientCertificate sends the certificate even when the server
		// does not list its CA, so that the server has to reject it.
		return &tls.Config{ServerName: "gw.test", RootCAs: poolOf(serverCA), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &leaf.tls, nil
		}}
	}
	client1, client2 := client(ca1, "one"), client(ca2, "two")

	old, _, err := connect(t, srv, client1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := connect(t, srv, client2); err == nil {
		t.Fatal("client of CA 2 accepted before the reload")
	}

	// A broken bundle keeps CA 1.
	writeFile(t, caFile, []byte("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"))
	eventually(t, "the failure to be logged", func() bool {
		return strings.Contains(logs.String(), "client CA/CRL reload failed")
	})
	if _, _, err := connect(t, srv, client1); err != nil {
		t.Fatalf("client of CA 1 rejected after a broken bundle: %v", err)
	}

	writeFile(t, caFile, ca2.pem)
	eventually(t, "CA 2 to be trusted", func() bool {
		_, _, err := connect(t, srv, client2)
		return err == nil
	})
	_, _, err = connect(t, srv, client1)
	if err == nil {
		t.Fatal("client of CA 1 accepted after the reload")
	}
	if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("error %v, want an unknown authority", err)
	}
	if err := ping(old); err != nil {
		t.Errorf("connection established before the reload: %v", err)
	}
}
