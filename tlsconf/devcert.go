package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DevFiles are the paths WriteDevCerts writes.
type DevFiles struct{ CACert, CAKey, ServerCert, ServerKey, ClientCert, ClientKey string }

// Names and validity of what WriteDevCerts writes.
const (
	devClientCommonName = "dev-client"
	devClientSPIFFEID   = "spiffe://edgegate.dev/client"

	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 365 * 24 * time.Hour
)

// WriteDevCerts writes a development PKI into dir (created with mode 0700
// when missing): ca.crt/ca.key, a local CA valid 10 years;
// server.crt/server.key, valid 1 year for hosts (DNS names and IP
// addresses; localhost, 127.0.0.1 and ::1 when empty); and
// client.crt/client.key, valid 1 year, CN "dev-client" with URI SAN
// spiffe://edgegate.dev/client. Keys are ECDSA P-256 in PKCS #8, mode 0600;
// certificates mode 0644. Each file is written to a temporary file and
// renamed into place, so a watching Server never reads half a file.
//
// Without force it writes nothing and returns an error naming the first of
// the six files that already exists. These certificates are for development
// only.
func WriteDevCerts(dir string, hosts []string, force bool) (DevFiles, error) {
	files := DevFiles{
		CACert:     filepath.Join(dir, "ca.crt"),
		CAKey:      filepath.Join(dir, "ca.key"),
		ServerCert: filepath.Join(dir, "server.crt"),
		ServerKey:  filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.crt"),
		ClientKey:  filepath.Join(dir, "client.key"),
	}
	if dir == "" {
		return DevFiles{}, errors.New("tlsconf: dev certs: empty directory")
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	var (
		dnsNames []string
		ips      []net.IP
		cn       string // the first host
	)
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			h = ip.String()
			ips = append(ips, ip)
		} else if h != "" {
			dnsNames = append(dnsNames, h)
		} else {
			return DevFiles{}, fmt.Errorf("tlsconf: dev certs: hosts[%d]: empty", i)
		}
		if cn == "" {
			cn = h
		}
	}
	if !force {
		for _, p := range []string{files.CACert, files.CAKey, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey} {
			if _, err := os.Lstat(p); err == nil {
				return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %s already exists (use force to overwrite)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
	}

	now := time.Now().Add(-5 * time.Minute) // tolerate some clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "edgegate dev CA", Organization: []string{"edgegate development"}},
		NotBefore:             now,
		NotAfter:              now.Add(devCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := signCert(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return DevFiles{}, err
	}

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
	}
	serverDER, _, err := signCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"edgegate development"}},
		NotBefore:   now,
		NotAfter:    now.Add(devLeafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, caCert, serverKey.Public(), caKey)
	if err != nil {
		return DevFiles{}, err
	}

	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
	}
	spiffe, err := url.Parse(devClientSPIFFEID)
	if err != nil {
		return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
	}
	clientDER, _, err := signCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: devClientCommonName, Organization: []string{"edgegate development"}},
		NotBefore:   now,
		NotAfter:    now.Add(devLeafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{spiffe},
	}, caCert, clientKey.Public(), caKey)
	if err != nil {
		return DevFiles{}, err
	}

	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{files.CACert, pemCert(caDER), 0o644},
		{files.CAKey, nil, 0o600},
		{files.ServerCert, pemCert(serverDER), 0o644},
		{files.ServerKey, nil, 0o600},
		{files.ClientCert, pemCert(clientDER), 0o644},
		{files.ClientKey, nil, 0o600},
	}
	for i, k := range []*ecdsa.PrivateKey{caKey, serverKey, clientKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
		}
		writes[2*i+1].data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, w := range writes {
		if err := writeFileAtomic(w.path, w.data, w.mode); err != nil {
			return DevFiles{}, fmt.Errorf("tlsconf: dev certs: %w", err)
		}
	}
	return files, nil
}

// signCert signs tmpl with a fresh random 128-bit serial.
func signCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: dev certs: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: dev certs: %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: dev certs: %w", err)
	}
	return der, cert, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFileAtomic writes data to a temporary file in path's directory with
// mode, then renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
