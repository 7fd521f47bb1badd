package jwt

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

var knownReasons = map[string]bool{
	reasonMalformed: true, reasonTooLarge: true, reasonAlgorithm: true, reasonTyp: true,
	reasonUnknownKID: true, reasonMissingKID: true, reasonKeyMismatch: true, reasonSignature: true,
	reasonMissingExp: true, reasonExpired: true, reasonNotYetValid: true, reasonIssuedInFuture: true,
	reasonIssuer: true, reasonAudience: true,
}

// FuzzVerify feeds arbitrary strings to Verify: it never panics, accepts
// nothing but the valid seeds, and fails with an *Error of a known Reason
// whose message does not repeat the input.
//
// `go test` runs the seeds; `go test -fuzz FuzzVerify` explores.
func FuzzVerify(f *testing.F) {
	path := filepath.Join(f.TempDir(), "jwks.json")
	writeFile(f, path, standardKeys(f))
	clk := newFakeClock() // frozen: no refresh is ever due
	v := newVerifier(f, Config{JWKSFile: path, Issuer: testIssuer, Audiences: []string{testAud}}, WithClock(clk.Now))

	c := claims(clk.Now())
	valid := map[string]bool{
		sign(f, rsaKey(), jose.RS256, "rsa-1", c, nil):                               true,
		sign(f, ecKey(), jose.ES256, "ec-1", c, nil):                                 true,
		sign(f, edKey(), jose.EdDSA, "ed-1", c, nil):                                 true,
		sign(f, ec384Key(), jose.ES384, "ec384-1", c, nil):                           true,
		sign(f, rsaKey3(), jose.PS256, "rsa-any", c, nil):                            true,
		sign(f, edKey(), jose.EdDSA, "", c, map[jose.HeaderKey]any{"typ": "at+jwt"}): true,
	}
	for tok := range valid {
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1])
		f.Add(parts[1] + "." + parts[0] + "." + parts[2])
	}
	for _, s := range []string{
		"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30",
		craft(`{"alg":"none"}`, `{"exp":9999999999}`, nil),
		craft(`{"alg":"NONE","kid":"rsa-1"}`, `{"exp":9999999999}`, nil),
		craft(`{"alg":"HS256","kid":"rsa-1"}`, `{"exp":9999999999}`, []byte("0123456789abcdef0123456789abcdef")),
		craft(`{"alg":"ES256","kid":"../../etc/passwd"}`, `{}`, []byte("x")),
		craft(`{"alg":"ES256","kid":"ec-1","crit":["b64"],"b64":false}`, `{}`, []byte("x")),
		craft(`{"alg":"RS256","jwk":{"kty":"oct","k":"AA"}}`, `{}`, []byte("x")),
		craft(`{"alg":"RS256","x5c":["AAAA"]}`, `{}`, []byte("x")),
		craft(`{"alg":"ES256","kid":"ec-1"}`, `{"exp":1e999}`, make([]byte, 64)),
		craft(`{"alg":"ES256"`, `{`, nil),
		strings.Repeat("A", 9000),
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		claims, err := v.Verify(ctx, token)
		if err == nil {
			if claims == nil {
				t.Fatal("nil claims and nil error")
			}
			if !valid[token] {
				t.Fatalf("accepted a token that is not a valid seed: %q", token)
			}
			return
		}
		if claims != nil {
			t.Fatal("claims with an error")
		}
		e, ok := err.(*Error) //nolint:errorlint // Verify's contract is that every failure is an *Error itself, not one wrapped: the fuzz test checks exactly that
		if !ok {
			t.Fatalf("error %T %v is not an *Error", err, err)
		}
		if !knownReasons[e.Reason] || e.Msg == "" {
			t.Fatalf("error %+v: unknown reason or empty message", e)
		}
		if len(token) >= 8 && strings.Contains(e.Error(), token) {
			t.Fatalf("message %q repeats the token", e.Error())
		}
	})
}
