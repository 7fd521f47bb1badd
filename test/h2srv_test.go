package test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/edgegate/edgegate/internal/h2srv"
	"golang.org/x/net/http2/hpack"
)

// h2srvBody is the test handler's answer: h2spec's flow-control cases
// need a body of a few bytes at least.
const h2srvBody = "h2srv answers h2spec with this body.\n"

// h2srvHandler reads the request and answers :status 200 with a small
// body, as h2spec expects of the server under test.
var h2srvHandler = h2srv.HandlerFunc(func(st *h2srv.Stream) {
	if _, err := io.Copy(io.Discard, st); err != nil {
		return
	}
	st.Cork()
	defer st.Uncork()
	if err := st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "text/plain"}}, false); err != nil {
		return
	}
	if _, err := io.WriteString(st, h2srvBody); err != nil {
		return
	}
	_ = st.WriteTrailers(nil)
})

// startH2srv serves the HTTP/2 engine with its default limits on a
// loopback listener (TLS with ALPN h2 when tc is set) until the test ends.
func startH2srv(t *testing.T, tc *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h2srv.Server{Handler: h2srvHandler}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				if tc != nil {
					tlc := tls.Server(c, tc)
					hctx, hcancel := context.WithTimeout(ctx, Patience)
					err := tlc.HandshakeContext(hctx)
					hcancel()
					if err != nil || tlc.ConnectionState().NegotiatedProtocol != "h2" {
						_ = c.Close()
						return
					}
					c = tlc
				}
				_ = srv.ServeConn(ctx, c, h2srv.ConnOptions{})
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		cancel()
		_ = srv.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// h2spec passes at least 140 of its 145 cases against the HTTP/2 engine
// of the native relay (internal/h2srv), h2c and TLS with ALPN h2. On
// 2026-12-01 it passed 145 of 145 both ways.
func TestH2specEngine(t *testing.T) {
	ca := NewCA(t, "h2srv CA")
	certPEM, keyPEM := ca.Issue(t, Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	for _, c := range []struct {
		name string
		tls  *tls.Config
	}{{"h2c", nil}, {"TLS", tc}} {
		t.Run(c.name, func(t *testing.T) {
			passed, total, failures := h2spec(t, startH2srv(t, c.tls), c.tls != nil, 2)
			t.Logf("%d of %d passed; failed:\n%s", passed, total, failures)
			if passed < 140 {
				t.Errorf("h2spec: %d of %d passed, want at least 140; failed:\n%s", passed, total, failures)
			}
		})
	}
}
