package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// errNoPEM is returned by the PEM parsers when the input holds no PEM block
// at all (an empty file, DER, or garbage).
var errNoPEM = errors.New("no PEM block found")

// readFile reads path; its error names the field and the file.
func readFile(field, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s %q: unreadable: %w", field, path, err)
	}
	return data, nil
}

// parseCertsPEM returns every CERTIFICATE block of data, in order. Other
// block types are skipped. It fails when there is no certificate or when one
// does not parse.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var (
		certs  []*x509.Certificate
		blocks int
		rest   = data
	)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if blocks > 0 {
			return nil, errors.New("no CERTIFICATE PEM block")
		}
		return nil, errNoPEM
	}
	return certs, nil
}

// parseKeyPEM returns the first private key of data: PKCS #8 ("PRIVATE
// KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
// Encrypted keys are refused.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	blocks := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, errors.New("encrypted private keys are not supported")
		}
		var (
			key any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", b.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
	if blocks > 0 {
		return nil, errors.New("no PRIVATE KEY PEM block")
	}
	return nil, errNoPEM
}

// keyPair builds a tls.Certificate from PEM bytes. certField and keyField
// name the configuration fields in errors (for example "certs[0].CertFile").
// The first certificate of certData is the leaf and must match the key; the
// rest is sent as the chain.
func keyPair(certField, certPath string, certData []byte, keyField, keyPath string, keyData []byte) (*tls.Certificate, error) {
	certs, err := parseCertsPEM(certData)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", certField, certPath, err)
	}
	key, err := parseKeyPEM(keyData)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", keyField, keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("%s %q: private key does not match the certificate in %s %q", keyField, keyPath, certField, certPath)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

// validityProblem describes why cert is not valid at now, or returns "".
func validityProblem(cert *x509.Certificate, now time.Time) string {
	switch {
	case now.After(cert.NotAfter):
		return "certificate expired at " + cert.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(cert.NotBefore):
		return "certificate not valid before " + cert.NotBefore.UTC().Format(time.RFC3339)
	}
	return ""
}

// caPool parses a PEM bundle of CA certificates.
func caPool(field, path string, data []byte) (*x509.CertPool, []*x509.Certificate, error) {
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %q: %w", field, path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}

// revKey identifies a revoked certificate: the public key of its issuer
// (so that two CAs sharing a name cannot revoke each other's serials) and
// its serial number.
type revKey struct {
	issuerSPKI string
	serial     string
}

// revocations is the parsed, signature-checked content of a CRL file.
type revocations struct {
	revoked map[revKey]struct{}
	lists   []*x509.RevocationList
}

// isRevoked reports whether any certificate of any chain (each ordered leaf
// first, as in tls.ConnectionState.VerifiedChains) is revoked. The last
// certificate of a chain is its trust anchor and is not checked.
func (r *revocations) isRevoked(chains [][]*x509.Certificate) (*x509.Certificate, bool) {
	if r == nil || len(r.revoked) == 0 {
		return nil, false
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			k := revKey{string(chain[i+1].RawSubjectPublicKeyInfo), chain[i].SerialNumber.String()}
			if _, ok := r.revoked[k]; ok {
				return chain[i], true
			}
		}
	}
	return nil, false
}

// parseCRL parses a CRL file, PEM (one or more "X509 CRL" blocks) or DER
// (one list), and checks that every list is signed by a certificate of cas
// whose subject is the list's issuer.
func parseCRL(path string, data []byte, caPath string, cas []*x509.Certificate) (*revocations, error) {
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN")) {
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
		if len(ders) == 0 {
			return nil, fmt.Errorf("CRLFile %q: no X509 CRL PEM block", path)
		}
	} else {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("CRLFile %q: empty file", path)
		}
		ders = [][]byte{data}
	}
	r := &revocations{revoked: make(map[revKey]struct{})}
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRLFile %q: list %d: neither a PEM nor a DER X.509 CRL: %w", path, i+1, err)
		}
		signer, err := crlSigner(crl, cas)
		if err != nil {
			return nil, fmt.Errorf("CRLFile %q: list %d (issuer %q): %w (ClientCAFile %q)", path, i+1, crl.Issuer.String(), err, caPath)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber == nil {
				continue
			}
			r.revoked[revKey{string(signer.RawSubjectPublicKeyInfo), e.SerialNumber.String()}] = struct{}{}
		}
		r.lists = append(r.lists, crl)
	}
	return r, nil
}

// crlSigner returns the certificate of cas that signed crl.
func crlSigner(crl *x509.RevocationList, cas []*x509.Certificate) (*x509.Certificate, error) {
	var lastErr error
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, crl.RawIssuer) {
			continue
		}
		if err := crl.CheckSignatureFrom(ca); err != nil {
			lastErr = err
			continue
		}
		return ca, nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("CRL signature invalid: %w", lastErr)
	}
	return nil, errors.New("CRL signature invalid: its issuer is not a certificate of the client CA bundle")
}
