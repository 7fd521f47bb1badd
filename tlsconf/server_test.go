package tlsconf_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/tlsconf"
)

func TestSNISelectsCertificate(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	cfg := tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{
		writePair(t, dir, "a", ca.issue(t, leafOpts{cn: "a", dns: []string{"a.test"}})),
		writePair(t, dir, "b", ca.issue(t, leafOpts{cn: "b", dns: []string{"b.test"}})),
		writePair(t, dir, "wild", ca.issue(t, leafOpts{cn: "wild", dns: []string{"*.example.test"}})),
		writePair(t, dir, "api", ca.issue(t, leafOpts{cn: "api", dns: []string{"api.example.test"}})),
	}}
	s := newServer(t, cfg)
	srv := startTLSServer(t, s.TLSConfig())

	tests := []struct {
		serverName string // "" sends no SNI
		wantCN     string
	}{
		{"a.test", "a"},
		{"b.test", "b"},
		{"B.Test", "b"},
		{"www.example.test", "wild"},
		{"api.example.test", "api"}, // an exact name wins over an earlier wildcard
		{"deep.www.example.test", "a"},
		{"unknown.test", "a"},
		{"", "a"},
	}
	for _, tt := range tests {
		t.Run("sni="+tt.serverName, func(t *testing.T) {
			conf := &tls.Config{
				ServerName: tt.serverName,
				// The test looks at which certificate is served, including
				// for names it is not valid for.
				InsecureSkipVerify: true, //nolint:gosec // see above
			}
			c, _, err := connect(t, srv, conf)
			if err != nil {
				t.Fatal(err)
			}
			if got := servedCert(t, c).Subject.CommonName; got != tt.wantCN {
				t.Errorf("served %q, want %q", got, tt.wantCN)
			}
		})
	}

	t.Run("verified", func(t *testing.T) {
		for _, name := range []string{"b.test", "www.example.test"} {
			if _, _, err := connect(t, srv, &tls.Config{ServerName: name, RootCAs: poolOf(ca)}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestMinVersion(t *testing.T) {
	ca := newCA(t, "server CA")
	certs := []tlsconf.CertFiles{writePair(t, t.TempDir(), "s", ca.issue(t, leafOpts{cn: "s", dns: []string{"s.test"}}))}
	client := func(minV, maxV uint16) *tls.Config {
		return &tls.Config{ServerName: "s.test", RootCAs: poolOf(ca), MinVersion: minV, MaxVersion: maxV}
	}

	t.Run("default TLS 1.2", func(t *testing.T) {
		srv := startTLSServer(t, newServer(t, tlsconf.ServerConfig{Certs: certs}).TLSConfig())
		c, _, err := connect(t, srv, client(tls.VersionTLS12, tls.VersionTLS12))
		if err != nil {
			t.Fatal(err)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Errorf("version %s, want TLS 1.2", tls.VersionName(v))
		}
		if _, _, err := connect(t, srv, client(tls.VersionTLS10, tls.VersionTLS11)); err == nil {
			t.Error("TLS 1.1 client connected")
		}
		c, _, err = connect(t, srv, client(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version %s, want TLS 1.3", tls.VersionName(v))
		}
	})

	t.Run("TLS 1.3", func(t *testing.T) {
		srv := startTLSServer(t, newServer(t, tlsconf.ServerConfig{Certs: certs, MinVersion: tls.VersionTLS13}).TLSConfig())
		if _, _, err := connect(t, srv, client(tls.VersionTLS12, tls.VersionTLS12)); err == nil {
			t.Error("TLS 1.2-only client connected")
		}
		c, _, err := connect(t, srv, client(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version %s, want TLS 1.3", tls.VersionName(v))
		}
	})
}

func TestALPN(t *testing.T) {
	ca := newCA(t, "server CA")
	s := newServer(t, tlsconf.ServerConfig{
		Certs:      []tlsconf.CertFiles{writePair(t, t.TempDir(), "s", ca.issue(t, leafOpts{cn: "s", dns: []string{"s.test"}}))},
		NextProtos: []string{"h2", "http/1.1"},
	})
	srv := startTLSServer(t, s.TLSConfig())
	for _, tt := range []struct {
		offer []string
		want  string
	}{
		{[]string{"http/1.1", "h2"}, "h2"},
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
		{nil, ""},
	} {
		c, sr, err := connect(t, srv, &tls.Config{ServerName: "s.test", RootCAs: poolOf(ca), NextProtos: tt.offer})
		if err != nil {
			t.Fatalf("offer %q: %v", tt.offer, err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != tt.want {
			t.Errorf("offer %q: client negotiated %q, want %q", tt.offer, got, tt.want)
		}
		if got := sr.state.NegotiatedProtocol; got != tt.want {
			t.Errorf("offer %q: server negotiated %q, want %q", tt.offer, got, tt.want)
		}
	}
}

// TestHTTPServer serves HTTP/2 with net/http through TLSConfig.
func TestHTTPServer(t *testing.T) {
	ca := newCA(t, "server CA")
	s := newServer(t, tlsconf.ServerConfig{
		Certs:      []tlsconf.CertFiles{writePair(t, t.TempDir(), "s", ca.issue(t, leafOpts{cn: "s", dns: []string{"s.test"}}))},
		NextProtos: []string{"h2", "http/1.1"},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.Proto)) }), //nolint:gosec // G705: a test server echoing the protocol name to its own client
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: ioTimeout,
	}
	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(ln, "", "") }()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: "s.test", RootCAs: poolOf(ca)},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
}

func TestNewServerErrors(t *testing.T) {
	ca := newCA(t, "CA")
	dir := t.TempDir()
	good := writePair(t, dir, "good", ca.issue(t, leafOpts{cn: "good", dns: []string{"good.test"}}))
	other := writePair(t, dir, "other", ca.issue(t, leafOpts{cn: "other", dns: []string{"other.test"}}))
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a pem file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.pem)
	missing := filepath.Join(dir, "missing.pem")
	otherCA := newCA(t, "CA") // same name, other key
	badCRL := filepath.Join(dir, "bad.crl")
	writeFile(t, badCRL, pemBlock("X509 CRL", crlDER(t, ca, otherCA, 7)))
	strangerCRL := filepath.Join(dir, "stranger.crl")
	writeFile(t, strangerCRL, crlPEM(t, newCA(t, "stranger CA"), 7))

	tests := []struct {
		name string
		cfg  tlsconf.ServerConfig
		want []string // substrings of the error
	}{
		{"no certs", tlsconf.ServerConfig{}, []string{"Certs", "at least one"}},
		{"empty key path", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: good.CertFile}}},
			[]string{"Certs[0].KeyFile", "required"}},
		{"missing cert file", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good, {CertFile: missing, KeyFile: good.KeyFile}}},
			[]string{"Certs[1].CertFile", missing, "unreadable"}},
		{"missing key file", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: good.CertFile, KeyFile: missing}}},
			[]string{"Certs[0].KeyFile", missing, "unreadable"}},
		{"garbage cert", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: garbage, KeyFile: good.KeyFile}}},
			[]string{"Certs[0].CertFile", garbage, "no PEM block"}},
		{"cert file holds a key", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: good.KeyFile, KeyFile: good.KeyFile}}},
			[]string{"Certs[0].CertFile", good.KeyFile, "no CERTIFICATE PEM block"}},
		{"key file holds a cert", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: good.CertFile, KeyFile: good.CertFile}}},
			[]string{"Certs[0].KeyFile", good.CertFile, "no PRIVATE KEY PEM block"}},
		{"key does not match cert", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{{CertFile: good.CertFile, KeyFile: other.KeyFile}}},
			[]string{"Certs[0].KeyFile", other.KeyFile, "does not match", good.CertFile}},
		{"bad min version", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, MinVersion: tls.VersionTLS11},
			[]string{"MinVersion"}},
		{"require without CA", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire},
			[]string{"ClientCAFile", "required", "ClientAuthRequire"}},
		{"CA without client auth", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientCAFile: caFile},
			[]string{"ClientCAFile", "ClientAuthNone"}},
		{"CRL without CA", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequest, CRLFile: badCRL},
			[]string{"CRLFile", "requires ClientCAFile"}},
		{"unknown client auth", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: 7},
			[]string{"ClientAuth", "7"}},
		{"missing CA file", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire, ClientCAFile: missing},
			[]string{"ClientCAFile", missing, "unreadable"}},
		{"garbage CA file", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire, ClientCAFile: garbage},
			[]string{"ClientCAFile", garbage, "no PEM block"}},
		{"garbage CRL", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire, ClientCAFile: caFile, CRLFile: garbage},
			[]string{"CRLFile", garbage}},
		{"CRL signed by another key", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire, ClientCAFile: caFile, CRLFile: badCRL},
			[]string{"CRLFile", badCRL, "signature invalid", caFile}},
		{"CRL of another CA", tlsconf.ServerConfig{Certs: []tlsconf.CertFiles{good}, ClientAuth: tlsconf.ClientAuthRequire, ClientCAFile: caFile, CRLFile: strangerCRL},
			[]string{"CRLFile", strangerCRL, "signature invalid", "stranger CA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tlsconf.NewServer(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("NewServer succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	ca := newCA(t, "CA")
	s, err := tlsconf.NewServer(tlsconf.ServerConfig{
		Certs: []tlsconf.CertFiles{writePair(t, t.TempDir(), "s", ca.issue(t, leafOpts{cn: "s"}))},
	}, tlsconf.WithReloadInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(s.Close)
	}
	wg.Wait()
	s.Close()
	if s.TLSConfig() == nil {
		t.Fatal("TLSConfig after Close returned nil")
	}
}
