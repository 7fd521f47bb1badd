package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClientAuth is the server's policy for client certificates.
type ClientAuth int

const (
	// ClientAuthNone asks for no client certificate.
	ClientAuthNone ClientAuth = iota
	// ClientAuthRequest asks for a client certificate. When ClientCAFile is
	// given a certificate that is sent must verify against it (and the CRL),
	// otherwise it is accepted unverified (and PeerIdentity reports none). A
	// connection without a certificate is allowed.
	ClientAuthRequest
	// ClientAuthRequire requires a client certificate that verifies against
	// ClientCAFile and is not revoked by CRLFile.
	ClientAuthRequire
)

// String returns the constant's name.
func (a ClientAuth) String() string {
	switch a {
	case ClientAuthNone:
		return "ClientAuthNone"
	case ClientAuthRequest:
		return "ClientAuthRequest"
	case ClientAuthRequire:
		return "ClientAuthRequire"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(a))
}

// CertFiles names a PEM certificate and its PEM private key. CertFile holds
// the leaf first, optionally followed by its intermediates (sent as the
// chain). KeyFile holds a PKCS #8, SEC 1 or PKCS #1 unencrypted key.
type CertFiles struct{ CertFile, KeyFile string }

// ServerConfig is the TLS termination of a listener.
type ServerConfig struct {
	// Certs are the served certificates, at least one. A client's SNI name
	// selects the first certificate with that exact DNS name, else the
	// first one valid for the name (wildcards included, by the standard
	// x509 rules) and usable by the client; when no name is sent or none
	// matches, the first certificate is served.
	Certs []CertFiles
	// MinVersion is tls.VersionTLS12 (the default when 0) or
	// tls.VersionTLS13.
	MinVersion uint16
	// NextProtos is the ALPN list, in preference order, for example "h2",
	// "http/1.1". It is authoritative: protocols that http.Server or gRPC
	// add to a clone of TLSConfig are not seen, so list "h2" here to serve
	// HTTP/2 or gRPC.
	NextProtos []string
	// ClientAuth is the client certificate policy.
	ClientAuth ClientAuth
	// ClientCAFile is a PEM bundle of the CAs that client certificates must
	// chain to. Required for ClientAuthRequire, optional for
	// ClientAuthRequest, refused for ClientAuthNone.
	ClientCAFile string
	// CRLFile is an optional X.509 CRL, PEM (one or more "X509 CRL" blocks)
	// or DER, each list signed by a CA of ClientCAFile. A client
	// certificate whose serial it lists is rejected. Requires ClientCAFile.
	CRLFile string
}

// Server holds the current certificates, client CA pool and CRL of a
// listener and reloads them when their files change. Its methods are safe
// for concurrent use.
type Server struct {
	cfg        ServerConfig
	opts       options
	minVersion uint16
	clientAuth tls.ClientAuthType
	files      []string // every watched path, without duplicates

	cur atomic.Pointer[state]

	sums map[string]fileSum // last seen file versions; owned by the watcher

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// state is one immutable generation of loaded files. Every handshake uses
// the single state it got from GetConfigForClient.
type state struct {
	certs     []servedCert
	clientCAs *x509.CertPool
	caCerts   []*x509.Certificate
	crl       *revocations
	conf      *tls.Config // built from the fields above, never modified
}

type servedCert struct {
	cert  *tls.Certificate
	exact map[string]struct{} // non-wildcard DNS names of the leaf, lower case
}

// NewServer checks cfg, loads every file it names and starts a goroutine
// that reloads them when they change (see the package documentation). An
// error names the field and the file and says what is wrong; no goroutine
// is left running then. A returned Server must be closed with Close.
func NewServer(cfg ServerConfig, opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		cfg:  cloneServerConfig(cfg),
		opts: o,
		sums: make(map[string]fileSum),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	snap := readSnapshot(s.files)
	st := &state{certs: make([]servedCert, len(s.cfg.Certs))}
	for i := range s.cfg.Certs {
		sc, err := s.loadCert(i, snap)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		st.certs[i] = sc
	}
	if s.cfg.ClientCAFile != "" {
		if err := s.loadClientAuth(st, snap); err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
	}
	st.conf = s.configFor(st)
	s.cur.Store(st)
	for path, f := range snap {
		s.sums[path] = f.sum
	}
	go s.watch()
	return s, nil
}

func cloneServerConfig(cfg ServerConfig) ServerConfig {
	cfg.Certs = slices.Clone(cfg.Certs)
	cfg.NextProtos = slices.Clone(cfg.NextProtos)
	return cfg
}

// validate checks the fields of s.cfg and fills minVersion, clientAuth and
// files.
func (s *Server) validate() error {
	cfg := &s.cfg
	if len(cfg.Certs) == 0 {
		return errors.New("Certs: at least one certificate is required") //nolint:staticcheck // ST1005: names the field ServerConfig.Certs, as every error of validate starts with the field it is about
	}
	add := func(path string) {
		if !slices.Contains(s.files, path) {
			s.files = append(s.files, path)
		}
	}
	for i, c := range cfg.Certs {
		if c.CertFile == "" {
			return fmt.Errorf("Certs[%d].CertFile: required", i)
		}
		if c.KeyFile == "" {
			return fmt.Errorf("Certs[%d].KeyFile: required", i)
		}
		add(c.CertFile)
		add(c.KeyFile)
	}
	switch cfg.MinVersion {
	case 0, tls.VersionTLS12:
		s.minVersion = tls.VersionTLS12
	case tls.VersionTLS13:
		s.minVersion = tls.VersionTLS13
	default:
		return fmt.Errorf("MinVersion: %#04x is not supported (use tls.VersionTLS12 or tls.VersionTLS13)", cfg.MinVersion)
	}
	switch cfg.ClientAuth {
	case ClientAuthNone:
		if cfg.ClientCAFile != "" {
			return errors.New("ClientCAFile: set but ClientAuth is ClientAuthNone")
		}
		s.clientAuth = tls.NoClientCert
	case ClientAuthRequest:
		s.clientAuth = tls.RequestClientCert
		if cfg.ClientCAFile != "" {
			s.clientAuth = tls.VerifyClientCertIfGiven
		}
	case ClientAuthRequire:
		if cfg.ClientCAFile == "" {
			return errors.New("ClientCAFile: required when ClientAuth is ClientAuthRequire")
		}
		s.clientAuth = tls.RequireAndVerifyClientCert
	default:
		return fmt.Errorf("ClientAuth: unknown value %d", int(cfg.ClientAuth))
	}
	if cfg.CRLFile != "" && cfg.ClientCAFile == "" {
		return errors.New("CRLFile: requires ClientCAFile")
	}
	if cfg.ClientCAFile != "" {
		add(cfg.ClientCAFile)
	}
	if cfg.CRLFile != "" {
		add(cfg.CRLFile)
	}
	return nil
}

// TLSConfig returns a new tls.Config for a listener. Its GetConfigForClient
// gives every new handshake the tls.Config of the current generation of
// files, so that a reload applies to the next handshake while established
// connections are never touched. The caller may modify the returned value,
// but what GetConfigForClient returns wins for every field it sets
// (certificates, versions, ALPN, client authentication). It keeps working,
// with the last loaded files, after Close.
func (s *Server) TLSConfig() *tls.Config {
	c := s.configFor(s.cur.Load())
	c.GetCertificate = func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.cur.Load().certificate(chi)
	}
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return s.cur.Load().conf, nil
	}
	return c
}

// Close stops the reload goroutine and waits for it to end. It is
// idempotent and safe to call concurrently.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
}

// configFor builds the tls.Config of one generation.
func (s *Server) configFor(st *state) *tls.Config {
	c := &tls.Config{
		MinVersion:     s.minVersion,
		NextProtos:     slices.Clone(s.cfg.NextProtos),
		GetCertificate: st.certificate,
		ClientAuth:     s.clientAuth,
		ClientCAs:      st.clientCAs,
	}
	if st.crl != nil {
		// VerifyConnection, unlike VerifyPeerCertificate, also runs on
		// resumed sessions, so a revocation applies to them too.
		c.VerifyConnection = st.verifyConnection
	}
	return c
}

// certificate selects the certificate for a ClientHello; see
// ServerConfig.Certs. It never fails.
func (st *state) certificate(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(chi.ServerName, "."))
	if name == "" {
		return st.certs[0].cert, nil
	}
	for _, c := range st.certs {
		if _, ok := c.exact[name]; ok && chi.SupportsCertificate(c.cert) == nil {
			return c.cert, nil
		}
	}
	for _, c := range st.certs {
		if chi.SupportsCertificate(c.cert) == nil {
			return c.cert, nil
		}
	}
	return st.certs[0].cert, nil
}

// verifyConnection rejects a client certificate revoked by the CRL.
func (st *state) verifyConnection(cs tls.ConnectionState) error {
	if cert, ok := st.crl.isRevoked(cs.VerifiedChains); ok {
		return fmt.Errorf("tlsconf: certificate serial %s (subject %q) is revoked", cert.SerialNumber, cert.Subject.String())
	}
	return nil
}

// loadCert builds Certs[i] from the snapshot.
func (s *Server) loadCert(i int, snap map[string]fileData) (servedCert, error) {
	cf := s.cfg.Certs[i]
	certField := fmt.Sprintf("Certs[%d].CertFile", i)
	keyField := fmt.Sprintf("Certs[%d].KeyFile", i)
	certData, err := snap[cf.CertFile].get(certField, cf.CertFile)
	if err != nil {
		return servedCert{}, err
	}
	keyData, err := snap[cf.KeyFile].get(keyField, cf.KeyFile)
	if err != nil {
		return servedCert{}, err
	}
	tc, err := keyPair(certField, cf.CertFile, certData, keyField, cf.KeyFile, keyData)
	if err != nil {
		return servedCert{}, err
	}
	if p := validityProblem(tc.Leaf, time.Now()); p != "" {
		s.opts.logger.Warn("tlsconf: serving a certificate outside its validity period",
			"field", certField, "file", cf.CertFile, "problem", p)
	}
	sc := servedCert{cert: tc, exact: make(map[string]struct{})}
	for _, n := range tc.Leaf.DNSNames {
		if !strings.Contains(n, "*") {
			sc.exact[strings.ToLower(strings.TrimSuffix(n, "."))] = struct{}{}
		}
	}
	return sc, nil
}

// loadClientAuth sets the client CA pool and CRL of st from the snapshot.
// st is not modified on error.
func (s *Server) loadClientAuth(st *state, snap map[string]fileData) error {
	caData, err := snap[s.cfg.ClientCAFile].get("ClientCAFile", s.cfg.ClientCAFile)
	if err != nil {
		return err
	}
	pool, cas, err := caPool("ClientCAFile", s.cfg.ClientCAFile, caData)
	if err != nil {
		return err
	}
	var crl *revocations
	if s.cfg.CRLFile != "" {
		crlData, err := snap[s.cfg.CRLFile].get("CRLFile", s.cfg.CRLFile)
		if err != nil {
			return err
		}
		crl, err = parseCRL(s.cfg.CRLFile, crlData, s.cfg.ClientCAFile, cas)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, l := range crl.lists {
			if !l.NextUpdate.IsZero() && now.After(l.NextUpdate) {
				s.opts.logger.Warn("tlsconf: CRL is past its next update time; still applied",
					"file", s.cfg.CRLFile, "issuer", l.Issuer.String(), "next_update", l.NextUpdate)
			}
		}
	}
	st.clientCAs, st.caCerts, st.crl = pool, cas, crl
	return nil
}

// watch polls the files every reload interval until Close.
func (s *Server) watch() {
	defer close(s.done)
	t := time.NewTicker(s.opts.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.poll()
		}
	}
}

// poll reads every file once, and rebuilds from those bytes each part (a
// certificate pair; the client CA bundle with the CRL) of which a file
// changed since the last poll. A part that fails keeps its previous value
// and is retried when one of its files changes again.
func (s *Server) poll() {
	snap := readSnapshot(s.files)
	changed := make(map[string]bool)
	for path, f := range snap {
		if f.sum != s.sums[path] {
			changed[path] = true
			s.sums[path] = f.sum
		}
	}
	if len(changed) == 0 {
		return
	}
	log := s.opts.logger
	old := s.cur.Load()
	next := &state{
		certs:     slices.Clone(old.certs),
		clientCAs: old.clientCAs,
		caCerts:   old.caCerts,
		crl:       old.crl,
	}
	updated := false
	for i, cf := range s.cfg.Certs {
		if !changed[cf.CertFile] && !changed[cf.KeyFile] {
			continue
		}
		sc, err := s.loadCert(i, snap)
		if err != nil {
			log.Error("tlsconf: certificate reload failed; keeping the previous certificate",
				"cert_file", cf.CertFile, "key_file", cf.KeyFile, "error", err)
			continue
		}
		next.certs[i] = sc
		updated = true
		log.Info("tlsconf: certificate reloaded", "cert_file", cf.CertFile, "key_file", cf.KeyFile,
			"subject", sc.cert.Leaf.Subject.String(), "not_after", sc.cert.Leaf.NotAfter)
	}
	if s.cfg.ClientCAFile != "" && (changed[s.cfg.ClientCAFile] || (s.cfg.CRLFile != "" && changed[s.cfg.CRLFile])) {
		if err := s.loadClientAuth(next, snap); err != nil {
			log.Error("tlsconf: client CA/CRL reload failed; keeping the previous CA bundle and CRL",
				"ca_file", s.cfg.ClientCAFile, "crl_file", s.cfg.CRLFile, "error", err)
		} else {
			updated = true
			log.Info("tlsconf: client CA bundle and CRL reloaded", "ca_file", s.cfg.ClientCAFile,
				"crl_file", s.cfg.CRLFile, "cas", len(next.caCerts))
		}
	}
	if !updated {
		return
	}
	next.conf = s.configFor(next)
	s.cur.Store(next)
}

// fileSum identifies one version of a file: the hash of its content, or the
// text of the error that prevented reading it.
type fileSum struct {
	hash [sha256.Size]byte
	err  string
}

// fileData is one read of a file.
type fileData struct {
	data []byte
	err  error
	sum  fileSum
}

// get returns the data, or the read error naming field and path.
func (f fileData) get(field, path string) ([]byte, error) {
	if f.err != nil {
		return nil, fmt.Errorf("%s %q: unreadable: %w", field, path, f.err)
	}
	return f.data, nil
}

// readSnapshot reads every path once.
func readSnapshot(paths []string) map[string]fileData {
	snap := make(map[string]fileData, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		f := fileData{data: data, err: err}
		if err != nil {
			f.sum.err = err.Error()
		} else {
			f.sum.hash = sha256.Sum256(data)
		}
		snap[p] = f
	}
	return snap
}
