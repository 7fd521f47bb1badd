package tlsconf_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/tlsconf"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteDevCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev", "certs")
	files, err := tlsconf.WriteDevCerts(dir, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("directory mode %o, want 700", m)
	}
	for _, p := range []string{files.CAKey, files.ServerKey, files.ClientKey} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", p, m)
		}
	}
	for _, p := range []string{files.CACert, files.ServerCert, files.ClientCert} {
		if m := mode(t, p); m != 0o644 {
			t.Errorf("%s: mode %o, want 644", p, m)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 {
		t.Errorf("%d files in %s, want 6 (no temporary files left)", len(entries), dir)
	}

	ca, server, client := readCert(t, files.CACert), readCert(t, files.ServerCert), readCert(t, files.ClientCert)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots}); err == nil {
		t.Error("server certificate verified for example.com")
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if id := tlsconf.Identity(client); id != "spiffe://edgegate.dev/client" {
		t.Errorf("client Identity %q", id)
	}
	if client.Subject.CommonName != "dev-client" {
		t.Errorf("client CN %q", client.Subject.CommonName)
	}
	for _, c := range []*x509.Certificate{ca, server, client} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", c.Subject.CommonName, c.PublicKey)
		}
	}
	const day = 24 * time.Hour
	for _, tt := range []struct {
		cert *x509.Certificate
		want time.Duration
	}{{ca, 3650 * day}, {server, 365 * day}, {client, 365 * day}} {
		if got := tt.cert.NotAfter.Sub(tt.cert.NotBefore); got != tt.want {
			t.Errorf("%s: validity %v, want %v", tt.cert.Subject.CommonName, got, tt.want)
		}
	}
	if !ca.IsCA || server.IsCA || client.IsCA {
		t.Error("only the CA may be a CA")
	}

	// Without force nothing is overwritten.
	before, err := os.ReadFile(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconf.WriteDevCerts(dir, nil, false); err == nil || !strings.Contains(err.Error(), files.CACert) {
		t.Errorf("second call: error %v, want one naming %s", err, files.CACert)
	}
	if after, _ := os.ReadFile(files.CACert); !bytes.Equal(before, after) {
		t.Error("CA overwritten without force")
	}
	if _, err := tlsconf.WriteDevCerts(dir, nil, true); err != nil {
		t.Fatalf("with force: %v", err)
	}
	if after, _ := os.ReadFile(files.CACert); bytes.Equal(before, after) {
		t.Error("CA not overwritten with force")
	}
}

func TestWriteDevCertsRefusesAnyExistingFile(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "client.key")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconf.WriteDevCerts(dir, nil, false); err == nil || !strings.Contains(err.Error(), existing) {
		t.Fatalf("error %v, want one naming %s", err, existing)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ca.crt written although the call failed: %v", err)
	}
}

func TestWriteDevCertsHosts(t *testing.T) {
	files, err := tlsconf.WriteDevCerts(t.TempDir(), []string{"api.local", "10.1.2.3", "[fd00::1]"}, false)
	if err != nil {
		t.Fatal(err)
	}
	server := readCert(t, files.ServerCert)
	if !slices.Equal(server.DNSNames, []string{"api.local"}) {
		t.Errorf("DNS names %q", server.DNSNames)
	}
	if len(server.IPAddresses) != 2 || !server.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) || !server.IPAddresses[1].Equal(net.ParseIP("fd00::1")) {
		t.Errorf("IP addresses %v", server.IPAddresses)
	}
	if _, err := tlsconf.WriteDevCerts(t.TempDir(), []string{"ok", " "}, false); err == nil || !strings.Contains(err.Error(), "hosts[1]") {
		t.Errorf("empty host: error %v", err)
	}
}

// TestDevCertsHandshake runs mutual TLS with the development PKI through
// NewServer and NewClient.
func TestDevCertsHandshake(t *testing.T) {
	files, err := tlsconf.WriteDevCerts(t.TempDir(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, tlsconf.ServerConfig{
		Certs:        []tlsconf.CertFiles{{CertFile: files.ServerCert, KeyFile: files.ServerKey}},
		ClientAuth:   tlsconf.ClientAuthRequire,
		ClientCAFile: files.CACert,
	})
	srv := startTLSServer(t, s.TLSConfig())
	for _, serverName := range []string{"", "localhost"} {
		conf := newClient(t, tlsconf.ClientConfig{CAFile: files.CACert, CertFile: files.ClientCert, KeyFile: files.ClientKey, ServerName: serverName})
		_, sr, err := connect(t, srv, conf)
		if err != nil {
			t.Fatalf("ServerName %q: %v", serverName, err)
		}
		if id, ok := tlsconf.PeerIdentity(&sr.state); !ok || id != "spiffe://edgegate.dev/client" {
			t.Errorf("PeerIdentity = %q, %v", id, ok)
		}
	}
	// Without the client certificate the server refuses.
	conf := newClient(t, tlsconf.ClientConfig{CAFile: files.CACert})
	if _, _, err := connect(t, srv, conf); err == nil {
		t.Error("handshake without a client certificate succeeded")
	}
}
