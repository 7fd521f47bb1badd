// Package tlsconf is edgegate's TLS layer: TLS termination with several
// certificates chosen by SNI, mutual TLS with a CRL, reload of certificates,
// CAs and CRL from disk without a restart, the caller identity of a verified
// client certificate, TLS to upstreams, and a development PKI generator.
//
// # Server and the reload model
//
// NewServer validates a ServerConfig and loads every file it names; an error
// names the field and the file ("Certs[1].KeyFile \"b.key\": private key
// does not match the certificate in Certs[1].CertFile \"b.crt\""). The
// loaded files form one immutable generation. A Server then reads its files
// every reload interval (2s by default, WithReloadInterval) and compares
// their content hashes with the last seen ones, so any way of replacing a
// file is seen: a rename over it, a rewrite in place, or a symbolic link
// swapped to a new target (as Kubernetes does for mounted secrets).
//
// The files form independent parts: each certificate/key pair, and the
// client CA bundle together with the CRL. A part whose file changed is
// rebuilt from the bytes just read; if that fails (garbage, a missing file,
// a key that does not yet match its new certificate, a CRL whose signature
// does not verify) the part keeps its previous good value, the error is
// logged, and the part is tried again the next time one of its files
// changes. Successful parts replace the current generation atomically.
//
// Server.TLSConfig returns a tls.Config whose GetConfigForClient hands every
// new handshake the tls.Config of the current generation. Each handshake
// therefore sees one consistent set of certificates, CA pool and CRL, and a
// reload applies from the next handshake on; established connections are
// never touched. Session resumption is checked again too: the standard
// library re-verifies a resumed client certificate against the current CA
// pool, and the CRL is checked by VerifyConnection, which also runs on
// resumed sessions, so a reloaded CA bundle or CRL also applies to clients
// that resume.
//
// To replace a certificate without a window where the certificate and key
// disagree, write the new files next to the old ones and rename them into
// place (a mismatch seen between the two renames is logged and resolved at
// the next poll). Close stops the reload goroutine.
//
// # Identity
//
// Identity names the caller of a client certificate: its SPIFFE ID (the
// first URI SAN whose scheme is spiffe), else its first DNS SAN, else its
// subject common name. PeerIdentity applies it to the leaf of the first
// verified chain of a connection, and reports nothing for a connection
// without a verified client certificate, so an unverified certificate
// (ClientAuthRequest without a CA bundle) never yields an identity.
//
// # Upstreams and development
//
// NewClient builds the tls.Config for upstream connections; its client
// certificate is re-read on the first handshake after its files change.
// WriteDevCerts writes a local CA with server and client certificates for
// development and tests.
package tlsconf
