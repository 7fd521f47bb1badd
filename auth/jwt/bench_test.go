package jwt

import (
	"context"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify measures Verify of a valid token, keys cached.
func BenchmarkVerify(b *testing.B) {
	path := filepath.Join(b.TempDir(), "jwks.json")
	writeFile(b, path, standardKeys(b))
	clk := newFakeClock()
	v := newVerifier(b, Config{JWKSFile: path, Issuer: testIssuer, Audiences: []string{testAud}}, WithClock(clk.Now))
	c := claims(clk.Now())
	for _, bc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(b, rsaKey(), jose.RS256, "rsa-1", c, nil)},
		{"ES256", sign(b, ecKey(), jose.ES256, "ec-1", c, nil)},
		{"EdDSA", sign(b, edKey(), jose.EdDSA, "ed-1", c, nil)},
	} {
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
