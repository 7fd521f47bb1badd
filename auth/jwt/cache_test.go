package jwt

import (
	"net/http"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// cacheFixture is a verifier over an https key set with keys "old" (RSA)
// and "other" (EC), on a fake clock.
func cacheFixture(t *testing.T, size int) (*Verifier, *fakeClock, *jwksServer) {
	t.Helper()
	srv := newJWKSServer(t, jwksJSON(t, jwk(rsaKey(), "old", "RS256"), jwk(ecKey(), "other", "ES256")))
	clk := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL(), CAFile: srv.caFile, MinRefreshInterval: time.Minute, CacheSize: size}, WithClock(clk.Now))
	return v, clk, srv
}

func TestCacheRemembersVerifiedTokens(t *testing.T) {
	v, clk, _ := cacheFixture(t, 0)
	tok := sign(t, rsaKey(), jose.RS256, "old", claims(clk.Now()), nil)
	first, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("the second Verify of a token did not come from the cache")
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("cache holds %d tokens, want 1", n)
	}
	if v.cache.max != defaultCacheSize {
		t.Errorf("cache size %d, want the default %d", v.cache.max, defaultCacheSize)
	}
}

func TestCacheNeverRemembersFailures(t *testing.T) {
	v, clk, _ := cacheFixture(t, 0)
	now := clk.Now()
	good := sign(t, rsaKey(), jose.RS256, "old", claims(now), nil)
	for name, tok := range map[string]string{
		"bad signature": good[:len(good)-4] + "AAAA",
		"wrong key":     sign(t, rsaKey2(), jose.RS256, "old", claims(now), nil),
		"expired":       sign(t, rsaKey(), jose.RS256, "old", with(claims(now), "exp", now.Add(-time.Hour).Unix()), nil),
		"alg none":      craft(`{"alg":"none","kid":"old"}`, `{"exp":9999999999}`, nil),
	} {
		for range 2 {
			if _, err := v.Verify(ctxT(t), tok); err == nil {
				t.Fatalf("%s: accepted", name)
			}
		}
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d tokens after failures only, want 0", n)
	}
}

// A remembered token is still checked against the clock on every call.
func TestCacheChecksTimesOnEveryHit(t *testing.T) {
	v, clk, _ := cacheFixture(t, 0)
	now := clk.Now()
	tok := sign(t, rsaKey(), jose.RS256, "old", with(claims(now), "exp", now.Add(time.Minute).Unix()), nil)
	if _, err := v.Verify(ctxT(t), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + 29*time.Second) // within the 30s skew
	if _, err := v.Verify(ctxT(t), tok); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
	clk.Advance(time.Second)
	if got := reasonOf(t, verifyErr(t, v, tok)); got != reasonExpired {
		t.Fatalf("after expiry: reason %q, want %q", got, reasonExpired)
	}

	// nbf and iat of an entry are checked too (a clock stepped back).
	e := &entry{token: "x", exp: now.Add(time.Hour), nbf: now.Add(time.Minute)}
	if err := v.checkTimes(e, now); err == nil || err.Reason != reasonNotYetValid {
		t.Errorf("nbf ahead: %v, want %s", err, reasonNotYetValid)
	}
	e = &entry{token: "x", exp: now.Add(time.Hour), iat: now.Add(time.Minute)}
	if err := v.checkTimes(e, now); err == nil || err.Reason != reasonIssuedInFuture {
		t.Errorf("iat ahead: %v, want %s", err, reasonIssuedInFuture)
	}
}

// A key removed from the set stops verifying tokens it signed, remembered
// or not.
func TestCacheForgetsTokensOfAChangedKeySet(t *testing.T) {
	v, clk, srv := cacheFixture(t, 0)
	c := claims(clk.Now())
	oldTok := sign(t, rsaKey(), jose.RS256, "old", c, nil)
	otherTok := sign(t, ecKey(), jose.ES256, "other", c, nil)
	for _, tok := range []string{oldTok, otherTok} {
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Fatal(err)
		}
	}

	// The key "old" is withdrawn; a token with an unknown kid makes the
	// verifier refresh.
	srv.Set(http.StatusOK, jwksJSON(t, jwk(ecKey(), "other", "ES256"), jwk(rsaKey2(), "new", "RS256")))
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctxT(t), sign(t, rsaKey2(), jose.RS256, "new", c, nil)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if got := reasonOf(t, verifyErr(t, v, oldTok)); got != reasonUnknownKID {
		t.Fatalf("token of the withdrawn key: reason %q, want %q", got, reasonUnknownKID)
	}
	if _, err := v.Verify(ctxT(t), otherTok); err != nil {
		t.Fatalf("token of a kept key: %v", err)
	}
}

// A refresh that reads the same document keeps the set, and so the
// remembered tokens.
func TestCacheSurvivesAnUnchangedRefresh(t *testing.T) {
	v, clk, srv := cacheFixture(t, 0)
	tok := sign(t, rsaKey(), jose.RS256, "old", claims(clk.Now()), nil)
	first, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	set := v.keys.Load()
	clk.Advance(time.Minute)
	before := srv.fetches.Load()
	if reasonOf(t, verifyErr(t, v, sign(t, rsaKey2(), jose.RS256, "unknown", claims(clk.Now()), nil))) != reasonUnknownKID {
		t.Fatal("a token of an unknown key verified")
	}
	if srv.fetches.Load() != before+1 {
		t.Fatal("the unknown kid caused no refresh")
	}
	if v.keys.Load() != set {
		t.Error("an unchanged key set was replaced")
	}
	again, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Error("the token was verified again after an unchanged refresh")
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	v, clk, _ := cacheFixture(t, 2)
	now := clk.Now()
	var toks []string
	for i := range 3 {
		toks = append(toks, sign(t, rsaKey(), jose.RS256, "old", with(claims(now), "jti", i), nil))
	}
	verify := func(tok string) *Claims {
		t.Helper()
		c, err := v.Verify(ctxT(t), tok)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c0 := verify(toks[0])
	verify(toks[1])
	verify(toks[0]) // toks[1] is now the least recently used
	verify(toks[2])
	if n := v.cache.len(); n != 2 {
		t.Fatalf("cache holds %d tokens, want its size 2", n)
	}
	v.cache.mu.Lock()
	_, has0 := v.cache.entries[toks[0]]
	_, has1 := v.cache.entries[toks[1]]
	v.cache.mu.Unlock()
	if !has0 || has1 {
		t.Errorf("after eviction: has token 0 %v (want true), token 1 %v (want false)", has0, has1)
	}
	if verify(toks[0]) != c0 {
		t.Error("token 0 was verified again")
	}
}

func TestCacheOff(t *testing.T) {
	v, clk, _ := cacheFixture(t, -1)
	if v.cache != nil {
		t.Fatal("CacheSize -1 made a cache")
	}
	tok := sign(t, rsaKey(), jose.RS256, "old", claims(clk.Now()), nil)
	a, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.Verify(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("without a cache, two Verify calls returned the same Claims")
	}
}

// Concurrent hits, misses and evictions (run with -race).
func TestCacheConcurrent(t *testing.T) {
	v, clk, _ := cacheFixture(t, 4)
	now := clk.Now()
	var toks []string
	for i := range 8 {
		toks = append(toks, sign(t, rsaKey(), jose.RS256, "old", with(claims(now), "jti", i), nil))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := v.Verify(ctxT(t), toks[(g+i)%len(toks)]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := v.cache.len(); n > 4 {
		t.Errorf("cache holds %d tokens, more than its size 4", n)
	}
}
