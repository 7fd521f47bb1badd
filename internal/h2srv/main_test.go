package h2srv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2/hpack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a Server on a loopback listener (TLS with ALPN h2 when
// asked), each accepted connection served until the test ends.
type testServer struct {
	*Server
	Addr string
	TLS  *tls.Config // the client's config, when TLS
	errs chan error  // ServeConn's results
	opts ConnOptions // what every connection is served with
}

func startServer(t testing.TB, s *Server, useTLS bool, opts ...ConnOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, Addr: ln.Addr().String(), errs: make(chan error, 1024)}
	if len(opts) > 0 {
		ts.opts = opts[0]
	}
	var srvTLS *tls.Config
	if useTLS {
		cert := selfSigned(t)
		srvTLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
		pool := x509.NewCertPool()
		pool.AddCert(cert.Leaf)
		ts.TLS = &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if srvTLS != nil {
					tc := tls.Server(c, srvTLS)
					hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
					err := tc.HandshakeContext(hctx)
					hcancel()
					if err != nil {
						_ = c.Close()
						return
					}
					c = tc
				}
				ts.errs <- s.ServeConn(ctx, c, ts.opts)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		cancel()
		_ = s.Close()
		wg.Wait()
	})
	return ts
}

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// echo answers every stream :status 200 with the request's body back,
// then a "x-received" trailer.
var echo = HandlerFunc(func(st *Stream) {
	body, err := io.ReadAll(st)
	if err != nil {
		return
	}
	st.Cork()
	defer st.Uncork()
	if err := st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/octet-stream"}}, false); err != nil {
		return
	}
	if _, err := st.Write(body); err != nil {
		return
	}
	_ = st.WriteTrailers([]hpack.HeaderField{{Name: "x-received", Value: itoa(len(body))}})
})

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// h2Client is net/http's HTTP/2 client (x/net's, bundled), over plain
// TCP (h2c with prior knowledge) or TLS when tc is set.
func h2Client(tc *tls.Config) *http.Client {
	var protos http.Protocols
	if tc == nil {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: &protos, TLSClientConfig: tc}, Timeout: 10 * time.Second}
}

func scheme(tc *tls.Config) string {
	if tc != nil {
		return "https://"
	}
	return "http://"
}

// Requests of every size get their body back and the trailer, h2c and
// TLS, through x/net's client.
func TestEchoTransport(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		ts := startServer(t, &Server{Handler: echo}, useTLS)
		cl := h2Client(ts.TLS)
		for _, size := range []int{0, 1, 100, 16 << 10, 100 << 10, 3 << 20} {
			body := strings.Repeat("x", size)
			resp, err := cl.Post(scheme(ts.TLS)+ts.Addr+"/echo", "application/octet-stream", strings.NewReader(body))
			if err != nil {
				t.Fatalf("tls=%v size %d: %v", useTLS, size, err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatalf("tls=%v size %d: reading: %v", useTLS, size, err)
			}
			if resp.StatusCode != 200 || len(got) != size || resp.Trailer.Get("x-received") != itoa(size) {
				t.Fatalf("tls=%v size %d: status %d, %d bytes, trailer %q", useTLS, size, resp.StatusCode, len(got), resp.Trailer.Get("x-received"))
			}
		}
		cl.CloseIdleConnections()
	}
}
