package jwt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestRotationUnknownKIDRefresh(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, jwk(rsaKey(), "old", "RS256")))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Minute}, WithClock(clk.Now))
	c := claims(clk.Now())
	oldTok := sign(t, rsaKey(), jose.RS256, "old", c, nil)
	newTok := sign(t, rsaKey2(), jose.RS256, "new", c, nil)
	wantFetches := func(n int64) {
		t.Helper()
		if got := srv.fetches.Load(); got != n {
			t.Fatalf("the JWKS server saw %d fetches, want %d", got, n)
		}
	}
	wantReason := func(tok, reason string) {
		t.Helper()
		if got := reasonOf(t, verifyErr(t, v, tok)); got != reason {
			t.Fatalf("reason %q, want %q", got, reason)
		}
	}
	wantOK := func(tok string) {
		t.Helper()
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}

	wantFetches(1)
	wantOK(oldTok)
	// Just after the first load: no refresh allowed yet.
	wantReason(newTok, reasonUnknownKID)
	wantFetches(1)
	// A minute later the unknown kid causes a refresh, but the key is not
	// published yet.
	clk.Advance(61 * time.Second)
	wantReason(newTok, reasonUnknownKID)
	wantFetches(2)
	// The issuer publishes the key: still refused until MinRefreshInterval
	// has passed since the last refresh.
	srv.Set(http.StatusOK, jwksJSON(t, jwk(rsaKey(), "old", "RS256"), jwk(rsaKey2(), "new", "RS256")))
	clk.Advance(30 * time.Second)
	wantReason(newTok, reasonUnknownKID)
	wantFetches(2)
	clk.Advance(31 * time.Second)
	wantOK(newTok)
	wantFetches(3)
	wantOK(oldTok)
	wantOK(newTok)
	wantFetches(3)
	// The issuer retires the old key: gone after the next refresh.
	srv.Set(http.StatusOK, jwksJSON(t, jwk(rsaKey2(), "new", "RS256")))
	clk.Advance(time.Minute)
	wantReason(sign(t, rsaKey(), jose.RS256, "other", c, nil), reasonUnknownKID)
	wantFetches(4)
	wantReason(oldTok, reasonUnknownKID)
	wantOK(newTok)
}

func TestCachedKeysSurviveFailedRefresh(t *testing.T) {
	for name, breakIt := range map[string]func(*jwksServer){
		"server down":     func(s *jwksServer) { s.srv.Close() },
		"status 500":      func(s *jwksServer) { s.Set(http.StatusInternalServerError, []byte(`{"keys":[]}`)) },
		"status 404":      func(s *jwksServer) { s.Set(http.StatusNotFound, nil) },
		"bad JSON":        func(s *jwksServer) { s.Set(http.StatusOK, []byte(`{"keys":[{"kty":`)) },
		"not a key set":   func(s *jwksServer) { s.Set(http.StatusOK, []byte(`{"issuer":"x"}`)) },
		"no usable key":   func(s *jwksServer) { s.Set(http.StatusOK, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)) },
		"empty key set":   func(s *jwksServer) { s.Set(http.StatusOK, []byte(`{"keys":[]}`)) },
		"larger than 1MB": func(s *jwksServer) { s.Set(http.StatusOK, bytes.Repeat([]byte(" "), maxJWKSBytes+1)) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := newJWKSServer(t, standardKeys(t))
			clk := newFakeClock()
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Minute},
				WithClock(clk.Now), WithLogger(log))
			c := claims(clk.Now())
			cached := []string{
				sign(t, rsaKey(), jose.RS256, "rsa-1", c, nil),
				sign(t, ecKey(), jose.ES256, "ec-1", c, nil),
				sign(t, edKey(), jose.EdDSA, "ed-1", c, nil),
			}
			breakIt(srv)
			clk.Advance(2 * time.Minute)
			// The unknown kid triggers a refresh, which fails.
			if got := reasonOf(t, verifyErr(t, v, sign(t, rsaKey2(), jose.RS256, "rsa-new", c, nil))); got != reasonUnknownKID {
				t.Fatalf("reason %q, want %q", got, reasonUnknownKID)
			}
			if !strings.Contains(logs.String(), "key refresh failed") {
				t.Errorf("log has no refresh failure:\n%s", logs.String())
			}
			for _, tok := range cached {
				if _, err := v.Verify(ctxT(t), tok); err != nil {
					t.Errorf("cached key: %v", err)
				}
			}
		})
	}
}

func TestUnknownKIDFloodIsBounded(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	srv.delay.Store(int64(50 * time.Millisecond)) // so that refreshes overlap with verifications
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Hour}, WithClock(clk.Now))
	c := claims(clk.Now())
	const goroutines, perGoroutine = 20, 10
	toks := make([]string, goroutines*perGoroutine)
	for i := range toks {
		toks[i] = sign(t, ecKey(), jose.ES256, fmt.Sprintf("random-%d-%x", i, i*7919), c, nil)
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(toks)) // Verify's results other than unknown_kid (nil for a success)
		for g := range goroutines {
			wg.Go(func() {
				for _, tok := range toks[g*perGoroutine : (g+1)*perGoroutine] {
					_, err := v.Verify(ctxT(t), tok)
					if e, ok := errors.AsType[*Error](err); !ok || e.Reason != reasonUnknownKID {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("got %v, want unknown_kid", err)
		}
	}

	// Within MinRefreshInterval of the first load: no fetch at all.
	flood()
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("fetches after the first flood = %d, want 1 (the first load)", got)
	}
	// After MinRefreshInterval: all 200 share one fetch.
	clk.Advance(2 * time.Hour)
	flood()
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("fetches after the second flood = %d, want 2", got)
	}
	// The known keys still work.
	if _, err := v.Verify(ctxT(t), sign(t, ecKey(), jose.ES256, "ec-1", claims(clk.Now()), nil)); err != nil {
		t.Error(err)
	}
}

func TestFileReloadedOnSchedule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksJSON(t, jwk(rsaKey(), "old", "RS256")))
	v := newVerifier(t, Config{JWKSFile: path, RefreshInterval: 20 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond})
	c := claims(time.Now())
	newTok := sign(t, ecKey(), jose.ES256, "new", c, nil)
	hasNew := func() bool { _, ok := v.keys.Load().byKID["new"]; return ok }
	if hasNew() {
		t.Fatal("the new key is known before it is written")
	}

	writeFile(t, path, jwksJSON(t, jwk(rsaKey(), "old", "RS256"), jwk(ecKey(), "new", "ES256")))
	// Wait for the scheduled reload without calling Verify (which would
	// refresh for the unknown kid).
	for i := 0; !hasNew(); i++ {
		if i == 500 {
			t.Fatal("the new key was not loaded within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := v.Verify(ctxT(t), newTok); err != nil {
		t.Fatalf("new key: %v", err)
	}

	// A broken file, then no file: the keys stay.
	set := v.keys.Load()
	writeFile(t, path, []byte("{not json"))
	waitRefreshes(t, v, 3)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitRefreshes(t, v, 3)
	if v.keys.Load() != set {
		t.Error("the key set changed after failed reloads")
	}
	for _, tok := range []string{newTok, sign(t, rsaKey(), jose.RS256, "old", c, nil)} {
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Errorf("after failed reloads: %v", err)
		}
	}
}

// waitRefreshes waits until n more refreshes have started.
func waitRefreshes(t *testing.T, v *Verifier, n int) {
	t.Helper()
	attempt := func() time.Time { v.mu.Lock(); defer v.mu.Unlock(); return v.lastAttempt }
	for seen, last, i := 0, attempt(), 0; seen < n; i++ {
		if i == 500 {
			t.Fatalf("%d of %d refreshes within 5s", seen, n)
		}
		time.Sleep(10 * time.Millisecond)
		if a := attempt(); !a.Equal(last) {
			seen, last = seen+1, a
		}
	}
}

func TestFileUnknownKIDRereads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksJSON(t, jwk(rsaKey(), "old", "RS256")))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSFile: path, MinRefreshInterval: time.Minute}, WithClock(clk.Now))
	tok := sign(t, ecKey(), jose.ES256, "new", claims(clk.Now()), nil)
	writeFile(t, path, jwksJSON(t, jwk(ecKey(), "new", "")))
	if got := reasonOf(t, verifyErr(t, v, tok)); got != reasonUnknownKID {
		t.Fatalf("reason %q, want %q", got, reasonUnknownKID)
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctxT(t), tok); err != nil {
		t.Fatal(err)
	}
}

func TestScheduledRefreshOverHTTPS(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, RefreshInterval: 20 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond})
	waitRefreshes(t, v, 3)
	if got := srv.fetches.Load(); got < 3 {
		t.Errorf("fetches = %d, want at least 3", got)
	}
}

func TestWithHTTPClient(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL()}, WithHTTPClient(srv.srv.Client()), WithClock(clk.Now))
	if _, err := v.Verify(ctxT(t), sign(t, edKey(), jose.EdDSA, "ed-1", claims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Second}, WithClock(clk.Now))
	v.Close()
	v.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(v.Close)
	}
	wg.Wait()
	// Verify works with the cached keys; an unknown kid fetches nothing.
	c := claims(clk.Now())
	if _, err := v.Verify(ctxT(t), sign(t, rsaKey(), jose.RS256, "rsa-1", c, nil)); err != nil {
		t.Error(err)
	}
	clk.Advance(time.Hour)
	if got := reasonOf(t, verifyErr(t, v, sign(t, rsaKey(), jose.RS256, "nope", c, nil))); got != reasonUnknownKID {
		t.Errorf("reason %q", got)
	}
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

// TestUnknownKIDWaitEndsWithContext: a caller whose context ends stops
// waiting for a slow refresh; the refresh goes on for the others.
func TestUnknownKIDWaitEndsWithContext(t *testing.T) {
	srv := newJWKSServer(t, standardKeys(t))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Second}, WithClock(clk.Now))
	srv.Set(http.StatusOK, jwksJSON(t, jwk(ecKey(), "late", "ES256")))
	srv.delay.Store(int64(time.Second))
	clk.Advance(time.Minute)
	tok := sign(t, ecKey(), jose.ES256, "late", claims(clk.Now()), nil)

	ctx, cancel := contextWithTimeout(20 * time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, tok)
	if got := reasonOf(t, err); got != reasonUnknownKID {
		t.Fatalf("reason %q", got)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Verify waited %v past its context", d)
	}
	// A patient caller shares the same fetch and gets the key.
	if _, err := v.Verify(ctxT(t), tok); err != nil {
		t.Fatal(err)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
