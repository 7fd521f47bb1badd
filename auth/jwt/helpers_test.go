package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test keys, generated once per run.
var (
	rsaKey     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey2    = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey3    = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaOther   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) }) // in no key set
	ecKey      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ec384Key   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
	edKey      = sync.OnceValue(func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k })
	testIssuer = "https://issuer.test"
	testAud    = "edgegate"
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func publicOf(priv crypto.Signer) crypto.PublicKey { return priv.Public() }

// jwk is the public JWK of priv.
func jwk(priv crypto.Signer, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: publicOf(priv), KeyID: kid, Algorithm: alg, Use: "sig"}
}

// jwksJSON marshals a key set.
func jwksJSON(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// standardKeys is the key set of most tests.
func standardKeys(t testing.TB) []byte {
	return jwksJSON(t,
		jwk(rsaKey(), "rsa-1", "RS256"),
		jwk(rsaKey3(), "rsa-any", ""), // no alg: any RSA algorithm
		jwk(ecKey(), "ec-1", "ES256"),
		jwk(ec384Key(), "ec384-1", ""),
		jwk(edKey(), "ed-1", "EdDSA"),
		jwk(rsaKey2(), "rsa-384", "RS384"),
	)
}

// claims are standard valid claims at now.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":   testIssuer,
		"aud":   testAud,
		"sub":   "user-42",
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Add(-time.Minute).Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"scope": "read write",
	}
}

// sign signs c with priv (alg, kid in the header; no kid when empty) and
// extra protected headers.
func sign(t testing.TB, priv any, alg jose.SignatureAlgorithm, kid string, c map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	k := priv
	if kid != "" {
		k = jose.JSONWebKey{Key: priv, KeyID: kid}
	}
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "JWT"}}
	for hk, hv := range extra {
		if hv == nil {
			delete(opts.ExtraHeaders, hk)
			continue
		}
		opts.ExtraHeaders[hk] = hv
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var b64 = base64.RawURLEncoding

// craft builds a token from a raw header, a raw payload and raw signature
// bytes, all encoded as given.
func craft(header, payload string, sig []byte) string {
	return b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(sig)
}

// fakeClock is a clock that tests move.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwksServer serves a key set over https on 127.0.0.1 and counts fetches.
type jwksServer struct {
	srv     *httptest.Server
	caFile  string
	fetches atomic.Int64
	delay   atomic.Int64 // per request, nanoseconds

	mu     sync.Mutex
	body   []byte
	status int
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(s.caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *jwksServer) URL() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *jwksServer) Set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// discard is a logger for tests that do not read the log.
var discard = slog.New(slog.DiscardHandler)

// newVerifier builds a Verifier closed at the end of the test.
func newVerifier(t testing.TB, cfg Config, opts ...Option) *Verifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := New(ctx, cfg, append([]Option{WithLogger(discard)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// writeFile writes b to a file of dir atomically (rename), as a deployment
// would.
func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// reasonOf returns the Reason of a Verify error, failing the test when err
// is nil or not an *Error.
func reasonOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("Verify succeeded; want an error")
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("Verify error %T %v is not an *Error", err, err)
	}
	return e.Reason
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
