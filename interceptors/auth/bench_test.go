package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/auth/jwt"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context    { return f.ctx }
func (f *fakeStream) SetHeader(metadata.MD) error { return nil }

// BenchmarkInterceptor is the auth chain's cost per call: no policy, an
// API key, and an RS256 JWT verified against a JWKS (a token seen before:
// the verified-token cache; and with the cache off).
func BenchmarkInterceptor(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	file := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		b.Fatal(err)
	}
	v, err := jwt.New(context.Background(), jwt.Config{JWKSFile: file})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	uncached, err := jwt.New(context.Background(), jwt.Config{JWKSFile: file, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer uncached.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	tok, err := josejwt.Signed(signer).Claims(map[string]any{"sub": "alice", "scope": "a b", "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
	if err != nil {
		b.Fatal(err)
	}
	h, _ := authint.ParseHash(authint.HashKey("the-key"))
	keys := &authint.APIKey{ProviderName: "keys", Header: "x-api-key"}
	for i := range 10 {
		hh, _ := authint.ParseHash(authint.HashKey(string(rune('a' + i))))
		keys.Keys = append(keys.Keys, authint.APIKeyEntry{SHA256: hh, Principal: "other"})
	}
	keys.Keys = append(keys.Keys, authint.APIKeyEntry{SHA256: h, Principal: "svc"})
	for _, c := range []struct {
		name string
		pol  *authint.Policy
		md   metadata.MD
	}{
		{"none", nil, metadata.MD{}},
		{"api-key", &authint.Policy{Providers: []authint.Provider{keys}}, metadata.Pairs("x-api-key", "the-key")},
		{"jwt-rs256", &authint.Policy{Providers: []authint.Provider{&authint.JWT{ProviderName: "users", Verifier: authint.JWTVerifier{Verifier: v}, Header: "authorization"}}}, metadata.Pairs("authorization", "Bearer "+tok)},
		{"jwt-rs256-uncached", &authint.Policy{Providers: []authint.Provider{&authint.JWT{ProviderName: "users", Verifier: authint.JWTVerifier{Verifier: uncached}, Header: "authorization"}}}, metadata.Pairs("authorization", "Bearer "+tok)},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := authint.StreamServerInterceptor(authint.Options{Policy: func(context.Context) *authint.Policy { return c.pol }})
			ss := &fakeStream{ctx: metadata.NewIncomingContext(context.Background(), c.md)}
			info := &grpc.StreamServerInfo{FullMethod: "/a.B/C"}
			ok := func(any, grpc.ServerStream) error { return nil }
			b.ReportAllocs()
			for b.Loop() {
				if err := in(nil, ss, info, ok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
