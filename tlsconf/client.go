package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ClientConfig is TLS to an upstream.
type ClientConfig struct {
	// CAFile is a PEM bundle of the CAs upstream certificates must chain
	// to; the system roots when empty. A Client re-reads it when it
	// changes; NewClient's config keeps the bundle it read.
	CAFile string
	// CertFile and KeyFile are the client certificate (PEM, leaf first,
	// optionally followed by its chain) and key presented to upstreams that
	// ask for one; both or neither.
	CertFile, KeyFile string
	// ServerName is the name verified in the upstream certificate and sent
	// as SNI; when empty, the dialled host (as set by tls.Dialer,
	// http.Transport and gRPC).
	ServerName string
}

// NewClient returns the tls.Config for connections to an upstream: TLS 1.2
// at least, the upstream verified against CAFile (or the system roots) for
// ServerName. The client certificate is loaded now, and again on the first
// handshake after its files change: every handshake stats both files (no
// read when nothing changed). A changed pair that fails to load is logged
// with slog.Default and the previous certificate is kept until the files
// change again. The CA bundle is the one read now; NewReloadingClient's
// configs follow a changed bundle too. An error names the field and the
// file.
func NewClient(cfg ClientConfig) (*tls.Config, error) {
	c, err := NewReloadingClient(cfg)
	if err != nil {
		return nil, err
	}
	return c.Config(), nil
}

// Client makes the tls.Config of each new connection to an upstream, with
// the CA bundle and the client certificate as their files are now. Its
// methods are safe for concurrent use.
type Client struct {
	base *tls.Config // never modified; RootCAs set by Config
	ca   *caBundle   // nil: the system roots
}

// NewReloadingClient checks and loads cfg's files as NewClient does.
func NewReloadingClient(cfg ClientConfig) (*Client, error) {
	c := &Client{base: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}}
	if cfg.CAFile != "" {
		c.ca = &caBundle{file: cfg.CAFile, log: slog.Default()}
		if err := c.ca.load(); err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
	}
	switch {
	case cfg.CertFile == "" && cfg.KeyFile == "":
	case cfg.CertFile == "":
		return nil, errors.New("tlsconf: CertFile: required when KeyFile is set")
	case cfg.KeyFile == "":
		return nil, errors.New("tlsconf: KeyFile: required when CertFile is set")
	default:
		r := &clientCert{certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: slog.Default()}
		if err := r.load(); err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		c.base.GetClientCertificate = r.get
	}
	return c, nil
}

// Config returns the tls.Config for a new connection: the CA bundle as the
// file is now. Each call stats the file (no read when it did not change); a
// changed bundle that fails to load is logged with slog.Default and the
// previous one is used until the file changes again.
func (c *Client) Config() *tls.Config {
	if c.ca == nil {
		return c.base
	}
	conf := c.base.Clone()
	conf.RootCAs = c.ca.get()
	return conf
}

// caBundle is a CA bundle reloaded when its file changes.
type caBundle struct {
	file string
	log  *slog.Logger

	mu   sync.Mutex
	stat fileStat
	pool *x509.CertPool
}

// load reads and parses the file; the stat is taken first, so that a
// change racing with the read is seen by the next check.
func (b *caBundle) load() error {
	st := statFile(b.file)
	data, err := readFile("CAFile", b.file)
	b.stat = st
	if err != nil {
		return err
	}
	pool, _, err := caPool("CAFile", b.file, data)
	if err != nil {
		return err
	}
	b.pool = pool
	return nil
}

// get returns the last good pool, reloading it first if the file changed.
func (b *caBundle) get() *x509.CertPool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stat.same(statFile(b.file)) {
		return b.pool
	}
	if err := b.load(); err != nil {
		b.log.Error("tlsconf: CA bundle reload failed; keeping the previous bundle", "ca_file", b.file, "error", err)
	} else {
		b.log.Info("tlsconf: CA bundle reloaded", "ca_file", b.file)
	}
	return b.pool
}

// clientCert is a client certificate reloaded when its files change.
type clientCert struct {
	certFile, keyFile string
	log               *slog.Logger

	mu                sync.Mutex
	certStat, keyStat fileStat
	cert              *tls.Certificate
}

// fileStat is what a cheap change check compares: identity (a file renamed
// over the old one is another file), modification time and size.
type fileStat struct {
	info os.FileInfo
	err  string
}

func statFile(path string) fileStat {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{err: err.Error()}
	}
	return fileStat{info: fi}
}

func (a fileStat) same(b fileStat) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil && a.err == b.err
	}
	return os.SameFile(a.info, b.info) && a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size()
}

// load reads and parses both files. The stats are taken first, so that a
// change racing with the read is seen by the next check.
func (r *clientCert) load() error {
	cs, ks := statFile(r.certFile), statFile(r.keyFile)
	cert, err := r.read()
	r.certStat, r.keyStat = cs, ks
	if err != nil {
		return err
	}
	r.cert = cert
	return nil
}

func (r *clientCert) read() (*tls.Certificate, error) {
	certData, err := readFile("CertFile", r.certFile)
	if err != nil {
		return nil, err
	}
	keyData, err := readFile("KeyFile", r.keyFile)
	if err != nil {
		return nil, err
	}
	return keyPair("CertFile", r.certFile, certData, "KeyFile", r.keyFile, keyData)
}

// get is the GetClientCertificate callback. It always returns the last good
// certificate and a nil error.
func (r *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.certStat.same(statFile(r.certFile)) && r.keyStat.same(statFile(r.keyFile)) {
		return r.cert, nil
	}
	if err := r.load(); err != nil {
		r.log.Error("tlsconf: client certificate reload failed; keeping the previous certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err)
	} else {
		r.log.Info("tlsconf: client certificate reloaded", "cert_file", r.certFile,
			"subject", r.cert.Leaf.Subject.String(), "not_after", r.cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return r.cert, nil
}
