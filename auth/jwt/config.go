package jwt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is what a Verifier checks. Zero values take the defaults named on
// each field; New refuses a Config that is inconsistent.
type Config struct {
	// JWKSFile is a JSON Web Key Set file. Exactly one of JWKSFile and
	// JWKSURL is set.
	JWKSFile string
	// JWKSURL is the https URL of a JSON Web Key Set (http is refused).
	JWKSURL string
	// CAFile is a PEM bundle of the CAs that may sign the certificate of
	// JWKSURL's server; empty: the system roots. Only with JWKSURL.
	CAFile string
	// RefreshInterval is how often the keys are fetched again (JWKSURL) or
	// read again (JWKSFile). Default 10m, or MinRefreshInterval when that is
	// longer.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two refreshes, scheduled
	// or caused by a token with an unknown kid. Default 30s, or
	// RefreshInterval when that is shorter; at most RefreshInterval.
	MinRefreshInterval time.Duration
	// Algorithms is the allowlist of the tokens' "alg", compared exactly.
	// Supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
	// EdDSA. Default RS256, RS384, RS512, ES256, ES384, PS256, EdDSA. "none"
	// and the HMAC algorithms (HS*) are refused in any case.
	Algorithms []string
	// Issuer is the required "iss", compared exactly; empty: not checked.
	Issuer string
	// Audiences: the token's "aud" must name at least one of them; empty:
	// not checked.
	Audiences []string
	// ClockSkew is the tolerance of the "exp", "nbf" and "iat" checks.
	// Default 30s.
	ClockSkew time.Duration
	// MaxTokenBytes is the longest token accepted. Default 8192.
	MaxTokenBytes int
	// SubjectClaim names the claim read into Claims.Subject. Default "sub".
	SubjectClaim string
	// ScopesClaim names the claim read into Claims.Scopes: a space-separated
	// string or an array of strings. Default "scope".
	ScopesClaim string
	// CacheSize is how many verified tokens are remembered, so that a token
	// seen again skips the signature check (its exp, nbf and iat are still
	// checked on every call; a key set change forgets them). Default 1024;
	// negative: no cache.
	CacheSize int
}

const (
	defaultRefreshInterval    = 10 * time.Minute
	defaultMinRefreshInterval = 30 * time.Second
	defaultClockSkew          = 30 * time.Second
	defaultMaxTokenBytes      = 8192
	defaultSubjectClaim       = "sub"
	defaultScopesClaim        = "scope"

	// fetchTimeout bounds one fetch (or read) of the key set.
	fetchTimeout = 5 * time.Second
	// kidRefreshWait bounds how long Verify waits for a refresh caused by
	// an unknown kid (the caller's context may end it sooner).
	kidRefreshWait = 5 * time.Second
	// maxJWKSBytes is the largest key set accepted.
	maxJWKSBytes = 1 << 20
	// maxKeys is the most keys kept from one key set.
	maxKeys = 100
)

var defaultAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}

// family is the key type an algorithm needs.
type family int

const (
	familyRSA family = iota + 1
	familyP256
	familyP384
	familyEd25519
)

// supportedAlgorithms maps every algorithm a Verifier can allow to its key
// family.
var supportedAlgorithms = map[string]family{
	"RS256": familyRSA,
	"RS384": familyRSA,
	"RS512": familyRSA,
	"PS256": familyRSA,
	"PS384": familyRSA,
	"PS512": familyRSA,
	"ES256": familyP256,
	"ES384": familyP384,
	"EdDSA": familyEd25519,
}

type options struct {
	now    func() time.Time
	client *http.Client
	log    *slog.Logger
}

// Option changes how New builds a Verifier.
type Option func(*options)

// WithClock sets the clock of the claim checks and of the refresh rate limit
// (MinRefreshInterval). Default time.Now. The refresh schedule itself runs on
// real time.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithHTTPClient sets the client that fetches JWKSURL, instead of one built
// from CAFile (the two are exclusive). Its redirects are still restricted to
// https, and each fetch still ends after 5s.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.client = c }
}

// WithLogger sets where key loading is logged (refresh failures, ignored
// keys). Default slog.Default(). Verify never logs.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// normalize checks cfg and fills in its defaults. Errors name the field.
func normalize(cfg Config, o *options) (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case cfg.JWKSFile == "" && cfg.JWKSURL == "":
		bad("JWKSFile, JWKSURL: one of them is required")
	case cfg.JWKSFile != "" && cfg.JWKSURL != "":
		bad("JWKSFile, JWKSURL: set only one of them")
	case cfg.JWKSURL != "":
		u, err := url.Parse(cfg.JWKSURL)
		switch {
		case err != nil:
			bad("JWKSURL: not a URL")
		case u.Scheme != "https":
			bad("JWKSURL: %q: the scheme must be https", u.Redacted())
		case u.Host == "" || u.Hostname() == "":
			bad("JWKSURL: %q: no host", u.Redacted())
		}
	}
	if cfg.CAFile != "" {
		switch {
		case cfg.JWKSURL == "":
			bad("CAFile: only with JWKSURL")
		case o.client != nil:
			bad("CAFile: not with WithHTTPClient (configure the client's TLS instead)")
		}
	}

	switch {
	case cfg.RefreshInterval < 0:
		bad("RefreshInterval: %v is negative", cfg.RefreshInterval)
	case cfg.MinRefreshInterval < 0:
		bad("MinRefreshInterval: %v is negative", cfg.MinRefreshInterval)
	case cfg.RefreshInterval == 0 && cfg.MinRefreshInterval == 0:
		cfg.RefreshInterval, cfg.MinRefreshInterval = defaultRefreshInterval, defaultMinRefreshInterval
	case cfg.RefreshInterval == 0:
		cfg.RefreshInterval = max(defaultRefreshInterval, cfg.MinRefreshInterval)
	case cfg.MinRefreshInterval == 0:
		cfg.MinRefreshInterval = min(defaultMinRefreshInterval, cfg.RefreshInterval)
	case cfg.MinRefreshInterval > cfg.RefreshInterval:
		bad("MinRefreshInterval: %v is longer than RefreshInterval %v", cfg.MinRefreshInterval, cfg.RefreshInterval)
	}

	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultAlgorithms
	}
	for i, a := range cfg.Algorithms {
		switch {
		case strings.EqualFold(a, "none"):
			bad("Algorithms[%d]: %q: unsigned tokens are never accepted", i, a)
		case len(a) >= 2 && strings.EqualFold(a[:2], "HS"):
			bad("Algorithms[%d]: %q: HMAC algorithms are never accepted (the verifier holds public keys only)", i, a)
		default:
			if _, ok := supportedAlgorithms[a]; !ok {
				bad("Algorithms[%d]: %q: unsupported (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)", i, a)
			}
		}
	}
	cfg.Algorithms = append([]string(nil), cfg.Algorithms...)

	for i, a := range cfg.Audiences {
		if a == "" {
			bad("Audiences[%d]: empty", i)
		}
	}
	cfg.Audiences = append([]string(nil), cfg.Audiences...)

	if cfg.ClockSkew < 0 {
		bad("ClockSkew: %v is negative", cfg.ClockSkew)
	} else if cfg.ClockSkew == 0 {
		cfg.ClockSkew = defaultClockSkew
	}
	if cfg.MaxTokenBytes < 0 {
		bad("MaxTokenBytes: %d is negative", cfg.MaxTokenBytes)
	} else if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = defaultMaxTokenBytes
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = defaultCacheSize
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = defaultSubjectClaim
	}
	if cfg.ScopesClaim == "" {
		cfg.ScopesClaim = defaultScopesClaim
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// loadCAs reads a PEM bundle.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CAFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CAFile: %s: no PEM certificate", path)
	}
	return pool, nil
}
