package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
)

// Identity returns the caller identity named by cert: its SPIFFE ID (the
// first URI SAN whose scheme is spiffe, as a URI string), else its first DNS
// SAN, else its subject common name. It returns "" for a nil cert or one
// that names nothing. It does not verify cert; see PeerIdentity.
func Identity(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	for _, u := range cert.URIs {
		if u != nil && strings.EqualFold(u.Scheme, "spiffe") {
			return u.String()
		}
	}
	for _, n := range cert.DNSNames {
		if n != "" {
			return n
		}
	}
	return cert.Subject.CommonName
}

// PeerIdentity returns the Identity of the verified client certificate of a
// server-side connection: the leaf of its first verified chain. ok is false
// when cs is nil, when the peer sent no certificate, when its certificate
// was not verified (ClientAuthRequest without ClientCAFile), or when the
// certificate names no identity.
func PeerIdentity(cs *tls.ConnectionState) (id string, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	id = Identity(cs.VerifiedChains[0][0])
	return id, id != ""
}
