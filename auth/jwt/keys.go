package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// key is one usable verification key of a set.
type key struct {
	kid    string
	alg    string // the JWK's own "alg"; empty: any algorithm of its family
	family family
	pub    crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a token signed with alg (of family f).
func (k *key) fits(alg string, f family) bool {
	return k.family == f && (k.alg == "" || k.alg == alg)
}

// keySet is an immutable set of usable keys.
type keySet struct {
	byKID map[string][]*key
	all   []*key
	doc   []byte // the document it was read from
}

// byAlg returns the keys of the set that fit alg (of family f).
func (s *keySet) byAlg(alg string, f family) []*key {
	var out []*key
	for _, k := range s.all {
		if k.fits(alg, f) {
			out = append(out, k)
		}
	}
	return out
}

// jwkMeta is what a JWK says of itself, read before go-jose parses the key.
type jwkMeta struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	// Private key material: a key set must not publish it.
	D    json.RawMessage `json:"d"`
	K    json.RawMessage `json:"k"`
	P    json.RawMessage `json:"p"`
	Q    json.RawMessage `json:"q"`
	Priv json.RawMessage `json:"priv"`
}

// parseJWKS reads a JSON Web Key Set and keeps its usable keys: RSA (at
// least 2048 bits), EC on P-256 or P-384, and Ed25519, for signatures. Other
// keys are ignored, and logged at level. It fails when the document is not a key set
// or when no key is usable.
func parseJWKS(ctx context.Context, data []byte, log *slog.Logger, level slog.Level, source string) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JSON Web Key Set: no "keys"`)
	}
	set := &keySet{byKID: make(map[string][]*key), doc: data}
	for i, raw := range doc.Keys {
		if len(set.all) == maxKeys {
			log.Log(ctx, level, "jwt: key set has too many keys; the rest are ignored", "source", source, "max", maxKeys)
			break
		}
		k, err := parseJWK(raw)
		if err != nil {
			log.Log(ctx, level, "jwt: key ignored", "source", source, "index", i, "kid", kidOf(raw), "reason", err.Error())
			continue
		}
		set.all = append(set.all, k)
		set.byKID[k.kid] = append(set.byKID[k.kid], k)
	}
	if len(set.all) == 0 {
		return nil, fmt.Errorf("no usable key among %d", len(doc.Keys))
	}
	return set, nil
}

func kidOf(raw json.RawMessage) string {
	var m jwkMeta
	_ = json.Unmarshal(raw, &m) // best effort, for the log only
	return m.Kid
}

// parseJWK returns the usable key of one JWK, or why it is not usable.
func parseJWK(raw json.RawMessage) (*key, error) {
	var m jwkMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	switch {
	case m.Use != "" && m.Use != "sig":
		return nil, fmt.Errorf("use %q is not sig", m.Use)
	case m.KeyOps != nil && !slices.Contains(m.KeyOps, "verify"):
		return nil, errors.New(`key_ops has no "verify"`)
	case m.D != nil || m.K != nil || m.P != nil || m.Q != nil || m.Priv != nil:
		return nil, fmt.Errorf("kty %q: private or symmetric key material", m.Kty)
	}
	switch m.Kty {
	case "RSA", "EC", "OKP":
	default:
		return nil, fmt.Errorf("kty %q is not supported", m.Kty)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("kty %q: %w", m.Kty, err)
	}
	k := &key{kid: m.Kid, alg: m.Alg, pub: jwk.Key}
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits (at least %d)", bits, minRSABits)
		}
		k.family = familyRSA
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			k.family = familyP256
		case elliptic.P384():
			k.family = familyP384
		default:
			return nil, fmt.Errorf("EC curve %s is not supported", pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		k.family = familyEd25519
	default:
		return nil, fmt.Errorf("kty %q: key type %T is not supported", m.Kty, jwk.Key)
	}
	if m.Alg != "" {
		if f, ok := supportedAlgorithms[m.Alg]; !ok || f != k.family {
			return nil, fmt.Errorf("alg %q does not fit kty %q or is not supported", m.Alg, m.Kty)
		}
	}
	return k, nil
}
