// Package auth is the authentication and authorization interceptor. A
// route names providers (JWT, API key, mutual TLS), any of which may
// authenticate the caller; the principal goes into the call's context
// (package github.com/edgegate/edgegate/auth) and record. The route's rules
// then decide: anonymous allowed or not (by default a route with providers
// refuses unauthenticated calls), required scopes, allowed identities,
// mutual TLS, and a CEL expression.
//
// Refusals are UNAUTHENTICATED (HTTP 401, with a WWW-Authenticate
// header) or PERMISSION_DENIED (HTTP 403); the message says what failed
// and never holds a token, a key or a claim value.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authpkg "github.com/edgegate/edgegate/auth"
	"github.com/edgegate/edgegate/auth/jwt"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/tlsconf"
)

// Request is what a provider sees of a call.
type Request struct {
	MD  metadata.MD
	TLS *tls.ConnectionState // nil on a plaintext connection
}

// Provider authenticates callers one way. Authenticate returns the
// principal; (nil, nil) when the call carries no credentials of its kind;
// (nil, err) when it carries bad ones (err's message is safe to show).
type Provider interface {
	Name() string
	// Challenge is the WWW-Authenticate value for this provider.
	Challenge(invalid bool) string
	Authenticate(ctx context.Context, r Request) (*authpkg.Principal, error)
}

// Verified is what a Verifier found in a valid token.
type Verified struct {
	Subject string
	Scopes  []string
	Claims  map[string]any
	// ClaimsJSON is Claims as JSON (forwarded upstream); the verifier
	// keeps it with the token it remembers, so that it is encoded once.
	ClaimsJSON string
}

// Verifier verifies a JWT (package auth/jwt, through JWTVerifier).
type Verifier interface {
	Verify(ctx context.Context, token string) (Verified, error)
}

// JWTVerifier is a Verifier of package auth/jwt; Close stops its key
// refresher.
type JWTVerifier struct{ *jwt.Verifier }

// Verify verifies token and returns what the auth chain uses of it.
func (j JWTVerifier) Verify(ctx context.Context, token string) (Verified, error) {
	c, err := j.Verifier.Verify(ctx, token)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Subject: c.Subject, Scopes: c.Scopes, Claims: c.Raw, ClaimsJSON: c.JSON()}, nil
}

// JWT authenticates bearer tokens.
type JWT struct {
	ProviderName string
	Verifier     Verifier
	Header       string // "authorization": "Bearer TOKEN"; another: the raw token
	Cookie       string // also read from this cookie when set
}

func (j *JWT) Name() string { return j.ProviderName }

func (j *JWT) Challenge(invalid bool) string {
	if invalid {
		return `Bearer realm="edgegate", error="invalid_token"`
	}
	return `Bearer realm="edgegate"`
}

func (j *JWT) token(md metadata.MD) string {
	for _, v := range md.Get(j.Header) {
		if j.Header == "authorization" {
			if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
				return strings.TrimSpace(tok)
			}
			continue
		}
		return strings.TrimSpace(v)
	}
	if j.Cookie != "" {
		for _, line := range md.Get("cookie") {
			cookies, err := http.ParseCookie(line)
			if err != nil {
				continue
			}
			for _, c := range cookies {
				if c.Name == j.Cookie {
					return c.Value
				}
			}
		}
	}
	return ""
}

func (j *JWT) Authenticate(ctx context.Context, r Request) (*authpkg.Principal, error) {
	tok := j.token(r.MD)
	if tok == "" {
		return nil, nil
	}
	v, err := j.Verifier.Verify(ctx, tok)
	if err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	return &authpkg.Principal{ID: v.Subject, Provider: j.ProviderName, Kind: authpkg.KindJWT, Scopes: v.Scopes, Claims: v.Claims, ClaimsJSON: v.ClaimsJSON}, nil
}

// APIKey authenticates API keys against their SHA-256 hashes, in
// constant time (every stored hash is compared, whatever matches).
type APIKey struct {
	ProviderName string
	Header       string
	Keys         []APIKeyEntry
}

// APIKeyEntry is one stored key.
type APIKeyEntry struct {
	SHA256    [32]byte
	Principal string
	Scopes    []string
}

// ParseHash reads a hex SHA-256.
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, errors.New("not a hex SHA-256")
	}
	copy(h[:], b)
	return h, nil
}

// HashKey is the stored form of an API key (edgegate hash-key).
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (a *APIKey) Name() string { return a.ProviderName }

func (a *APIKey) Challenge(bool) string {
	return fmt.Sprintf(`APIKey realm="edgegate", header=%q`, a.Header)
}

func (a *APIKey) Authenticate(_ context.Context, r Request) (*authpkg.Principal, error) {
	v := r.MD.Get(a.Header)
	if len(v) == 0 || v[0] == "" {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(v[0]))
	match := -1
	for i := range a.Keys {
		if subtle.ConstantTimeCompare(sum[:], a.Keys[i].SHA256[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, errors.New("unknown API key")
	}
	k := a.Keys[match]
	return &authpkg.Principal{ID: k.Principal, Provider: a.ProviderName, Kind: authpkg.KindAPIKey, Scopes: k.Scopes}, nil
}

// MTLS authenticates by the connection's verified client certificate.
type MTLS struct{ ProviderName string }

func (m *MTLS) Name() string          { return m.ProviderName }
func (m *MTLS) Challenge(bool) string { return `Mutual-TLS realm="edgegate"` }

func (m *MTLS) Authenticate(_ context.Context, r Request) (*authpkg.Principal, error) {
	id, ok := tlsconf.PeerIdentity(r.TLS)
	if !ok {
		return nil, nil
	}
	return &authpkg.Principal{ID: id, Provider: m.ProviderName, Kind: authpkg.KindMTLS, MTLS: true}, nil
}

// Policy is a route's compiled rules. A nil *Policy lets every call pass
// as anonymous.
type Policy struct {
	Providers         []Provider
	AllowAnonymous    bool
	RequiredScopes    []string
	CEL               *authpkg.Program
	RequireMTLS       bool
	AllowedIdentities map[string]bool
}

// Options configure the interceptor.
type Options struct {
	// Policy returns the call's route's rules.
	Policy func(ctx context.Context) *Policy
	// TLS returns the call's connection state (nil: plaintext).
	TLS func(ctx context.Context) *tls.ConnectionState
	// Rejected is told of every refused call: the reason ("unauthenticated",
	// "permission_denied") and the door.
	Rejected func(reason, door string)
}

// StreamServerInterceptor authenticates and authorizes every call; it
// calls the handler only for allowed ones, with the principal in the
// context.
func StreamServerInterceptor(o Options) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		info := callinfo.FromContext(ctx)
		pol := o.Policy(ctx)
		var tlsState *tls.ConnectionState
		if o.TLS != nil {
			tlsState = o.TLS(ctx)
		}
		_, mtls := tlsconf.PeerIdentity(tlsState)
		md := callinfo.Incoming(ctx)
		p, challenge, err := authenticate(ctx, pol, Request{MD: md, TLS: tlsState}, mtls)
		if challenge != "" {
			_ = ss.SetHeader(metadata.Pairs("www-authenticate", challenge))
		}
		if err == nil {
			clientIP := ""
			if info != nil {
				clientIP = info.ClientIP
			}
			err = authorize(pol, p, si.FullMethod, md, clientIP)
		}
		if err != nil {
			if o.Rejected != nil && info != nil {
				reason := "permission_denied"
				if status.Code(err) == codes.Unauthenticated {
					reason = "unauthenticated"
				}
				o.Rejected(reason, info.Door)
			}
			return err
		}
		if info != nil {
			info.SetPrincipal(p.ID)
		}
		ctx = authpkg.NewContext(ctx, p)
		return handler(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
	}
}

// Check authenticates and authorizes a request that is no gRPC call (an
// HTTP request the gateway answers itself: the public console's) with
// pol, as the interceptor does a call: r carries its credentials (MD its
// headers, keys in lower case), method is what a CEL rule sees as method,
// clientIP the client's address. It returns the principal; else a status
// error, UNAUTHENTICATED with challenge the WWW-Authenticate value to
// answer with, or PERMISSION_DENIED.
func Check(ctx context.Context, pol *Policy, r Request, method, clientIP string) (p *authpkg.Principal, challenge string, err error) {
	_, mtls := tlsconf.PeerIdentity(r.TLS)
	p, challenge, err = authenticate(ctx, pol, r, mtls)
	if err == nil {
		err = authorize(pol, p, method, r.MD, clientIP)
	}
	if err != nil {
		return nil, challenge, err
	}
	return p, "", nil
}

// authenticate returns the caller's principal, or an UNAUTHENTICATED
// error with the WWW-Authenticate value to send.
func authenticate(ctx context.Context, pol *Policy, r Request, mtls bool) (*authpkg.Principal, string, error) {
	if pol == nil || len(pol.Providers) == 0 {
		p := *authpkg.Anonymous
		p.MTLS = mtls
		return &p, "", nil
	}
	var firstErr error
	var failed Provider
	for _, pr := range pol.Providers {
		p, err := pr.Authenticate(ctx, r)
		if err != nil {
			if firstErr == nil {
				firstErr, failed = err, pr
			}
			continue
		}
		if p != nil {
			p.MTLS = mtls
			return p, "", nil
		}
	}
	var challenges []string
	for _, pr := range pol.Providers {
		challenges = append(challenges, pr.Challenge(pr == failed))
	}
	challenge := strings.Join(challenges, ", ")
	if firstErr != nil {
		return nil, challenge, status.Errorf(codes.Unauthenticated, "edgegate: %s: %v", failed.Name(), firstErr)
	}
	if pol.AllowAnonymous {
		p := *authpkg.Anonymous
		p.MTLS = mtls
		return &p, "", nil
	}
	names := make([]string, len(pol.Providers))
	for i, pr := range pol.Providers {
		names[i] = pr.Name()
	}
	return nil, challenge, status.Errorf(codes.Unauthenticated, "edgegate: authentication required (%s)", strings.Join(names, " or "))
}

func authorize(pol *Policy, p *authpkg.Principal, method string, md metadata.MD, clientIP string) error {
	if pol == nil {
		return nil
	}
	if pol.RequireMTLS && !p.MTLS {
		return status.Error(codes.PermissionDenied, "edgegate: permission denied: this route requires a client certificate (mutual TLS)")
	}
	if len(pol.AllowedIdentities) > 0 && !pol.AllowedIdentities[p.ID] {
		return status.Error(codes.PermissionDenied, "edgegate: permission denied: the caller's identity is not allowed on this route")
	}
	if missing, ok := p.HasScopes(pol.RequiredScopes); !ok {
		return status.Errorf(codes.PermissionDenied, "edgegate: permission denied: missing scope %q", missing)
	}
	if pol.CEL != nil {
		headers := map[string]string{}
		for k, v := range md {
			if len(v) > 0 {
				headers[k] = v[0]
			}
		}
		ok, err := pol.CEL.Eval(authpkg.Input{Principal: p, Method: method, Headers: headers, ClientIP: clientIP})
		if err != nil || !ok {
			return status.Error(codes.PermissionDenied, "edgegate: permission denied by the route's rule")
		}
	}
	return nil
}

// Forward writes the identity of ctx's principal into md (the metadata
// sent upstream): its ID under principalKey and, as JSON, its claims (or,
// without claims, its provider, kind and scopes) under claimsKey. An
// anonymous caller gets neither. gRPC metadata carries printable ASCII
// only: an ID holding other bytes is percent-encoded as grpc-message is
// ('%' and every byte outside printable ASCII as %XX), and the claims'
// other characters are JSON \u escapes.
func Forward(principalKey, claimsKey string) func(ctx context.Context, md metadata.MD) {
	return func(ctx context.Context, md metadata.MD) {
		delete(md, principalKey)
		delete(md, claimsKey)
		p := authpkg.FromContext(ctx)
		if p == nil || p.Kind == authpkg.KindAnonymous {
			return
		}
		id := p.ID
		if grpcwire.ASCIIJSON(id) != id { // not printable ASCII: percent-encoded
			id = grpcwire.EncodeMessage(id)
		}
		vals := make([]string, 2) // one array for both keys' values
		vals[0] = id
		md[principalKey] = vals[0:1:1]
		if p.ClaimsJSON != "" {
			vals[1] = grpcwire.ASCIIJSON(p.ClaimsJSON)
			md[claimsKey] = vals[1:2:2]
			return
		}
		claims := p.Claims
		if claims == nil {
			claims = map[string]any{"provider": p.Provider, "kind": p.Kind, "scopes": p.Scopes}
		}
		if b, err := json.Marshal(claims); err == nil {
			vals[1] = grpcwire.ASCIIJSON(string(b))
			md[claimsKey] = vals[1:2:2]
		}
	}
}
