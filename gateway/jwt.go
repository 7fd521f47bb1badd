package gateway

import (
	"context"
	"log/slog"

	"github.com/edgegate/edgegate/auth/jwt"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// newJWTVerifier builds the verifier of a JWT provider.
func newJWTVerifier(c *configv1.JWTProvider, log *slog.Logger) (authint.JWTVerifier, error) {
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
		return authint.JWTVerifier{}, err
	}
	return authint.JWTVerifier{Verifier: v}, nil
}
