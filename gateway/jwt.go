package gateway

import (
	"context"
	"log/slog"

	"github.com/edgegate/edgegate/auth/jwt"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// jwtVerifier adapts auth/jwt to the auth interceptor.
type jwtVerifier struct{ v *jwt.Verifier }

func (j jwtVerifier) Verify(ctx context.Context, token string) (authint.Verified, error) {
	c, err := j.v.Verify(ctx, token)
	if err != nil {
		return authint.Verified{}, err
	}
	return authint.Verified{Subject: c.Subject, Scopes: c.Scopes, Claims: c.Raw, ClaimsJSON: c.JSON()}, nil
}

func (j jwtVerifier) Close() { j.v.Close() }

func newJWTVerifier(c *configv1.JWTProvider, log *slog.Logger) (jwtVerifier, error) {
	cacheSize := int(c.GetCacheSize()) // unset: 0, the default
	if c.CacheSize != nil && cacheSize == 0 {
		cacheSize = -1 // off
	}
	v, err := jwt.New(context.Background(), jwt.Config{
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
	}, jwt.WithLogger(log))
	if err != nil {
		return jwtVerifier{}, err
	}
	return jwtVerifier{v}, nil
}
