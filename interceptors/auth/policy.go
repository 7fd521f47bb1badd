package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"

	authpkg "github.com/edgegate/edgegate/auth"
	"github.com/edgegate/edgegate/auth/jwt"
	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/policy"
)

// key carries a route's rules.
var key = policy.NewKey[*Policy]("auth")

// Interceptor is the authentication and authorization policy of the
// chain: the providers of auth_providers, and each route's auth rules.
type Interceptor struct {
	d   policy.Deps
	tls func(ctx context.Context) *tls.ConnectionState
}

// New builds the policy. tlsState returns a call's TLS connection state
// (nil on plaintext), for mutual TLS.
func New(_ *configv1.Config, d policy.Deps, tlsState func(context.Context) *tls.ConnectionState) (*Interceptor, error) {
	return &Interceptor{d: d, tls: tlsState}, nil
}

// Name implements policy.Policy.
func (*Interceptor) Name() string { return "auth" }

// Close implements policy.Policy; the providers of each configuration are
// closed with it.
func (*Interceptor) Close() error { return nil }

// StreamServerInterceptor authenticates and authorizes every call with
// its route's rules (see the package-level StreamServerInterceptor).
func (a *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	o := Options{Policy: key.From, TLS: a.tls}
	if m := a.d.Metrics; m != nil {
		o.Rejected = func(reason, door string) { m.Rejected("auth", reason, door) }
	}
	return StreamServerInterceptor(o)
}

// Compile builds the providers of b's configuration and each route's
// rules. A JWT provider's key refresher runs until the configuration is
// retired (b.OnClose); in a dry run, its key set file is loaded and
// checked, and nothing starts.
func (a *Interceptor) Compile(b *policy.Build) error {
	cfg := b.Config
	var errs []error
	bad := func(path, format string, args ...any) { errs = append(errs, config.FieldErrorf(path, format, args...)) }
	providers := map[string]Provider{}
	for i, ap := range cfg.GetAuthProviders() {
		p := fmt.Sprintf("auth_providers[%d]", i)
		if _, dup := providers[ap.GetName()]; dup {
			bad(p+".name", "duplicate auth provider name %q", ap.GetName())
			continue
		}
		pr, err := a.provider(b, ap, p)
		if err != nil {
			errs = append(errs, err)
		}
		providers[ap.GetName()] = pr // nil after an error: still a known name
	}
	for i, r := range b.Routes() {
		ra := r.GetAuth()
		if ra == nil {
			continue
		}
		p := b.Path(i) + ".auth"
		pol := &Policy{
			AllowAnonymous: ra.GetAllowAnonymous(),
			RequiredScopes: ra.GetRequiredScopes(),
			RequireMTLS:    ra.GetRequireMtls(),
		}
		for j, name := range ra.GetProviders() {
			pr, ok := providers[name]
			if !ok {
				bad(fmt.Sprintf("%s.providers[%d]", p, j), "unknown auth provider %q", name)
			}
			pol.Providers = append(pol.Providers, pr)
		}
		if len(ra.GetAllowedIdentities()) > 0 {
			pol.AllowedIdentities = map[string]bool{}
			for _, id := range ra.GetAllowedIdentities() {
				pol.AllowedIdentities[id] = true
			}
		}
		if expr := ra.GetCel(); expr != "" {
			prg, err := authpkg.CompileCEL(expr)
			if err != nil {
				bad(p+".cel", "invalid CEL expression: %s", strings.ReplaceAll(err.Error(), "\n", " "))
			}
			pol.CEL = prg
		}
		policy.Put(b, i, key, pol)
	}
	return errors.Join(errs...)
}

// provider builds one provider of auth_providers (at path).
func (a *Interceptor) provider(b *policy.Build, ap *configv1.AuthProvider, path string) (Provider, error) {
	switch k := ap.GetKind().(type) {
	case *configv1.AuthProvider_ApiKey:
		p := &APIKey{ProviderName: ap.GetName(), Header: strings.ToLower(k.ApiKey.GetHeader())}
		seen := map[[32]byte]bool{}
		for j, key := range k.ApiKey.GetKeys() {
			h, err := ParseHash(key.GetSha256())
			if err != nil {
				return nil, config.FieldErrorf(fmt.Sprintf("%s.api_key.keys[%d]", path, j), "%v", err)
			}
			if seen[h] {
				return nil, config.FieldErrorf(fmt.Sprintf("%s.api_key.keys[%d].sha256", path, j), "duplicate key")
			}
			seen[h] = true
			p.Keys = append(p.Keys, APIKeyEntry{SHA256: h, Principal: key.GetPrincipal(), Scopes: key.GetScopes()})
		}
		return p, nil
	case *configv1.AuthProvider_Mtls:
		return &MTLS{ProviderName: ap.GetName()}, nil
	case *configv1.AuthProvider_Jwt:
		j := k.Jwt
		switch {
		case (j.GetJwksFile() == "") == (j.GetJwksUrl() == ""):
			return nil, config.FieldErrorf(path+".jwt", "exactly one of jwks_file and jwks_url is required")
		case j.GetJwksUrl() != "" && !strings.HasPrefix(j.GetJwksUrl(), "https://"):
			return nil, config.FieldErrorf(path+".jwt.jwks_url", "%q: want an https:// URL", j.GetJwksUrl())
		}
		for n, alg := range j.GetAlgorithms() {
			if strings.EqualFold(alg, "none") || strings.HasPrefix(strings.ToUpper(alg), "HS") {
				return nil, config.FieldErrorf(fmt.Sprintf("%s.jwt.algorithms[%d]", path, n), "%q is never accepted", alg)
			}
		}
		jc := jwtConfig(j)
		if b.DryRun {
			if err := jwt.Check(context.Background(), jc); err != nil {
				return nil, config.FieldErrorf(path+".jwt", "%w", err)
			}
			return &JWT{ProviderName: ap.GetName(), Header: strings.ToLower(j.GetHeader()), Cookie: j.GetCookie()}, nil
		}
		v, err := jwt.New(context.Background(), jc, jwt.WithLogger(b.Log))
		if err != nil {
			return nil, config.FieldErrorf(path+".jwt", "%w", err)
		}
		b.OnClose(v.Close)
		return &JWT{ProviderName: ap.GetName(), Verifier: JWTVerifier{Verifier: v}, Header: strings.ToLower(j.GetHeader()), Cookie: j.GetCookie()}, nil
	}
	return nil, config.FieldErrorf(path, "no provider kind")
}

// jwtConfig is the verifier configuration of a JWT provider.
func jwtConfig(c *configv1.JWTProvider) jwt.Config {
	cacheSize := int(c.GetCacheSize()) // unset: 0, the default
	if c.CacheSize != nil && cacheSize == 0 {
		cacheSize = -1 // off
	}
	return jwt.Config{
		JWKSFile:           c.GetJwksFile(),
		JWKSURL:            c.GetJwksUrl(),
		CAFile:             c.GetJwksCaFile(),
		RefreshInterval:    c.GetRefreshInterval().AsDuration(),
		MinRefreshInterval: c.GetMinRefreshInterval().AsDuration(),
		Algorithms:         c.GetAlgorithms(),
		Issuer:             c.GetIssuer(),
		Audiences:          c.GetAudiences(),
		ClockSkew:          c.GetClockSkew().AsDuration(),
		MaxTokenBytes:      int(c.GetMaxTokenBytes()),
		SubjectClaim:       c.GetSubjectClaim(),
		ScopesClaim:        c.GetScopesClaim(),
		CacheSize:          cacheSize,
	}
}

// Headers are the request headers the REST door must forward for the
// providers of cfg (API key headers, token headers, cookies).
func Headers(cfg *configv1.Config) []string {
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
