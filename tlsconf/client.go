package tlsconf

import (
	"crypto/tls"
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
	// to; the system roots when empty. It is read once, by NewClient.
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
// change again. An error names the field and the file.
func NewClient(cfg ClientConfig) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" {
		data, err := readFile("CAFile", cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		pool, _, err := caPool("CAFile", cfg.CAFile, data)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		c.RootCAs = pool
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
		c.GetClientCertificate = r.get
	}
	return c, nil
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
