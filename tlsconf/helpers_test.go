package tlsconf_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/tlsconf"
)

// Test PKI: CAs and leaves made on the fly, with chosen names, validity and
// serials.

var nextSerial atomic.Int64

func init() { nextSerial.Store(1000) }

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newCA returns a self-signed CA named cn. Two CAs with the same cn have
// the same subject and different keys.
func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(nextSerial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der)}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// leafOpts describes a leaf certificate. Zero values get defaults: valid
// from an hour ago for a day, a fresh serial, usable for server and client
// authentication.
type leafOpts struct {
	cn        string
	dns       []string
	ips       []net.IP
	uris      []string
	notBefore time.Time
	notAfter  time.Time
	serial    int64
	usage     []x509.ExtKeyUsage
}

type testLeaf struct {
	cert    *x509.Certificate
	certPEM []byte // leaf only
	keyPEM  []byte
	tls     tls.Certificate
}

func (ca *testCA) issue(t testing.TB, o leafOpts) *testLeaf {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	if o.serial == 0 {
		o.serial = nextSerial.Add(1)
	}
	if o.usage == nil {
		o.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(o.serial),
		Subject:      pkix.Name{CommonName: o.cn},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  o.usage,
		DNSNames:     o.dns,
		IPAddresses:  o.ips,
	}
	for _, s := range o.uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLeaf{cert: cert, certPEM: pemBlock("CERTIFICATE", der), keyPEM: pemBlock("PRIVATE KEY", keyDER)}
	l.tls = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	return l
}

// crlDER returns a CRL signed by signer listing serials, with the issuer
// name of ca (normally ca == signer).
func crlDER(t testing.TB, ca, signer *testCA, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(nextSerial.Add(1)),
		ThisUpdate: time.Now().Add(-time.Hour),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: big.NewInt(s), RevocationTime: time.Now().Add(-time.Minute),
		})
	}
	issuer := *ca.cert
	issuer.PublicKey = signer.key.Public()
	issuer.SubjectKeyId = signer.cert.SubjectKeyId
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, &issuer, signer.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func crlPEM(t testing.TB, ca *testCA, serials ...int64) []byte {
	t.Helper()
	return pemBlock("X509 CRL", crlDER(t, ca, ca, serials...))
}

// writeFile replaces path atomically: a temporary file renamed over it, as
// deployment tools do.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writePair writes l as dir/name.crt and dir/name.key.
func writePair(t testing.TB, dir, name string, l *testLeaf) tlsconf.CertFiles {
	t.Helper()
	cf := tlsconf.CertFiles{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	writeFile(t, cf.CertFile, l.certPEM)
	writeFile(t, cf.KeyFile, l.keyPEM)
	return cf
}

func poolOf(cas ...*testCA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

// newServer starts a tlsconf.Server polling every 20ms, logging to the
// test's output unless opts say otherwise, and closes it at the end of the
// test.
func newServer(t testing.TB, cfg tlsconf.ServerConfig, opts ...tlsconf.Option) *tlsconf.Server {
	t.Helper()
	opts = append([]tlsconf.Option{
		tlsconf.WithReloadInterval(20 * time.Millisecond),
		tlsconf.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))),
	}, opts...)
	s, err := tlsconf.NewServer(cfg, opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Loopback TLS harness.

const ioTimeout = 5 * time.Second

type serverResult struct {
	state tls.ConnectionState
	err   error
}

// tlsServer accepts loopback connections, handshakes with its config,
// reports each handshake on results and then echoes what it reads.
type tlsServer struct {
	addr    string
	results chan serverResult
}

func startTLSServer(t testing.TB, conf *tls.Config) *tlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: ln.Addr().String(), results: make(chan serverResult, 64)}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
		conns  = make(map[net.Conn]struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				_ = c.Close()
				return
			}
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				s.serve(c, conf)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *tlsServer) serve(raw net.Conn, conf *tls.Config) {
	defer func() { _ = raw.Close() }()
	c := tls.Server(raw, conf)
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	err := c.Handshake()
	r := serverResult{err: err}
	if err == nil {
		r.state = c.ConnectionState()
	}
	select {
	case s.results <- r:
	default:
	}
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{}) // the test's cleanup closes the connection
	_, _ = io.Copy(c, c)
}

// connect dials s with a tls.Dialer (so an empty ServerName becomes the
// dialled host, 127.0.0.1, and no SNI is sent), completes the handshake and
// one echo exchange, and returns the client connection (closed at the end
// of the test), the server's handshake result, and the first error of the
// two sides. In TLS 1.3 a rejected client certificate shows on the client
// only at the first read, hence the exchange.
func connect(t testing.TB, s *tlsServer, conf *tls.Config) (*tls.Conn, serverResult, error) {
	t.Helper()
	for len(s.results) > 0 { // drop results of earlier connections
		<-s.results
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: conf}
	nc, cerr := d.DialContext(ctx, "tcp", s.addr)
	var c *tls.Conn
	if cerr == nil {
		c = nc.(*tls.Conn)
		cerr = ping(c)
	}
	var sr serverResult
	select {
	case sr = <-s.results:
	case <-time.After(ioTimeout):
		t.Fatal("no server handshake result")
	}
	if cerr != nil || sr.err != nil {
		if c != nil {
			_ = c.Close()
		}
		return nil, sr, errors.Join(sr.err, cerr)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, sr, nil
}

// ping writes a message and reads the echo.
func ping(c *tls.Conn) error {
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	msg := []byte("ping")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo mismatch")
	}
	return nil
}

// servedCert returns the leaf the server presented on c.
func servedCert(t testing.TB, c *tls.Conn) *x509.Certificate {
	t.Helper()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatal("server presented no certificate")
	}
	return certs[0]
}

// eventually polls cond every 20ms, at most 250 times and 10s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for range 250 {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// logBuffer collects a logger's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
