// Package auth holds what the gateway knows of a caller once it is
// authenticated (the Principal, in the call's context) and the route
// authorization rules that use it, CEL expressions included. The
// interceptor that establishes and checks them is interceptors/auth.
package auth

import (
	"context"
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"
)

// Provider kinds.
const (
	KindJWT       = "jwt"
	KindAPIKey    = "api_key"
	KindMTLS      = "mtls"
	KindAnonymous = "anonymous"
)

// Anonymous is the principal of a call no provider authenticated.
var Anonymous = &Principal{ID: "anonymous", Kind: KindAnonymous}

// Principal is an authenticated caller. It is immutable once in a context.
type Principal struct {
	// ID names the caller: a JWT subject, an API key's principal, a client
	// certificate's identity.
	ID string
	// Provider is the name of the provider that authenticated the caller.
	Provider string
	// Kind is the provider's kind (KindJWT, …).
	Kind   string
	Scopes []string
	// Claims are a JWT's verified claims; nil for other kinds.
	Claims map[string]any
	// ClaimsJSON, when set, is Claims as JSON, encoded once by the
	// provider (the forwarded identity uses it).
	ClaimsJSON string
	// MTLS reports whether the connection has a verified client
	// certificate, whatever authenticated the caller.
	MTLS bool
}

// HasScopes reports whether p holds every scope of want.
func (p *Principal) HasScopes(want []string) (missing string, ok bool) {
	for _, s := range want {
		if !slices.Contains(p.Scopes, s) {
			return s, false
		}
	}
	return "", true
}

type key struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, key{}, p)
}

// FromContext returns the call's principal, or nil before authentication.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(key{}).(*Principal)
	return p
}

// Program is a compiled route CEL expression.
type Program struct {
	prg  cel.Program
	expr string
}

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("principal", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("method", cel.StringType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("client_ip", cel.StringType),
	)
	if err != nil {
		panic(fmt.Sprintf("auth: CEL environment: %v", err))
	}
	return env
}()

// CompileCEL compiles a route's expression. It must be a boolean over
// principal {id, provider, kind, scopes, mtls}, claims, method, headers
// (lower-case names, first values) and client_ip.
func CompileCEL(expr string) (*Program, error) {
	ast, iss := celEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression is %v, want bool", ast.OutputType())
	}
	prg, err := celEnv.Program(ast, cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, err
	}
	return &Program{prg: prg, expr: expr}, nil
}

// Input is what an expression sees of a call.
type Input struct {
	Principal *Principal
	Method    string
	Headers   map[string]string
	ClientIP  string
}

// Eval runs the expression; an evaluation error (a missing claim, a type
// mismatch) counts as false, reported in err.
func (p *Program) Eval(in Input) (bool, error) {
	pr := in.Principal
	if pr == nil {
		pr = Anonymous
	}
	claims := pr.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	scopes := pr.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	out, _, err := p.prg.Eval(map[string]any{
		"principal": map[string]any{"id": pr.ID, "provider": pr.Provider, "kind": pr.Kind, "scopes": scopes, "mtls": pr.MTLS},
		"claims":    claims,
		"method":    in.Method,
		"headers":   in.Headers,
		"client_ip": in.ClientIP,
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	return ok && b, nil
}
