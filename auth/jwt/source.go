package jwt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// source is where a key set comes from.
type source interface {
	// load returns the key set document; ctx bounds it.
	load(ctx context.Context) ([]byte, error)
	// String names the source for logs and errors.
	String() string
	// close releases what the source holds.
	close()
}

// fileSource reads a JWKS file.
type fileSource struct{ path string }

func (s fileSource) String() string { return s.path }

func (s fileSource) close() {}

func (s fileSource) load(_ context.Context) ([]byte, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return readLimited(f)
}

// urlSource fetches a JWKS over https.
type urlSource struct {
	url     string
	display string // the URL without its password
	client  *http.Client
	own     bool // the client was built here (closed by close)
}

func (s *urlSource) String() string { return s.display }

func (s *urlSource) close() {
	if s.own {
		s.client.CloseIdleConnections()
	}
}

func (s *urlSource) load(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // let the connection be reused
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return readLimited(resp.Body)
}

// readLimited reads at most maxJWKSBytes, and fails on more.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return b, nil
}

// newHTTPClient returns the client that fetches the key set: client when
// given (a copy, with redirects restricted), else one that trusts the CAs of
// caFile (the system roots when empty). own reports that the client was
// built here.
func newHTTPClient(client *http.Client, caFile string) (c *http.Client, own bool, err error) {
	if client != nil {
		cp := *client
		cp.CheckRedirect = httpsRedirectsOnly(client.CheckRedirect)
		return &cp, false, nil
	}
	var tr *http.Transport
	if base, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = base.Clone()
	} else { // replaced by some instrumentation
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 5 * time.Second}
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadCAs(caFile)
		if err != nil {
			return nil, false, err
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	// Refreshes are minutes apart: a kept-alive connection would only be an
	// idle goroutine.
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, CheckRedirect: httpsRedirectsOnly(nil)}, true, nil
}

// httpsRedirectsOnly refuses a redirect away from https, and more than 3,
// then asks next (when not nil).
func httpsRedirectsOnly(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return errors.New("redirect away from https refused")
		}
		if len(via) >= 3 {
			return errors.New("more than 3 redirects")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}
