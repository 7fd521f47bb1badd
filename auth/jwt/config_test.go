package jwt

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestNewRefusesConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, file, standardKeys(t))
	client := &http.Client{}
	for _, tc := range []struct {
		name string
		cfg  Config
		opts []Option
		want string
	}{
		{"none", Config{JWKSFile: file, Algorithms: []string{"RS256", "none"}}, nil, `Algorithms[1]: "none"`},
		{"None", Config{JWKSFile: file, Algorithms: []string{"None"}}, nil, `Algorithms[0]: "None"`},
		{"HS256", Config{JWKSFile: file, Algorithms: []string{"HS256"}}, nil, `Algorithms[0]: "HS256": HMAC`},
		{"hs512", Config{JWKSFile: file, Algorithms: []string{"ES256", "hs512"}}, nil, `Algorithms[1]: "hs512": HMAC`},
		{"unsupported", Config{JWKSFile: file, Algorithms: []string{"ES512"}}, nil, `Algorithms[0]: "ES512": unsupported`},
		{"wrong case", Config{JWKSFile: file, Algorithms: []string{"rs256"}}, nil, `Algorithms[0]: "rs256": unsupported`},
		{"neither source", Config{}, nil, "one of them is required"},
		{"both sources", Config{JWKSFile: file, JWKSURL: "https://127.0.0.1/jwks"}, nil, "set only one"},
		{"http URL", Config{JWKSURL: "http://127.0.0.1/jwks"}, nil, "scheme must be https"},
		{"ftp URL", Config{JWKSURL: "ftp://127.0.0.1/jwks"}, nil, "scheme must be https"},
		{"relative URL", Config{JWKSURL: "/jwks.json"}, nil, "scheme must be https"},
		{"no host", Config{JWKSURL: "https:///jwks"}, nil, "no host"},
		{"password not shown", Config{JWKSURL: "http://user:hunter2@127.0.0.1/jwks"}, nil, "xxxxx"}, //nolint:gosec // G101: a made-up password, there to check that errors redact it
		{"CAFile with a file", Config{JWKSFile: file, CAFile: file}, nil, "CAFile: only with JWKSURL"},
		{"CAFile with a client", Config{JWKSURL: "https://127.0.0.1/jwks", CAFile: file}, []Option{WithHTTPClient(client)}, "not with WithHTTPClient"},
		{"CAFile not PEM", Config{JWKSURL: "https://127.0.0.1/jwks", CAFile: file}, nil, "no PEM certificate"},
		{"CAFile missing", Config{JWKSURL: "https://127.0.0.1/jwks", CAFile: file + ".nope"}, nil, "CAFile:"},
		{"negative refresh", Config{JWKSFile: file, RefreshInterval: -time.Second}, nil, "RefreshInterval: -1s is negative"},
		{"negative min refresh", Config{JWKSFile: file, MinRefreshInterval: -time.Second}, nil, "MinRefreshInterval: -1s is negative"},
		{"min refresh above refresh", Config{JWKSFile: file, RefreshInterval: time.Minute, MinRefreshInterval: time.Hour}, nil, "longer than RefreshInterval"},
		{"negative skew", Config{JWKSFile: file, ClockSkew: -time.Second}, nil, "ClockSkew"},
		{"negative size", Config{JWKSFile: file, MaxTokenBytes: -1}, nil, "MaxTokenBytes"},
		{"empty audience", Config{JWKSFile: file, Audiences: []string{"a", ""}}, nil, "Audiences[1]: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(ctxT(t), tc.cfg, append([]Option{WithLogger(discard)}, tc.opts...)...)
			if err == nil {
				v.Close()
				t.Fatal("New accepted the config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, file, standardKeys(t))
	v := newVerifier(t, Config{JWKSFile: file})
	got := v.cfg
	if got.RefreshInterval != 10*time.Minute || got.MinRefreshInterval != 30*time.Second ||
		got.ClockSkew != 30*time.Second || got.MaxTokenBytes != 8192 ||
		got.SubjectClaim != "sub" || got.ScopesClaim != "scope" ||
		!slices.Equal(got.Algorithms, []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}) {
		t.Errorf("defaults = %+v", got)
	}
	v2 := newVerifier(t, Config{JWKSFile: file, MinRefreshInterval: time.Hour})
	if v2.cfg.RefreshInterval != time.Hour {
		t.Errorf("RefreshInterval = %v, want MinRefreshInterval 1h", v2.cfg.RefreshInterval)
	}
}

func TestNewFailsWhenFirstLoadFails(t *testing.T) {
	dir := t.TempDir()
	closed := newJWKSServer(t, standardKeys(t))
	closed.srv.Close()
	for _, tc := range []struct {
		name   string
		status int
		body   []byte
		cfg    func(s *jwksServer) Config
		want   string
	}{
		{"status 500", 500, standardKeys(t), nil, "status 500"},
		{"status 204", 204, nil, nil, "status 204"},
		{"bad JSON", 200, []byte("{"), nil, "not a JSON Web Key Set"},
		{"no keys member", 200, []byte(`{"kids":[]}`), nil, `no "keys"`},
		{"no usable key", 200, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0"}]}`), nil, "no usable key among 1"},
		{"too large", 200, bytes.Repeat([]byte("x"), maxJWKSBytes+1), nil, "larger than"},
		{"untrusted certificate (system roots)", 200, standardKeys(t), func(s *jwksServer) Config { return Config{JWKSURL: s.URL()} }, "certificate"},
		{"server down", 200, nil, func(*jwksServer) Config { return Config{JWKSURL: closed.URL(), CAFile: closed.caFile} }, "loading keys from https://127.0.0.1"},
		{"missing file", 0, nil, func(*jwksServer) Config { return Config{JWKSFile: filepath.Join(dir, "nope.json")} }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, tc.body)
			srv.Set(tc.status, tc.body)
			cfg := Config{JWKSURL: srv.URL(), CAFile: srv.caFile}
			if tc.cfg != nil {
				cfg = tc.cfg(srv)
			}
			v, err := New(ctxT(t), cfg, WithLogger(discard))
			if err == nil {
				v.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestRedirectToHTTPRefused: a redirect may not leave https, even with a
// caller's client.
func TestRedirectToHTTPRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(standardKeys(t))
	}))
	t.Cleanup(plain.Close)
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/jwks", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	v, err := New(ctxT(t), Config{JWKSURL: redirect.URL}, WithLogger(discard), WithHTTPClient(redirect.Client()))
	if err == nil {
		v.Close()
		t.Fatal("New succeeded")
	}
	if !strings.Contains(err.Error(), "redirect away from https") {
		t.Errorf("error %q", err)
	}
}

func TestNewFailsWhenContextEnds(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	srv.delay.Store(int64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL(), CAFile: srv.caFile}, WithLogger(discard))
	if err == nil {
		v.Close()
		t.Fatal("New succeeded")
	}
}

// TestUnusableKeysIgnored: a key set with keys that must never verify a
// token loads its usable keys, logs the others, and tokens naming the
// others are refused.
func TestUnusableKeysIgnored(t *testing.T) {
	small := mustRSA(1024)
	p521 := mustEC(elliptic.P521())
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(k jose.JSONWebKey) json.RawMessage {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rsaEnc := jwk(rsaKey3(), "enc", "")
	rsaEnc.Use = "enc"
	keys := []json.RawMessage{
		raw(jwk(ecKey(), "good", "ES256")),
		raw(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"}),
		raw(rsaEnc),
		raw(jose.JSONWebKey{Key: rsaKey3(), KeyID: "private", Use: "sig"}),
		raw(jose.JSONWebKey{Key: edKey(), KeyID: "private-ed"}),
		raw(jwk(small, "small", "RS256")),
		raw(jwk(p521, "p521", "")),
		json.RawMessage(`{"kty":"OKP","crv":"X25519","kid":"x25519","x":"` + b64.EncodeToString(x.PublicKey().Bytes()) + `"}`),
		json.RawMessage(`{"kty":"foo","kid":"foo"}`),
		json.RawMessage(`{"kid":"nokty"}`),
		json.RawMessage(`"not an object"`),
		raw(jwk(rsaKey3(), "rsa-as-es256", "ES256")),
		raw(jwk(rsaKey3(), "rsa-as-hs256", "HS256")),
		json.RawMessage(`{"kty":"RSA","kid":"ops","key_ops":["encrypt"],"n":"` + b64.EncodeToString(rsaKey3().N.Bytes()) + `","e":"AQAB"}`),
	}
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, doc)

	var logs syncBuffer
	clk := newFakeClock()
	v, err := New(ctxT(t), Config{JWKSFile: path}, WithClock(clk.Now), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if n := len(v.keys.Load().all); n != 1 {
		t.Errorf("%d usable keys, want 1", n)
	}
	if n := strings.Count(logs.String(), "key ignored"); n != len(keys)-1 {
		t.Errorf("%d keys logged as ignored, want %d:\n%s", n, len(keys)-1, logs.String())
	}
	if strings.Contains(logs.String(), "0123456789abcdef") {
		t.Error("the log shows a symmetric key")
	}
	c := claims(clk.Now())
	for _, tc := range []struct {
		tok, reason string
	}{
		{sign(t, ecKey(), jose.ES256, "good", c, nil), ""},
		{sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, "oct", c, nil), reasonAlgorithm},
		{sign(t, rsaKey3(), jose.RS256, "enc", c, nil), reasonUnknownKID},
		{sign(t, rsaKey3(), jose.RS256, "private", c, nil), reasonUnknownKID},
		{sign(t, small, jose.RS256, "small", c, nil), reasonUnknownKID},
		{sign(t, rsaKey3(), jose.RS256, "rsa-as-es256", c, nil), reasonUnknownKID},
		{sign(t, rsaKey3(), jose.RS256, "ops", c, nil), reasonUnknownKID},
	} {
		_, err := v.Verify(ctxT(t), tc.tok)
		if tc.reason == "" {
			if err != nil {
				t.Errorf("good key: %v", err)
			}
			continue
		}
		if got := reasonOf(t, err); got != tc.reason {
			t.Errorf("reason %q, want %q", got, tc.reason)
		}
	}
}

func TestTooManyKeys(t *testing.T) {
	keys := make([]jose.JSONWebKey, 0, maxKeys+5)
	for i := range maxKeys + 5 {
		keys = append(keys, jwk(ecKey(), "k"+strings.Repeat("x", i), ""))
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksJSON(t, keys...))
	v := newVerifier(t, Config{JWKSFile: path})
	if n := len(v.keys.Load().all); n != maxKeys {
		t.Errorf("%d keys kept, want %d", n, maxKeys)
	}
}

func TestJWKSFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxJWKSBytes + 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := New(ctxT(t), Config{JWKSFile: path}, WithLogger(discard)); err == nil {
		v.Close()
		t.Fatal("New succeeded")
	} else if !strings.Contains(err.Error(), "larger than") {
		t.Errorf("error %q", err)
	}
}
