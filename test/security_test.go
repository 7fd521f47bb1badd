package test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/echo"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// tlsEnv is a CA, a server certificate for localhost, and the files.
type tlsEnv struct {
	ca                *CA
	dir               string
	certFile, keyFile string
	caFile            string
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	e := &tlsEnv{ca: NewCA(t, "test CA"), dir: t.TempDir()}
	c, k := e.ca.Issue(t, Leaf{CN: "localhost", DNS: []string{"localhost", "a.test"}, IPs: []string{"127.0.0.1"}})
	e.certFile = WriteFile(t, e.dir, "server.pem", c)
	e.keyFile = WriteFile(t, e.dir, "server-key.pem", k)
	e.caFile = WriteFile(t, e.dir, "ca.pem", e.ca.PEM)
	return e
}

func (e *tlsEnv) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(e.ca.PEM)
	return p
}

// clientTLS is a client config trusting the env's CA, with an optional
// client certificate.
func (e *tlsEnv) clientTLS(t *testing.T, cert, key []byte) *tls.Config {
	c := &tls.Config{RootCAs: e.pool(), ServerName: "localhost"}
	if cert != nil {
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

func httpsClient(tc *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
}

func tlsDoors(t *testing.T, addr string, tc *tls.Config) []door {
	base := "https://" + addr
	c := httpsClient(tc)
	return []door{
		grpcDoor{testingv1.NewEchoServiceClient(Dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(tc))))},
		webDoor{base: base, client: c},
		restDoor{base: base, client: c},
	}
}

func TestTLSTerminationAllDoors(t *testing.T) {
	env := newTLSEnv(t)
	other := NewCA(t, "other")
	bc, bk := other.Issue(t, Leaf{CN: "b.test", DNS: []string{"b.test"}})
	bCert, bKey := WriteFile(t, env.dir, "b.pem", bc), WriteFile(t, env.dir, "b-key.pem", bk)
	up := StartEcho(t, "up")
	gw := StartGateway(t, strings.Replace(doorsConfig(up.Addr), "  - address: 127.0.0.1:0\n", fmt.Sprintf(`  - address: 127.0.0.1:0
    tls:
      certificates: [{cert_file: %q, key_file: %q}, {cert_file: %q, key_file: %q}]
`, env.certFile, env.keyFile, bCert, bKey), 1))
	for _, d := range tlsDoors(t, gw.Addr, env.clientTLS(t, nil, nil)) {
		if r := d.unary(t, &testingv1.EchoRequest{Message: "over tls"}, nil, 0); r.st.Code() != codes.OK || r.resps[0].GetMessage() != "over tls" {
			t.Errorf("%s over TLS: %v", d.name(), r.st)
		}
	}
	// SNI picks the certificate; ALPN offers h2 and http/1.1.
	for sni, want := range map[string]string{"b.test": "b.test", "a.test": "localhost", "": "localhost"} {
		conn, err := tls.Dial("tcp", gw.Addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // inspecting the served certificate
		if err != nil {
			t.Fatal(err)
		}
		cs := conn.ConnectionState()
		if got := cs.PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("SNI %q: certificate %q, want %q", sni, got, want)
		}
		if cs.NegotiatedProtocol != "h2" || cs.Version < tls.VersionTLS12 {
			t.Errorf("ALPN %q version %x", cs.NegotiatedProtocol, cs.Version)
		}
		_ = conn.Close()
	}
	// TLS 1.1 is refused.
	if _, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: env.pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec // G402: an old client on purpose, to check that the gateway refuses TLS 1.1
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

func TestCertificateReloadKeepsOpenStreams(t *testing.T) {
	env := newTLSEnv(t)
	up := StartEcho(t, "up")
	gw := StartGateway(t, strings.Replace(EchoConfig(up.Addr), "  - address: 127.0.0.1:0\n", fmt.Sprintf(`  - address: 127.0.0.1:0
    tls:
      certificates: [{cert_file: %q, key_file: %q}]
`, env.certFile, env.keyFile), 1))
	tc := env.clientTLS(t, nil, nil)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc))))
	st, err := c.Bidi(Ctx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ping := func() {
		t.Helper()
		if err := st.Send(&testingv1.EchoRequest{Message: "ping"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	ping()
	served := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", gw.Addr, &tls.Config{RootCAs: env.pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0]
	}
	before := served().SerialNumber
	// Replace the certificate on disk (write, then rename over).
	nc, nk := env.ca.Issue(t, Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	WriteFile(t, env.dir, "server-key.pem.new", nk)
	WriteFile(t, env.dir, "server.pem.new", nc)
	if err := os.Rename(env.keyFile+".new", env.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(env.certFile+".new", env.certFile); err != nil {
		t.Fatal(err)
	}
	// The reload logs before it swaps the certificate in: the served one is
	// the event.
	Eventually(t, Patience, func() error {
		if served().SerialNumber.Cmp(before) == 0 {
			return errors.New("new handshakes still get the old certificate")
		}
		return nil
	})
	ping() // the stream opened before the reload keeps working
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// mtlsConfig is a mutual TLS listener and a route that wants a client
// certificate, forwarding the identity.
func mtlsConfig(env *tlsEnv, upstream, extraRoute string) string {
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
    tls:
      certificates: [{cert_file: %q, key_file: %q}]
      client_auth: CLIENT_AUTH_REQUIRE
      client_ca_file: %q
clusters:
  - {name: echo, endpoints: [%q]}
auth_providers:
  - {name: cert, mtls: {}}
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
    auth: {providers: [cert], require_mtls: true%s}
`, env.certFile, env.keyFile, env.caFile, upstream, extraRoute)
}

func TestMutualTLS(t *testing.T) {
	env := newTLSEnv(t)
	up := StartEcho(t, "up")
	gw := StartGateway(t, mtlsConfig(env, up.Addr, `, allowed_identities: ["spiffe://test/allowed"]`))
	call := func(cert, key []byte) error {
		tc := env.clientTLS(t, cert, key)
		c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc))))
		_, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
		return err
	}
	if err := call(nil, nil); err == nil {
		t.Error("no client certificate: served")
	}
	ec, ek := env.ca.Issue(t, Leaf{CN: "old", URIs: []string{"spiffe://test/allowed"}, Client: true, NotAfter: time.Now().Add(-time.Minute)})
	if err := call(ec, ek); err == nil {
		t.Error("expired client certificate: served")
	}
	oc, ok := NewCA(t, "stranger").Issue(t, Leaf{CN: "x", URIs: []string{"spiffe://test/allowed"}, Client: true})
	if err := call(oc, ok); err == nil {
		t.Error("certificate from another CA: served")
	}
	wc, wk := env.ca.Issue(t, Leaf{CN: "wrong", URIs: []string{"spiffe://test/other"}, Client: true})
	if err := call(wc, wk); codeOf(err) != codes.PermissionDenied {
		t.Errorf("wrong SAN: %v, want PERMISSION_DENIED", err)
	}
	gc, gk := env.ca.Issue(t, Leaf{CN: "good", DNS: []string{"good.test"}, URIs: []string{"spiffe://test/allowed"}, Client: true})
	if err := call(gc, gk); err != nil {
		t.Fatalf("valid client certificate: %v", err)
	}
	md := up.NextCall(t).MD
	if v := md.Get("x-edgegate-principal"); len(v) != 1 || v[0] != "spiffe://test/allowed" {
		t.Fatalf("upstream principal %q, want the SPIFFE ID", v)
	}
	// The REST and gRPC-Web doors see the same identity.
	for _, d := range tlsDoors(t, gw.Addr, env.clientTLS(t, gc, gk))[1:] {
		if r := d.unary(t, &testingv1.EchoRequest{}, nil, 0); r.st.Code() != codes.OK {
			t.Errorf("%s with a client certificate: %v", d.name(), r.st)
		}
		if v := up.NextCall(t).MD.Get("x-edgegate-principal"); len(v) != 1 || v[0] != "spiffe://test/allowed" {
			t.Errorf("%s: upstream principal %q", d.name(), v)
		}
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// jwtEnv is an RSA key, its JWKS file, and a signer.
type jwtEnv struct {
	key      *rsa.PrivateKey
	jwksFile string
}

func newJWTEnv(t *testing.T) *jwtEnv {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	return &jwtEnv{key: key, jwksFile: WriteFile(t, t.TempDir(), "jwks.json", b)}
}

func (e *jwtEnv) token(t *testing.T, sub string, scopes string, exp time.Time, extra map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: e.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": sub, "iss": "https://issuer.test", "aud": "edgegate", "exp": exp.Unix(), "iat": time.Now().Add(-time.Minute).Unix(), "scope": scopes}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func authConfig(upstream, jwksFile, apiKeyHash, routeAuth string) string {
	return strings.Replace(doorsConfig(upstream), "    cluster: echo\n", "    cluster: echo\n    auth: "+routeAuth+"\n", 1) + fmt.Sprintf(`
auth_providers:
  - name: users
    jwt: {jwks_file: %q, issuer: "https://issuer.test", audiences: [edgegate], cookie: session}
  - name: keys
    api_key: {keys: [{sha256: %q, principal: svc-batch, scopes: [echo.read]}]}
`, jwksFile, apiKeyHash)
}

func TestJWTAndAPIKeysOnEveryDoor(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	key := "k3y-sekr1t"
	gw := StartGateway(t, authConfig(up.Addr, je.jwksFile, authint.HashKey(key), `{providers: [users, keys], required_scopes: [echo.read]}`))
	base := "http://" + gw.Addr
	doors := []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}}
	good := je.token(t, "alice", "echo.read echo.write", time.Now().Add(time.Hour), nil)
	for _, d := range doors {
		t.Run(d.name(), func(t *testing.T) {
			cases := []struct {
				name   string
				md     map[string]string
				code   codes.Code
				caller string
			}{
				{"no credentials", nil, codes.Unauthenticated, ""},
				{"valid JWT", map[string]string{"authorization": "Bearer " + good}, codes.OK, "alice"},
				{"JWT in a cookie", map[string]string{"cookie": "session=" + good}, codes.OK, "alice"},
				{"expired JWT", map[string]string{"authorization": "Bearer " + je.token(t, "alice", "echo.read", time.Now().Add(-time.Hour), nil)}, codes.Unauthenticated, ""},
				{"tampered JWT", map[string]string{"authorization": "Bearer " + good[:len(good)-4] + "AAAA"}, codes.Unauthenticated, ""},
				{"missing scope", map[string]string{"authorization": "Bearer " + je.token(t, "bob", "other", time.Now().Add(time.Hour), nil)}, codes.PermissionDenied, ""},
				{"valid API key", map[string]string{"x-api-key": key}, codes.OK, "svc-batch"},
				{"unknown API key", map[string]string{"x-api-key": "nope"}, codes.Unauthenticated, ""},
			}
			for _, c := range cases {
				r := d.unary(t, &testingv1.EchoRequest{}, c.md, 0)
				if r.st.Code() != c.code {
					t.Errorf("%s: %v, want %v", c.name, r.st, c.code)
					continue
				}
				if strings.Contains(r.st.Message(), "sekr1t") || strings.Contains(r.st.Message(), good) {
					t.Errorf("%s: the error leaks a secret: %q", c.name, r.st.Message())
				}
				if d.name() == "rest" {
					want := map[codes.Code]int{codes.OK: 200, codes.Unauthenticated: 401, codes.PermissionDenied: 403}[c.code]
					if r.http != want {
						t.Errorf("%s: HTTP %d, want %d", c.name, r.http, want)
					}
					if c.code == codes.Unauthenticated && !strings.Contains(r.header["www-authenticate"], "Bearer") {
						t.Errorf("%s: WWW-Authenticate %q", c.name, r.header["www-authenticate"])
					}
				}
				if c.code == codes.OK {
					if v := up.NextCall(t).MD.Get("x-edgegate-principal"); len(v) != 1 || v[0] != c.caller {
						t.Errorf("%s: upstream principal %q, want %q", c.name, v, c.caller)
					}
				}
			}
		})
	}
}

func TestAPIKeyRevokedByReload(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	cfg := authConfig(up.Addr, je.jwksFile, authint.HashKey("old-key"), `{providers: [keys]}`)
	gw := StartGateway(t, cfg)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	d := grpcDoor{c}
	if r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"x-api-key": "old-key"}, 0); r.st.Code() != codes.OK {
		t.Fatal(r.st)
	}
	next, err := config.Load("next.yaml", []byte(authConfig(up.Addr, je.jwksFile, authint.HashKey("new-key"), `{providers: [keys]}`)+"\nadmin: {address: 127.0.0.1:0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(next); err != nil {
		t.Fatal(err)
	}
	if r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"x-api-key": "old-key"}, 0); r.st.Code() != codes.Unauthenticated {
		t.Fatalf("revoked key: %v", r.st)
	}
	if r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"x-api-key": "new-key"}, 0); r.st.Code() != codes.OK {
		t.Fatalf("new key: %v", r.st)
	}
}

func TestCELRule(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	gw := StartGateway(t, authConfig(up.Addr, je.jwksFile, authint.HashKey("k"),
		`{providers: [users], cel: "claims.tier == 'gold' && method.endsWith('/Unary') && headers['x-custom'] == 'yes'"}`))
	d := grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}
	gold := je.token(t, "carol", "", time.Now().Add(time.Hour), map[string]any{"tier": "gold"})
	silver := je.token(t, "dave", "", time.Now().Add(time.Hour), map[string]any{"tier": "silver"})
	for _, c := range []struct {
		tok, custom string
		want        codes.Code
	}{{gold, "yes", codes.OK}, {silver, "yes", codes.PermissionDenied}, {gold, "no", codes.PermissionDenied}} {
		r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"authorization": "Bearer " + c.tok, "x-custom": c.custom}, 0)
		if r.st.Code() != c.want {
			t.Errorf("%s: %v, want %v", c.custom, r.st, c.want)
		}
	}
	// An invalid expression is a config error that names its place (as
	// `edgegate validate` reports it).
	err := validate("bad.yaml", authConfig(up.Addr, je.jwksFile, authint.HashKey("k"), `{providers: [users], cel: "claims.tier =="}`))
	if err == nil || !strings.Contains(err.Error(), "routes[0].auth.cel: invalid CEL expression") {
		t.Fatalf("invalid CEL: %v", err)
	}
}

func TestSpoofedIdentityNeverReachesUpstream(t *testing.T) {
	je := newJWTEnv(t)
	up := StartEcho(t, "up")
	cfg := authConfig(up.Addr, je.jwksFile, authint.HashKey("k"), `{providers: [users], allow_anonymous: true}`)
	cfg = strings.Replace(cfg, "forward_request_headers: [x-custom]", "forward_request_headers: [x-custom, x-edgegate-principal, x-edgegate-claims]", 1)
	cfg = strings.Replace(cfg, "forward_request_headers: [x-custom, x-test-marker]", "forward_request_headers: [x-custom, x-test-marker, x-edgegate-principal, x-edgegate-claims]", 1)
	gw := StartGateway(t, cfg)
	base := "http://" + gw.Addr
	spoof := map[string]string{"x-edgegate-principal": "admin", "x-edgegate-claims": `{"role":"admin"}`}
	for _, d := range []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}} {
		// Anonymous: neither key reaches the upstream.
		if r := d.unary(t, &testingv1.EchoRequest{}, spoof, 0); r.st.Code() != codes.OK {
			t.Fatalf("%s: %v", d.name(), r.st)
		}
		md := up.NextCall(t).MD
		if len(md.Get("x-edgegate-principal")) != 0 || len(md.Get("x-edgegate-claims")) != 0 {
			t.Errorf("%s: spoofed identity reached the upstream: %v", d.name(), md)
		}
		// Authenticated: only the gateway's own values.
		withTok := map[string]string{"authorization": "Bearer " + je.token(t, "erin", "s1", time.Now().Add(time.Hour), nil)}
		for k, v := range spoof {
			withTok[k] = v
		}
		if r := d.unary(t, &testingv1.EchoRequest{}, withTok, 0); r.st.Code() != codes.OK {
			t.Fatalf("%s: %v", d.name(), r.st)
		}
		md = up.NextCall(t).MD
		if v := md.Get("x-edgegate-principal"); len(v) != 1 || v[0] != "erin" {
			t.Errorf("%s: principal %q, want only erin", d.name(), v)
		}
		if v := md.Get("x-edgegate-claims"); len(v) != 1 || !strings.Contains(v[0], `"sub":"erin"`) || strings.Contains(v[0], "admin") {
			t.Errorf("%s: claims %q", d.name(), v)
		}
	}
}

func TestForwardedForAndIPLists(t *testing.T) {
	up := StartEcho(t, "up")
	route := strings.Replace(doorsConfig(up.Addr), "    cluster: echo\n", "    cluster: echo\n    ip_filter: {block: [203.0.113.0/24, \"2001:db8::/32\"]}\n", 1)
	route = strings.Replace(route, "forward_request_headers: [x-custom]", "forward_request_headers: [x-custom, x-forwarded-for]", 1)
	for _, c := range []struct {
		name, trusted string
		xff           string
		want          codes.Code
	}{
		{"untrusted peer: XFF ignored", "", "203.0.113.7", codes.OK},
		{"trusted proxy: XFF counts", "trusted_proxies: [127.0.0.1/32]\n", "203.0.113.7", codes.PermissionDenied},
		{"trusted proxy: right-most untrusted entry", "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]\n", "203.0.113.7, 198.51.100.1, 10.1.2.3", codes.OK},
		{"trusted proxy, IPv6 client", "trusted_proxies: [127.0.0.1/32]\n", "2001:db8::5", codes.PermissionDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw := StartGateway(t, route+c.trusted)
			base := "http://" + gw.Addr
			for _, d := range []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}} {
				r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"x-forwarded-for": c.xff}, 0)
				if r.st.Code() != c.want {
					t.Errorf("%s: %v, want %v", d.name(), r.st, c.want)
				}
				if c.want == codes.OK {
					up.NextCall(t)
				}
			}
			r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", "{}", map[string]string{"X-Forwarded-For": c.xff})
			wantHTTP := map[codes.Code]int{codes.OK: 200, codes.PermissionDenied: 403}[c.want]
			if r.code != wantHTTP {
				t.Errorf("rest: HTTP %d, want %d: %s", r.code, wantHTTP, r.body)
			}
			if c.want == codes.OK {
				up.NextCall(t)
			}
		})
	}
}

func TestCertsDevAndHashKeyCommands(t *testing.T) {
	dir := binaries(t)
	out, err := runCmd(dir+"/edgegate", "hash-key", "abc")
	if err != nil || strings.TrimSpace(out) != authint.HashKey("abc") {
		t.Fatalf("hash-key: %v %q", err, out)
	}
	certDir := t.TempDir()
	out, err = runCmd(dir+"/edgegate", "certs", "dev", certDir)
	if err != nil || !strings.Contains(out, "client_auth: CLIENT_AUTH_REQUIRE") {
		t.Fatalf("certs dev: %v %s", err, out)
	}
	// The written files serve mutual TLS.
	env := &tlsEnv{dir: certDir, certFile: certDir + "/server.crt", keyFile: certDir + "/server.key", caFile: certDir + "/ca.crt"}
	up := StartEcho(t, "up")
	gw := StartGateway(t, mtlsConfig(env, up.Addr, ""))
	caPEM, _ := os.ReadFile(env.caFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	kp, err := tls.LoadX509KeyPair(certDir+"/client.crt", certDir+"/client.key")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{kp}}
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))).Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil {
		t.Fatalf("mTLS with the dev certificates: %v", err)
	}
}

// TestUpstreamCARotation: the upstream CA bundle file is replaced and the
// upstream comes back with a certificate of the new CA; the gateway's next
// connection to it verifies against the new bundle, with no reload.
func TestUpstreamCARotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := NewCA(t, "upstream CA"), NewCA(t, "upstream CA 2")
	caFile := WriteFile(t, dir, "upstream-ca.pem", oldCA.PEM)
	serve := func(ca *CA, name, addr string) (*grpc.Server, string) {
		c, k := ca.Issue(t, Leaf{CN: "echo.internal", DNS: []string{"echo.internal"}})
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
		testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: name})
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		return s, ln.Addr().String()
	}
	first, addr := serve(oldCA, "first", "127.0.0.1:0")
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: echo
    endpoints: [%q]
    tls: {ca_file: %q, server_name: echo.internal}
routes:
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
`, addr, caFile))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	if r, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{}); err != nil || r.GetServer() != "first" {
		t.Fatalf("before the rotation: %v %v", r, err)
	}
	WriteFile(t, dir, "upstream-ca.pem", newCA.PEM)
	first.Stop()
	serve(newCA, "second", addr)
	// The gateway reconnects (with backoff) and verifies the new
	// certificate against the bundle as the file is now; only its answers
	// show when.
	Eventually(t, Patience, func() error {
		r, err := c.Unary(Ctx(t, 2*time.Second), &testingv1.EchoRequest{})
		if err == nil && r.GetServer() == "second" {
			return nil
		}
		return fmt.Errorf("after the rotation: %v %w, want the new upstream", r, err)
	})
}

// TestUpstreamMutualTLS: the gateway verifies an upstream against its CA
// (with a server-name override) and presents a client certificate to it.
func TestUpstreamMutualTLS(t *testing.T) {
	env := newTLSEnv(t)
	sc, sk := env.ca.Issue(t, Leaf{CN: "echo.internal", DNS: []string{"echo.internal"}})
	serverCert, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	up := StartEcho(t, "secure", grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    env.pool(),
	})))
	gc, gk := env.ca.Issue(t, Leaf{CN: "gateway", URIs: []string{"spiffe://test/gateway"}, Client: true})
	gcFile, gkFile := WriteFile(t, env.dir, "gw.pem", gc), WriteFile(t, env.dir, "gw-key.pem", gk)
	cfg := fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: echo
    endpoints: [%q]
    tls: {ca_file: %q, server_name: echo.internal, cert_file: %q, key_file: %q}
  - name: no-cert
    endpoints: [%q]
    tls: {ca_file: %q, server_name: echo.internal}
routes:
  - {match: {method: edgegate.testing.v1.EchoService/Unary}, cluster: echo}
  - {match: {method: edgegate.testing.v1.EchoService/ServerStream}, cluster: no-cert}
`, up.Addr, env.caFile, gcFile, gkFile, up.Addr, env.caFile)
	gw := StartGateway(t, cfg)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	r, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{Message: "m"})
	if err != nil || r.GetServer() != "secure" {
		t.Fatalf("through upstream mTLS: %v %v", r, err)
	}
	// Without the client certificate the upstream refuses the handshake.
	st, err := c.ServerStream(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if codeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), `"no-cert"`) {
		t.Fatalf("without a client certificate: %v, want UNAVAILABLE naming the cluster", err)
	}
}
