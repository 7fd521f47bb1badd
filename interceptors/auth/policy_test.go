package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/auth/jwt"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// cache_size: unset remembers verified tokens, 0 turns that off.
func TestJWTVerifierCacheSize(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "ES256", Use: "sig"}}})
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tok, err := josejwt.Signed(signer).Claims(map[string]any{"sub": "a", "exp": exp}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		size   *uint32
		shared bool
	}{
		{"unset", nil, true},
		{"1", proto.Uint32(1), true},
		{"0", proto.Uint32(0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jv, err := jwt.New(context.Background(), jwtConfig(&configv1.JWTProvider{JwksFile: file, CacheSize: tc.size}), jwt.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer jv.Close()
			v := JWTVerifier{Verifier: jv}
			var claims [2]map[string]any
			for i := range claims {
				got, err := v.Verify(context.Background(), tok)
				if err != nil || got.Subject != "a" || got.ClaimsJSON != `{"exp":`+fmt.Sprint(exp)+`,"sub":"a"}` {
					t.Fatalf("Verify: %+v, %v", got, err)
				}
				claims[i] = got.Claims
			}
			if shared := reflect.ValueOf(claims[0]).Pointer() == reflect.ValueOf(claims[1]).Pointer(); shared != tc.shared {
				t.Errorf("second Verify from the cache: %v, want %v", shared, tc.shared)
			}
		})
	}
}
