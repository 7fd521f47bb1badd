package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authpkg "github.com/edgegate/edgegate/auth"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

type stubVerifier struct{}

func (stubVerifier) Verify(_ context.Context, tok string) (authint.Verified, error) {
	if tok == "good" {
		return authint.Verified{Subject: "alice", Scopes: []string{"read"}, Claims: map[string]any{"sub": "alice", "tier": "gold"}}, nil
	}
	return authint.Verified{}, errors.New("token expired")
}

type headerStream struct {
	fakeStream
	hdr metadata.MD
}

func (h *headerStream) SetHeader(md metadata.MD) error { h.hdr = metadata.Join(h.hdr, md); return nil }

func run(t *testing.T, pol *authint.Policy, md metadata.MD) (*authpkg.Principal, *headerStream, error) {
	t.Helper()
	in := authint.StreamServerInterceptor(authint.Options{Policy: func(context.Context) *authint.Policy { return pol }})
	ss := &headerStream{fakeStream: fakeStream{ctx: metadata.NewIncomingContext(context.Background(), md)}}
	var got *authpkg.Principal
	err := in(nil, ss, &grpc.StreamServerInfo{FullMethod: "/a.B/C"}, func(_ any, s grpc.ServerStream) error {
		got = authpkg.FromContext(s.Context())
		return nil
	})
	return got, ss, err
}

func TestProviders(t *testing.T) {
	h, _ := authint.ParseHash(authint.HashKey("k1"))
	keys := &authint.APIKey{ProviderName: "keys", Header: "x-api-key", Keys: []authint.APIKeyEntry{{SHA256: h, Principal: "svc", Scopes: []string{"read"}}}}
	jwt := &authint.JWT{ProviderName: "users", Verifier: stubVerifier{}, Header: "authorization", Cookie: "session"}
	pol := &authint.Policy{Providers: []authint.Provider{jwt, keys}, RequiredScopes: []string{"read"}}
	cases := []struct {
		name string
		md   metadata.MD
		code codes.Code
		who  string
	}{
		{"bearer", metadata.Pairs("authorization", "Bearer good"), codes.OK, "alice"},
		{"bearer any casing", metadata.Pairs("authorization", "bEaReR good"), codes.OK, "alice"},
		{"cookie", metadata.Pairs("cookie", "a=b; session=good"), codes.OK, "alice"},
		{"api key", metadata.Pairs("x-api-key", "k1"), codes.OK, "svc"},
		{"bad token", metadata.Pairs("authorization", "Bearer bad"), codes.Unauthenticated, ""},
		{"basic auth is no bearer", metadata.Pairs("authorization", "Basic Zm9v"), codes.Unauthenticated, ""},
		{"unknown key", metadata.Pairs("x-api-key", "k2"), codes.Unauthenticated, ""},
		{"nothing", metadata.MD{}, codes.Unauthenticated, ""},
	}
	for _, c := range cases {
		p, ss, err := run(t, pol, c.md)
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
			continue
		}
		if c.code == codes.OK && p.ID != c.who {
			t.Errorf("%s: principal %q, want %q", c.name, p.ID, c.who)
		}
		if c.code == codes.Unauthenticated {
			if ch := strings.Join(ss.hdr.Get("www-authenticate"), ","); !strings.Contains(ch, "Bearer") || !strings.Contains(ch, "APIKey") {
				t.Errorf("%s: WWW-Authenticate %q", c.name, ch)
			}
			if strings.Contains(status.Convert(err).Message(), "k2") || strings.Contains(status.Convert(err).Message(), "bad") {
				t.Errorf("%s: message leaks the credential: %q", c.name, status.Convert(err).Message())
			}
		}
	}
}

func TestRules(t *testing.T) {
	jwt := &authint.JWT{ProviderName: "users", Verifier: stubVerifier{}, Header: "authorization"}
	good := metadata.Pairs("authorization", "Bearer good")
	prg, err := authpkg.CompileCEL(`claims.tier == 'gold' && method == '/a.B/C'`)
	if err != nil {
		t.Fatal(err)
	}
	deny, _ := authpkg.CompileCEL(`claims.tier == 'silver'`)
	for _, c := range []struct {
		name string
		pol  *authint.Policy
		md   metadata.MD
		code codes.Code
	}{
		{"no policy: anonymous", nil, metadata.MD{}, codes.OK},
		{"anonymous allowed", &authint.Policy{Providers: []authint.Provider{jwt}, AllowAnonymous: true}, metadata.MD{}, codes.OK},
		{"missing scope", &authint.Policy{Providers: []authint.Provider{jwt}, RequiredScopes: []string{"write"}}, good, codes.PermissionDenied},
		{"identity allowed", &authint.Policy{Providers: []authint.Provider{jwt}, AllowedIdentities: map[string]bool{"alice": true}}, good, codes.OK},
		{"identity not allowed", &authint.Policy{Providers: []authint.Provider{jwt}, AllowedIdentities: map[string]bool{"bob": true}}, good, codes.PermissionDenied},
		{"mTLS required", &authint.Policy{Providers: []authint.Provider{jwt}, RequireMTLS: true}, good, codes.PermissionDenied},
		{"CEL allows", &authint.Policy{Providers: []authint.Provider{jwt}, CEL: prg}, good, codes.OK},
		{"CEL denies", &authint.Policy{Providers: []authint.Provider{jwt}, CEL: deny}, good, codes.PermissionDenied},
	} {
		if _, _, err := run(t, c.pol, c.md); status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
		}
	}
}

func TestForwardAndStrip(t *testing.T) {
	fwd := authint.Forward("x-p", "x-c")
	md := metadata.Pairs("x-p", "spoofed", "x-c", "spoofed", "other", "kept")
	fwd(context.Background(), md) // no principal: both keys dropped
	if len(md.Get("x-p")) != 0 || len(md.Get("x-c")) != 0 || md.Get("other")[0] != "kept" {
		t.Fatalf("anonymous: %v", md)
	}
	ctx := authpkg.NewContext(context.Background(), &authpkg.Principal{ID: "svc", Provider: "keys", Kind: authpkg.KindAPIKey, Scopes: []string{"read"}})
	md = metadata.Pairs("x-p", "spoofed")
	fwd(ctx, md)
	if md.Get("x-p")[0] != "svc" || !strings.Contains(md.Get("x-c")[0], `"scopes":["read"]`) {
		t.Fatalf("forwarded %v", md)
	}
	// A provider's encoded claims are forwarded as they are.
	md = metadata.MD{}
	fwd(authpkg.NewContext(context.Background(), &authpkg.Principal{ID: "alice", Kind: authpkg.KindJWT, Claims: map[string]any{"sub": "alice"}, ClaimsJSON: `{"sub":"alice"}`}), md)
	if got := md.Get("x-c"); len(got) != 1 || got[0] != `{"sub":"alice"}` {
		t.Fatalf("forwarded claims %q", got)
	}
}

// The forwarded identity is sendable as gRPC metadata (printable ASCII)
// whatever the principal and its claims hold: a UTF-8 subject is
// percent-encoded, the claims' characters outside ASCII JSON escapes of
// the same value.
func TestForwardNonASCIIIdentity(t *testing.T) {
	fwd := authint.Forward("x-p", "x-c")
	md := metadata.MD{}
	fwd(authpkg.NewContext(context.Background(), &authpkg.Principal{ID: "josé", Kind: authpkg.KindJWT, ClaimsJSON: `{"name":"José 😀","sub":"josé"}`}), md)
	if got := md.Get("x-p"); len(got) != 1 || got[0] != "jos%C3%A9" {
		t.Errorf("principal %q", got)
	}
	c := md.Get("x-c")
	if len(c) != 1 || c[0] != `{"name":"Jos\u00e9 \ud83d\ude00","sub":"jos\u00e9"}` {
		t.Fatalf("claims %q", c)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(c[0]), &back); err != nil || back["name"] != "José 😀" {
		t.Errorf("claims decode to %v (%v)", back, err)
	}
	for _, v := range append(md.Get("x-p"), c...) {
		for i := 0; i < len(v); i++ {
			if v[i] < ' ' || v[i] > '~' {
				t.Fatalf("%q is not printable ASCII", v)
			}
		}
	}
	md = metadata.MD{}
	fwd(authpkg.NewContext(context.Background(), &authpkg.Principal{ID: "a%b", Kind: authpkg.KindAPIKey}), md)
	if got := md.Get("x-p"); got[0] != "a%b" {
		t.Errorf("an ASCII principal was changed: %q", got)
	}
}

// Check decides a request outside the chain as the interceptor decides a
// call: no credential or a bad one is UNAUTHENTICATED with the
// providers' challenge, a rule that denies PERMISSION_DENIED without one,
// and a CEL rule sees the headers and the method it is given.
func TestCheck(t *testing.T) {
	prg, err := authpkg.CompileCEL(`headers[":path"] != "/secret" && method == "/m/M"`)
	if err != nil {
		t.Fatal(err)
	}
	keys := &authint.APIKey{ProviderName: "keys", Header: "x-api-key", Keys: []authint.APIKeyEntry{
		{SHA256: sha256.Sum256([]byte("good")), Principal: "alice", Scopes: []string{"console"}},
		{SHA256: sha256.Sum256([]byte("noscope")), Principal: "bob"},
	}}
	pol := &authint.Policy{Providers: []authint.Provider{keys}, RequiredScopes: []string{"console"}, CEL: prg}
	for _, c := range []struct {
		name      string
		md        metadata.MD
		method    string
		code      codes.Code
		challenge bool
	}{
		{"no key", metadata.Pairs(":path", "/"), "/m/M", codes.Unauthenticated, true},
		{"a bad key", metadata.Pairs("x-api-key", "bad", ":path", "/"), "/m/M", codes.Unauthenticated, true},
		{"a missing scope", metadata.Pairs("x-api-key", "noscope", ":path", "/"), "/m/M", codes.PermissionDenied, false},
		{"a path the rule refuses", metadata.Pairs("x-api-key", "good", ":path", "/secret"), "/m/M", codes.PermissionDenied, false},
		{"a method the rule refuses", metadata.Pairs("x-api-key", "good", ":path", "/"), "/m/Other", codes.PermissionDenied, false},
		{"allowed", metadata.Pairs("x-api-key", "good", ":path", "/"), "/m/M", codes.OK, false},
	} {
		p, challenge, err := authint.Check(context.Background(), pol, authint.Request{MD: c.md}, c.method, "127.0.0.1")
		if status.Code(err) != c.code || (challenge != "") != c.challenge {
			t.Errorf("%s: %v, challenge %q", c.name, err, challenge)
		}
		if c.code == codes.OK && (p == nil || p.ID != "alice") {
			t.Errorf("%s: principal %+v", c.name, p)
		}
	}
	if p, _, err := authint.Check(context.Background(), nil, authint.Request{}, "/m/M", ""); err != nil || p.ID != authpkg.Anonymous.ID {
		t.Errorf("no policy: %v %+v", err, p)
	}
}
