package gateway

import (
	"crypto/tls"
	"log/slog"
	"strings"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/tlsconf"
)

// newTLSServer builds a listener's TLS termination (certificates by SNI,
// mutual TLS, reload from disk).
func newTLSServer(t *configv1.ListenerTLS, log *slog.Logger) (*tlsconf.Server, error) {
	sc := tlsconf.ServerConfig{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientCAFile: t.GetClientCaFile(),
		CRLFile:      t.GetCrlFile(),
	}
	if t.GetMinVersion() == configv1.TLSVersion_TLS_VERSION_1_3 {
		sc.MinVersion = tls.VersionTLS13
	}
	switch t.GetClientAuth() {
	case configv1.ClientAuth_CLIENT_AUTH_REQUEST:
		sc.ClientAuth = tlsconf.ClientAuthRequest
	case configv1.ClientAuth_CLIENT_AUTH_REQUIRE:
		sc.ClientAuth = tlsconf.ClientAuthRequire
	}
	for _, c := range t.GetCertificates() {
		sc.Certs = append(sc.Certs, tlsconf.CertFiles{CertFile: c.GetCertFile(), KeyFile: c.GetKeyFile()})
	}
	return tlsconf.NewServer(sc, tlsconf.WithLogger(log))
}

// authHeaders are the request headers the REST door must forward for the
// auth providers of cfg (API key headers, token headers, cookies).
func authHeaders(cfg *configv1.Config) []string {
	var out []string
	for _, ap := range cfg.GetAuthProviders() {
		if j := ap.GetJwt(); j != nil {
			out = append(out, strings.ToLower(j.GetHeader()))
			if j.GetCookie() != "" {
				out = append(out, "cookie")
			}
		}
		if k := ap.GetApiKey(); k != nil {
			out = append(out, strings.ToLower(k.GetHeader()))
		}
	}
	return out
}
