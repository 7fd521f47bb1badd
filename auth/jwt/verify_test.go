package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// standard is the verifier of most tests: the standard key set served over
// https, a fixed clock (so no unknown-kid refresh happens), the test issuer
// and audiences.
func standard(t *testing.T, mod ...func(*Config)) (*Verifier, *fakeClock) {
	t.Helper()
	srv := newJWKSServer(t, standardKeys(t))
	clk := newFakeClock()
	cfg := Config{
		JWKSURL:   srv.URL(),
		CAFile:    srv.caFile,
		Issuer:    testIssuer,
		Audiences: []string{testAud, "other"},
	}
	for _, m := range mod {
		m(&cfg)
	}
	return newVerifier(t, cfg, WithClock(clk.Now)), clk
}

func with(c map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestVerifyAccepts(t *testing.T) {
	v, clk := standard(t)
	now := clk.Now()
	c := with(claims(now), "tenant", "acme", "roles", []string{"admin"})
	for _, tc := range []struct {
		name string
		priv any
		alg  jose.SignatureAlgorithm
		kid  string
	}{
		{"RS256", rsaKey(), jose.RS256, "rsa-1"},
		{"ES256", ecKey(), jose.ES256, "ec-1"},
		{"EdDSA", edKey(), jose.EdDSA, "ed-1"},
		{"PS256 with an RSA key without alg", rsaKey3(), jose.PS256, "rsa-any"},
		{"RS384", rsaKey2(), jose.RS384, "rsa-384"},
		{"ES384", ec384Key(), jose.ES384, "ec384-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(ctxT(t), sign(t, tc.priv, tc.alg, tc.kid, c, nil))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != "user-42" || got.Issuer != testIssuer ||
				!slices.Equal(got.Audience, []string{testAud}) ||
				!slices.Equal(got.Scopes, []string{"read", "write"}) ||
				!got.Expiry.Equal(time.Unix(now.Add(time.Hour).Unix(), 0)) {
				t.Errorf("claims = %+v", got)
			}
			if got.Raw["tenant"] != "acme" || got.Raw["roles"].([]any)[0] != "admin" {
				t.Errorf("Raw = %v", got.Raw)
			}
		})
	}
}

func TestVerifyAcceptsWithinSkew(t *testing.T) {
	v, clk := standard(t)
	now := clk.Now()
	for name, c := range map[string]map[string]any{
		"expired by less than the skew":    with(claims(now), "exp", now.Add(-29*time.Second).Unix()),
		"nbf ahead by less than the skew":  with(claims(now), "nbf", now.Add(29*time.Second).Unix()),
		"iat ahead by less than the skew":  with(claims(now), "iat", now.Add(29*time.Second).Unix()),
		"fractional exp":                   with(claims(now), "exp", float64(now.Unix())+0.5),
		"no nbf, no iat":                   with(claims(now), "nbf", nil, "iat", nil),
		"aud array with one accepted":      with(claims(now), "aud", []string{"x", "other"}),
		"exp in the year 3000000 (capped)": with(claims(now), "exp", 1e14),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", c, nil)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyTypHeader(t *testing.T) {
	v, clk := standard(t)
	c := claims(clk.Now())
	for _, typ := range []any{nil, "JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/JWT"} {
		if _, err := v.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", c, map[jose.HeaderKey]any{"typ": typ})); err != nil {
			t.Errorf("typ %v: %v", typ, err)
		}
	}
	for _, typ := range []any{"JOSE", "JWE", "secevent+jwt", 7, ""} {
		err := verifyErr(t, v, sign(t, ecKey(), jose.ES256, "ec-1", c, map[jose.HeaderKey]any{"typ": typ}))
		if got := reasonOf(t, err); got != reasonTyp {
			t.Errorf("typ %v: reason %q, want %q", typ, got, reasonTyp)
		}
	}
}

func verifyErr(t *testing.T, v *Verifier, tok string) error {
	t.Helper()
	c, err := v.Verify(ctxT(t), tok)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", c)
	}
	if c != nil {
		t.Fatal("Verify returned claims with an error")
	}
	return err
}

func TestScopesAndSubject(t *testing.T) {
	v, clk := standard(t)
	now := clk.Now()
	for name, tc := range map[string]struct {
		scope any
		want  []string
	}{
		"space-separated string": {"a  b\tc", []string{"a", "b", "c"}},
		"array":                  {[]string{"a", "b c"}, []string{"a", "b c"}},
		"empty string":           {"", []string{}},
		"absent":                 {nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := v.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", with(claims(now), "scope", tc.scope), nil))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Scopes, tc.want) || (tc.want == nil) != (got.Scopes == nil) {
				t.Errorf("Scopes = %#v, want %#v", got.Scopes, tc.want)
			}
		})
	}

	custom, clk2 := standard(t, func(c *Config) { c.SubjectClaim, c.ScopesClaim = "client_id", "scp" })
	c := with(claims(clk2.Now()), "client_id", "svc-7", "scp", []string{"orders:read"})
	got, err := custom.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", c, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "svc-7" || !slices.Equal(got.Scopes, []string{"orders:read"}) || got.Raw["sub"] != "user-42" {
		t.Errorf("claims = %+v", got)
	}
}

func TestVerifyNoKID(t *testing.T) {
	v, clk := standard(t)
	c := claims(clk.Now())
	// Only ed-1 fits EdDSA: a token without kid is accepted.
	if _, err := v.Verify(ctxT(t), sign(t, edKey(), jose.EdDSA, "", c, nil)); err != nil {
		t.Errorf("EdDSA without kid: %v", err)
	}
	// rsa-1 and rsa-any both fit RS256: refused.
	if got := reasonOf(t, verifyErr(t, v, sign(t, rsaKey(), jose.RS256, "", c, nil))); got != reasonMissingKID {
		t.Errorf("RS256 without kid: reason %q, want %q", got, reasonMissingKID)
	}
}

func TestVerifyRejects(t *testing.T) {
	v, clk := standard(t)
	now := clk.Now()
	good := claims(now)
	es := func(c map[string]any) string { return sign(t, ecKey(), jose.ES256, "ec-1", c, nil) }
	valid := es(good)
	parts := strings.Split(valid, ".")
	payloadJSON, _ := json.Marshal(good)

	rsaPub := &rsaKey().PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(rsaPub)
	pemPKIX := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pemPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tampered := with(good, "sub", "admin")
	tamperedJSON, _ := json.Marshal(tampered)

	big := strings.Repeat("x", 9000)
	rsaSig := func(c map[string]any, kid string) string { return sign(t, rsaKey(), jose.RS256, kid, c, nil) }

	cases := []struct {
		name, token, reason string
	}{
		// alg "none", hand-crafted, in several casings, with and without a signature.
		{"alg none", craft(`{"alg":"none","typ":"JWT"}`, string(payloadJSON), nil), reasonAlgorithm},
		{"alg None", craft(`{"alg":"None","kid":"rsa-1"}`, string(payloadJSON), nil), reasonAlgorithm},
		{"alg NONE", craft(`{"alg":"NONE","kid":"ec-1"}`, string(payloadJSON), []byte("sig")), reasonAlgorithm},
		{"alg nOnE", craft(`{"alg":"nOnE"}`, string(payloadJSON), nil), reasonAlgorithm},
		{"alg none with the valid signature", craft(`{"alg":"none","kid":"ec-1"}`, string(payloadJSON), mustB64(t, parts[2])), reasonAlgorithm},
		{"no alg", craft(`{"kid":"ec-1"}`, string(payloadJSON), []byte("sig")), reasonAlgorithm},
		{"alg rs256 (case)", craft(`{"alg":"rs256","kid":"rsa-1"}`, string(payloadJSON), []byte("sig")), reasonAlgorithm},
		{"alg duplicated", craft(`{"alg":"RS256","alg":"none","kid":"rsa-1"}`, string(payloadJSON), nil), reasonMalformed},
		{"alg not a string", craft(`{"alg":256,"kid":"rsa-1"}`, string(payloadJSON), []byte("sig")), reasonAlgorithm},

		// HS256 signed with the RSA public key's bytes as the HMAC secret.
		{"HS256 with the PEM (PKIX) public key", sign(t, pemPKIX, jose.HS256, "rsa-1", good, nil), reasonAlgorithm},
		{"HS256 with the PEM (PKCS1) public key", sign(t, pemPKCS1, jose.HS256, "rsa-1", good, nil), reasonAlgorithm},
		{"HS256 with the DER (PKIX) public key", sign(t, pkix, jose.HS256, "rsa-any", good, nil), reasonAlgorithm},
		{"HS256 with the DER (PKCS1) public key", sign(t, pkcs1, jose.HS256, "rsa-any", good, nil), reasonAlgorithm},
		{"HS384 with the PEM public key, no kid", sign(t, pemPKIX, jose.HS384, "", good, nil), reasonAlgorithm},
		{"HS512 with the DER public key", sign(t, pkix, jose.HS512, "rsa-1", good, nil), reasonAlgorithm},

		// Keys.
		{"unknown kid", sign(t, rsaKey(), jose.RS256, "rsa-9", good, nil), reasonUnknownKID},
		{"kid is a path", sign(t, rsaKey(), jose.RS256, "../../etc/passwd", good, nil), reasonUnknownKID},
		{"kid is an absolute path", sign(t, rsaKey(), jose.RS256, "/etc/passwd", good, nil), reasonUnknownKID},
		{"kid is a URL", sign(t, rsaKey(), jose.RS256, "http://x/y", good, nil), reasonUnknownKID},
		{"kid is a file URL", sign(t, rsaKey(), jose.RS256, "file:///etc/passwd", good, nil), reasonUnknownKID},
		{"jku and x5u are not followed", sign(t, rsaOther(), jose.RS256, "rsa-9", good, map[jose.HeaderKey]any{"jku": "https://127.0.0.1:1/jwks", "x5u": "https://127.0.0.1:1/x5u"}), reasonUnknownKID},
		{"embedded jwk is not trusted", sign(t, rsaOther(), jose.RS256, "rsa-1", good, map[jose.HeaderKey]any{"jwk": jwk(rsaOther(), "rsa-1", "RS256")}), reasonSignature},
		{"signed by another RSA key with a known kid", sign(t, rsaOther(), jose.RS256, "rsa-1", good, nil), reasonSignature},
		{"signed by another EC key with a known kid", sign(t, otherEC, jose.ES256, "ec-1", good, nil), reasonSignature},
		{"JWK alg RS384, token RS256", sign(t, rsaKey2(), jose.RS256, "rsa-384", good, nil), reasonKeyMismatch},
		{"JWK alg RS256, token PS256", sign(t, rsaKey(), jose.PS256, "rsa-1", good, nil), reasonKeyMismatch},
		{"ES256 token, RSA key", sign(t, ecKey(), jose.ES256, "rsa-any", good, nil), reasonKeyMismatch},
		{"ES384 token, P-256 key", sign(t, ec384Key(), jose.ES384, "ec-1", good, nil), reasonKeyMismatch},
		{"ES256 token, P-384 key", sign(t, ecKey(), jose.ES256, "ec384-1", good, nil), reasonKeyMismatch},
		{"EdDSA token, EC key", sign(t, edKey(), jose.EdDSA, "ec-1", good, nil), reasonKeyMismatch},
		{"RS256 token, Ed25519 key", sign(t, rsaKey(), jose.RS256, "ed-1", good, nil), reasonKeyMismatch},

		// Signature.
		{"tampered payload", parts[0] + "." + b64.EncodeToString(tamperedJSON) + "." + parts[2], reasonSignature},
		{"tampered header (kid swapped)", b64.EncodeToString([]byte(`{"alg":"ES256","kid":"ec-1","typ":"JWT","x":1}`)) + "." + parts[1] + "." + parts[2], reasonSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", reasonSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], reasonSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(es(with(good, "sub", "x")), ".")[2], reasonSignature},

		// Claims.
		{"expired beyond the skew", es(with(good, "exp", now.Add(-31*time.Second).Unix())), reasonExpired},
		{"expired long ago", es(with(good, "exp", 0)), reasonExpired},
		{"expired negative", es(with(good, "exp", -1e300)), reasonExpired},
		{"nbf beyond the skew", es(with(good, "nbf", now.Add(31*time.Second).Unix())), reasonNotYetValid},
		{"iat in the future", es(with(good, "iat", now.Add(time.Hour).Unix())), reasonIssuedInFuture},
		{"wrong iss", es(with(good, "iss", "https://evil.test")), reasonIssuer},
		{"iss differs by case", es(with(good, "iss", "https://ISSUER.test")), reasonIssuer},
		{"no iss", es(with(good, "iss", nil)), reasonIssuer},
		{"wrong aud", es(with(good, "aud", "someone-else")), reasonAudience},
		{"aud array without ours", es(with(good, "aud", []string{"a", "b"})), reasonAudience},
		{"no aud", es(with(good, "aud", nil)), reasonAudience},
		{"missing exp", es(with(good, "exp", nil)), reasonMissingExp},
		{"exp a string", es(with(good, "exp", "2099-01-01")), reasonMalformed},
		{"nbf a string", es(with(good, "nbf", "0")), reasonMalformed},
		{"iss a number", es(with(good, "iss", 1)), reasonMalformed},
		{"aud mixed types", es(with(good, "aud", []any{testAud, 1})), reasonMalformed},
		{"sub an object", es(with(good, "sub", map[string]any{"id": 1})), reasonMalformed},
		{"scope a number", es(with(good, "scope", 7)), reasonMalformed},
		{"scope array of numbers", es(with(good, "scope", []int{1})), reasonMalformed},

		// Size and shape.
		{"oversized, signed", es(with(good, "pad", big)), reasonTooLarge},
		{"oversized garbage", strings.Repeat("A", 8193), reasonTooLarge},
		{"empty", "", reasonMalformed},
		{"one part", "abc", reasonMalformed},
		{"two parts", parts[0] + "." + parts[1], reasonMalformed},
		{"four parts", valid + ".x", reasonMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], reasonMalformed},
		{"empty payload", parts[0] + ".." + parts[2], reasonMalformed},
		{"dots only", "..", reasonMalformed},
		{"header bad base64", "e!J." + parts[1] + "." + parts[2], reasonMalformed},
		{"header padded base64", b64.EncodeToString([]byte(`{"alg":"ES256"}`)) + "==." + parts[1] + "." + parts[2], reasonMalformed},
		{"header standard base64", "eyJ+/" + "." + parts[1] + "." + parts[2], reasonMalformed},
		{"header not JSON", b64.EncodeToString([]byte("not json")) + "." + parts[1] + "." + parts[2], reasonMalformed},
		{"header a JSON array", b64.EncodeToString([]byte(`["ES256"]`)) + "." + parts[1] + "." + parts[2], reasonMalformed},
		{"header kid a number", craft(`{"alg":"ES256","kid":5}`, string(payloadJSON), []byte("s")), reasonMalformed},
		{"header crit", sign(t, ecKey(), jose.ES256, "ec-1", good, map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), reasonMalformed},
		{"header b64 false", craft(`{"alg":"ES256","kid":"ec-1","b64":false,"crit":["b64"]}`, string(payloadJSON), []byte("s")), reasonMalformed},
		{"payload not JSON", parts[0] + "." + b64.EncodeToString([]byte("nope")) + "." + parts[2], reasonSignature},
		{"line break inside", parts[0] + ".\n" + parts[1] + "." + parts[2], reasonMalformed},
		{"trailing space", valid + " ", reasonMalformed},
		{"Bearer prefix", "Bearer " + valid, reasonMalformed},
		{"non-canonical base64 (trailing bits)", parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]), reasonMalformed},

		// RSA tokens through the same door.
		{"RS256 expired", rsaSig(with(good, "exp", now.Add(-time.Hour).Unix()), "rsa-1"), reasonExpired},
		{"RS256 wrong aud", rsaSig(with(good, "aud", "x"), "rsa-1"), reasonAudience},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyErr(t, v, tc.token)
			if got := reasonOf(t, err); got != tc.reason {
				t.Errorf("reason %q (%v), want %q", got, err, tc.reason)
			}
			msg := err.Error()
			for _, secret := range append(strings.Split(tc.token, "."), "user-42", "issuer.test", "evil", "rsa-1", "ec-1", "passwd", "http://x") {
				if len(secret) >= 3 && strings.Contains(msg, secret) {
					t.Errorf("message %q contains %q", msg, secret)
				}
			}
		})
	}
}

// TestVerifyPayloadNotObject: a correctly signed payload that is not a JSON
// object is refused as malformed.
func TestVerifyPayloadNotObject(t *testing.T) {
	v, _ := standard(t)
	for _, p := range []string{"nope", "null", "[]", `"x"`, "{} {}"} {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey(), KeyID: "ec-1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Sign([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		if got := reasonOf(t, verifyErr(t, v, tok)); got != reasonMalformed {
			t.Errorf("payload %q: reason %q, want malformed", p, got)
		}
	}
}

func TestVerifyAlgorithmNotAllowed(t *testing.T) {
	v, clk := standard(t, func(c *Config) { c.Algorithms = []string{"ES256"} })
	c := claims(clk.Now())
	for name, tok := range map[string]string{
		"RS512": sign(t, rsaKey3(), jose.RS512, "rsa-any", c, nil),
		"RS256": sign(t, rsaKey(), jose.RS256, "rsa-1", c, nil),
		"EdDSA": sign(t, edKey(), jose.EdDSA, "ed-1", c, nil),
		"ES384": sign(t, ec384Key(), jose.ES384, "ec384-1", c, nil),
	} {
		if got := reasonOf(t, verifyErr(t, v, tok)); got != reasonAlgorithm {
			t.Errorf("%s: reason %q, want %q", name, got, reasonAlgorithm)
		}
	}
	if _, err := v.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", c, nil)); err != nil {
		t.Errorf("ES256: %v", err)
	}
}

// TestHMACNeverReachesAKey forces HS256 into the parser's allowlist (New
// refuses it): the key lookup still refuses it, as no key family serves HMAC.
func TestHMACNeverReachesAKey(t *testing.T) {
	v, clk := standard(t)
	v.algs = append(slices.Clone(v.algs), jose.HS256)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	tok := sign(t, der, jose.HS256, "rsa-any", claims(clk.Now()), nil)
	if got := reasonOf(t, verifyErr(t, v, tok)); got != reasonAlgorithm {
		t.Errorf("reason %q, want %q", got, reasonAlgorithm)
	}
}

func TestErrorMessage(t *testing.T) {
	if got := (&Error{Reason: "expired", Msg: "token is expired"}).Error(); got != "token is expired" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Reason: "expired"}).Error(); got != "invalid token (expired)" {
		t.Errorf("Error() = %q", got)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flipTrailingBits sets an unused trailing bit of s (len%4 is 2 or 3), which
// go's decoder ignores: the bytes are the same, the string is not canonical.
func flipTrailingBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}
