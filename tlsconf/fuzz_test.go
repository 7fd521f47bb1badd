package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// FuzzParseFiles feeds arbitrary file contents to every parser of files a
// Server or client reads: they must return an error, never panic.
func FuzzParseFiles(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fuzz CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(7), RevocationTime: time.Now()}},
	}, ca, key)
	if err != nil {
		f.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, seed := range [][]byte{
		nil,
		[]byte("garbage"),
		certPEM,
		keyPEM,
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}),
		crl,
		append(append([]byte{}, certPEM...), keyPEM...),
		[]byte("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nbm9wZQ==\n-----END RSA PRIVATE KEY-----\n"),
	} {
		f.Add(seed)
	}
	cas := []*x509.Certificate{ca}
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := parseCertsPEM(data); err == nil && len(certs) == 0 {
			t.Error("parseCertsPEM: no certificate and no error")
		}
		if k, err := parseKeyPEM(data); err == nil && k == nil {
			t.Error("parseKeyPEM: nil key and no error")
		}
		_, _ = keyPair("c", "c.pem", data, "k", "k.pem", data)
		_, _ = keyPair("c", "c.pem", certPEM, "k", "k.pem", data)
		if r, err := parseCRL("crl", data, "ca", cas); err == nil {
			_, _ = r.isRevoked([][]*x509.Certificate{{ca, ca}})
		}
	})
}
