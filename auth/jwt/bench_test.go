package jwt

import (
	"context"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify measures Verify of a valid token, keys loaded: "cached"
// is a token seen before (the verified-token cache), the others check the
// signature every time (no cache).
func BenchmarkVerify(b *testing.B) {
	path := filepath.Join(b.TempDir(), "jwks.json")
	writeFile(b, path, standardKeys(b))
	clk := newFakeClock()
	cfg := Config{JWKSFile: path, Issuer: testIssuer, Audiences: []string{testAud}, CacheSize: -1}
	v := newVerifier(b, cfg, WithClock(clk.Now))
	cfg.CacheSize = 0
	cached := newVerifier(b, cfg, WithClock(clk.Now))
	c := claims(clk.Now())
	rs256 := sign(b, rsaKey(), jose.RS256, "rsa-1", c, nil)
	for _, bc := range []struct {
		name string
		v    *Verifier
		tok  string
	}{
		{"RS256", v, rs256},
		{"ES256", v, sign(b, ecKey(), jose.ES256, "ec-1", c, nil)},
		{"EdDSA", v, sign(b, edKey(), jose.EdDSA, "ed-1", c, nil)},
		{"RS256/cached", cached, rs256},
	} {
		v := bc.v
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("rejected/alg-none", func(b *testing.B) {
		tok := craft(`{"alg":"none","kid":"rsa-1"}`, `{"exp":9999999999}`, nil)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
