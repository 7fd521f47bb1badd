package frontdoor

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// connState returns the TLS state under c, through the front door's
// wrappers; ok is false on a plaintext connection.
func connState(c net.Conn) (tls.ConnectionState, bool) {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			return x.ConnectionState(), true
		case *replayConn:
			c = x.Conn
		case *guardConn:
			c = x.replayConn
		default:
			return tls.ConnectionState{}, false
		}
	}
}

type tlsStateKey struct{}

// ConnContext is the http.Server ConnContext of the front door: it puts the
// connection's TLS state in every request's context (net/http cannot see
// it through the front door's connection wrappers).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if cs, ok := connState(c); ok {
		return context.WithValue(ctx, tlsStateKey{}, &cs)
	}
	return ctx
}

// TLSState returns the TLS state of the connection a call came in on, on
// every door; nil on a plaintext connection.
func TLSState(ctx context.Context) *tls.ConnectionState {
	if cs, ok := ctx.Value(tlsStateKey{}).(*tls.ConnectionState); ok {
		return cs
	}
	if p, ok := peer.FromContext(ctx); ok && p.AuthInfo != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			st := ti.State // copied only here: a plaintext call allocates nothing
			return &st
		}
	}
	return nil
}

// OverTLS reports whether the call came in over TLS, on any door, without
// copying the connection's TLS state.
func OverTLS(ctx context.Context) bool {
	if _, ok := ctx.Value(tlsStateKey{}).(*tls.ConnectionState); ok {
		return true
	}
	if p, ok := peer.FromContext(ctx); ok && p.AuthInfo != nil {
		_, ok := p.AuthInfo.(credentials.TLSInfo)
		return ok
	}
	return false
}

// Creds are the grpc.Server transport credentials of the front door: TLS is
// terminated before grpc.Server sees a connection (by the front door, or a
// tls.Listener on a dedicated port), and Creds only reports its state as
// the call's AuthInfo; plaintext connections pass as they are.
type Creds struct{}

// ServerHandshake completes a pending TLS handshake and reports the state.
func (Creds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return nil, nil, err
		}
	}
	if cs, ok := connState(c); ok {
		return c, tlsInfo(cs), nil
	}
	return c, nil, nil
}

// tlsInfo is a TLS connection's state as a call's AuthInfo, on grpc.Server
// and on the relay.
func tlsInfo(cs tls.ConnectionState) credentials.TLSInfo {
	return credentials.TLSInfo{State: cs, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
}

// ClientHandshake is not used on the server side.
func (Creds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, nil, nil
}

// Info reports TLS: the gateway's listeners may or may not use it.
func (Creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone returns the credentials.
func (c Creds) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is not used on the server side.
func (Creds) OverrideServerName(string) error { return nil }
