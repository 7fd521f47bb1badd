package jwt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Verifier verifies tokens against a key set that it keeps fresh. It is safe
// for concurrent use. Close stops its refresher.
type Verifier struct {
	cfg         Config
	algs        []jose.SignatureAlgorithm // the allowlist, for go-jose's parser
	subjectName string                    // quoted, for error messages
	scopesName  string
	src         source
	now         func() time.Time
	log         *slog.Logger

	keys  atomic.Pointer[keySet] // never nil after New
	cache *cache                 // nil: off

	mu          sync.Mutex
	inflight    *refreshCall // the refresh running now, if any
	lastAttempt time.Time    // start of the last refresh (by v.now)
	closed      bool

	bg        context.Context // lives until Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the refresher and every refresh
	closeOnce sync.Once
}

// refreshCall is one refresh, shared by everyone who waits for it.
type refreshCall struct {
	done chan struct{}
}

// New checks cfg, loads the key set once, and starts refreshing it every
// cfg.RefreshInterval until Close. It returns an error, and starts nothing,
// when cfg is invalid or the first load fails (an unreachable URL, a bad
// document, no usable key). ctx bounds the first load only; its values (not
// its cancellation) are passed on to the refreshes.
func New(ctx context.Context, cfg Config, opts ...Option) (*Verifier, error) {
	o := options{now: time.Now, log: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	cfg, err := normalize(cfg, &o)
	if err != nil {
		return nil, fmt.Errorf("jwt: invalid config: %w", err)
	}
	v := &Verifier{
		cfg:         cfg,
		subjectName: strconv.Quote(cfg.SubjectClaim),
		scopesName:  strconv.Quote(cfg.ScopesClaim),
		now:         o.now,
		log:         o.log,
	}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	if cfg.CacheSize > 0 {
		v.cache = newCache(cfg.CacheSize)
	}
	if cfg.JWKSFile != "" {
		v.src = fileSource{path: cfg.JWKSFile}
	} else {
		client, own, err := newHTTPClient(o.client, cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: invalid config: %w", err)
		}
		display := cfg.JWKSURL
		if u, err := url.Parse(cfg.JWKSURL); err == nil {
			display = u.Redacted()
		}
		v.src = &urlSource{url: cfg.JWKSURL, display: display, client: client, own: own}
	}

	v.lastAttempt = v.now()
	set, err := v.load(ctx, slog.LevelInfo)
	if err != nil {
		v.src.close()
		return nil, fmt.Errorf("jwt: loading keys from %s: %w", v.src, err)
	}
	v.keys.Store(set)
	v.log.Info("jwt: keys loaded", "source", v.src.String(), "keys", len(set.all))

	v.bg, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
	v.wg.Add(1)
	go v.run()
	return v, nil
}

// Close stops the refresher and waits for a refresh in flight to end.
// Verify still works afterwards, with the keys it has. Close is idempotent.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		v.closed = true
		v.mu.Unlock()
		v.cancel()
		v.wg.Wait()
		v.src.close()
	})
}

// Verify checks token (the compact JWS, without "Bearer ") and returns its
// claims, which the caller must not modify (a token seen again gets the
// same Claims from the cache). Every failure is an *Error. When the token
// names a key id that the set lacks, Verify may refresh the set first (see
// MinRefreshInterval), waiting for it at most 5s or until ctx ends.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*Claims, *Error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, fail(reasonTooLarge, "token is too large")
	}
	if v.cache != nil {
		if e := v.cache.get(token, v.keys.Load()); e != nil {
			if err := v.checkTimes(e, v.now()); err != nil {
				return nil, err
			}
			return e.c, nil
		}
	}
	head, rest, _ := strings.Cut(token, ".")
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") || head == "" || payload == "" {
		return nil, fail(reasonMalformed, "token is not a compact JWS (header.payload.signature)")
	}
	if !canonicalBase64(head) || !canonicalBase64(payload) || !canonicalBase64(sig) {
		return nil, fail(reasonMalformed, "token is not base64url encoded")
	}
	// The parser decodes the header and checks "alg" against the allowlist
	// before anything else looks at the token.
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fail(reasonAlgorithm, "token algorithm is not allowed")
		}
		return nil, fail(reasonMalformed, "token header is malformed")
	}
	if len(jws.Signatures) != 1 {
		return nil, fail(reasonMalformed, "token is not a compact JWS (header.payload.signature)")
	}
	h := jws.Signatures[0].Header
	alg := h.Algorithm
	fam, ok := supportedAlgorithms[alg]
	if !ok { // unreachable: the parser checked the allowlist
		return nil, fail(reasonAlgorithm, "token algorithm is not allowed")
	}
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok && !acceptedTyp(typ) {
		return nil, fail(reasonTyp, "token type is not accepted")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, fail(reasonMalformed, "token header has critical extensions")
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, fail(reasonMalformed, "token header has an unencoded payload")
	}

	set, keys, ferr := v.keysFor(ctx, h.KeyID, alg, fam)
	if ferr != nil {
		return nil, ferr
	}
	var verified []byte
	for _, k := range keys {
		if verified, err = jws.Verify(k.pub); err == nil {
			break
		}
	}
	if verified == nil {
		return nil, fail(reasonSignature, "token signature is invalid")
	}
	c, ferr := v.checkClaims(verified, v.now())
	if ferr != nil {
		return nil, ferr
	}
	if v.cache != nil {
		v.cache.put(&entry{token: token, set: set, c: c, exp: c.Expiry, nbf: c.notBefore, iat: c.issuedAt})
	}
	return c, nil
}

// keysFor returns the keys that may verify a token with kid and alg (of
// family f), and the set they are from, refreshing the set once when kid is
// unknown.
func (v *Verifier) keysFor(ctx context.Context, kid, alg string, f family) (*keySet, []*key, *Error) {
	set := v.keys.Load()
	if kid == "" {
		if ks := set.byAlg(alg, f); len(ks) == 1 {
			return set, ks, nil
		}
		return nil, nil, fail(reasonMissingKID, "token has no key id and no single key fits its algorithm")
	}
	cands, ok := set.byKID[kid]
	if !ok && v.refreshForUnknownKID(ctx) {
		set = v.keys.Load()
		cands, ok = set.byKID[kid]
	}
	if !ok {
		return nil, nil, fail(reasonUnknownKID, "token key id is unknown")
	}
	if len(cands) == 1 && cands[0].fits(alg, f) {
		return set, cands, nil
	}
	var fit []*key
	for _, k := range cands {
		if k.fits(alg, f) {
			fit = append(fit, k)
		}
	}
	if len(fit) == 0 {
		return nil, nil, fail(reasonKeyMismatch, "token algorithm does not fit its key")
	}
	return set, fit, nil
}

// refreshForUnknownKID waits for a refresh of the key set: the one in
// flight, or a new one unless the last began less than MinRefreshInterval
// ago. It reports whether there was a refresh to wait for; the wait ends
// after kidRefreshWait or with ctx.
func (v *Verifier) refreshForUnknownKID(ctx context.Context) bool {
	c := v.startRefresh("unknown kid")
	if c == nil {
		return false
	}
	t := time.NewTimer(kidRefreshWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-ctx.Done():
	case <-t.C:
	}
	return true
}

// startRefresh returns the refresh in flight, or starts one, unless the
// Verifier is closed or the last refresh began less than MinRefreshInterval
// ago (then nil). The refresh runs in its own goroutine, bounded by
// fetchTimeout and Close, so that a caller giving up does not cancel it
// for the others.
func (v *Verifier) startRefresh(trigger string) *refreshCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight != nil {
		return v.inflight
	}
	now := v.now()
	if v.closed || now.Sub(v.lastAttempt) < v.cfg.MinRefreshInterval {
		return nil
	}
	c := &refreshCall{done: make(chan struct{})}
	v.inflight, v.lastAttempt = c, now
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		v.refresh(trigger)
		v.mu.Lock()
		v.inflight = nil
		v.mu.Unlock()
		close(c.done)
	}()
	return c
}

// run refreshes the key set every RefreshInterval until Close.
func (v *Verifier) run() {
	defer v.wg.Done()
	t := time.NewTicker(v.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-v.bg.Done():
			return
		case <-t.C:
		}
		if c := v.startRefresh("schedule"); c != nil {
			select {
			case <-c.done:
			case <-v.bg.Done():
				return
			}
		}
	}
}

// refresh loads the key set and swaps it in; on failure the last good set
// stays.
func (v *Verifier) refresh(trigger string) {
	set, err := v.load(v.bg, slog.LevelDebug)
	if err != nil {
		if v.bg.Err() == nil {
			v.log.Warn("jwt: key refresh failed; the last good keys stay in use",
				"source", v.src.String(), "trigger", trigger, "error", err.Error())
		}
		return
	}
	if old := v.keys.Load(); bytes.Equal(old.doc, set.doc) {
		// Unchanged: keep the old set, and the tokens it verified.
		v.log.Debug("jwt: keys unchanged", "source", v.src.String(), "trigger", trigger)
		return
	}
	v.keys.Store(set)
	v.log.Debug("jwt: keys refreshed", "source", v.src.String(), "trigger", trigger, "keys", len(set.all))
}

// load reads and parses the key set; ignored keys are logged at level.
func (v *Verifier) load(ctx context.Context, level slog.Level) (*keySet, error) {
	data, err := v.src.load(ctx)
	if err != nil {
		return nil, err
	}
	return parseJWKS(ctx, data, v.log, level, v.src.String())
}

// acceptedTyp reports whether a "typ" header names a JWT (RFC 7519) or an
// access token JWT (RFC 9068), case-insensitively.
func acceptedTyp(typ any) bool {
	s, ok := typ.(string)
	if !ok {
		return false
	}
	s = strings.TrimPrefix(strings.ToLower(s), "application/")
	return s == "jwt" || s == "at+jwt"
}

// canonicalBase64 reports whether s is unpadded base64url, with nothing
// else in it (the decoder would skip line breaks), and whose unused trailing
// bits are zero: no two accepted strings decode to the same bytes.
func canonicalBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return b64Value(s[len(s)-1])&0x0f == 0
	case 3:
		return b64Value(s[len(s)-1])&0x03 == 0
	}
	return true
}

// b64Value is the value of a base64url digit, or -1.
func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// Check does what New does before it starts anything, for a dry run
// (`edgegate validate`): it checks cfg, reads the CA file, and loads a
// JWKS file and parses its keys. A JWKS URL is not fetched: Check reaches
// no network, so a URL that cannot be fetched is found at serve.
func Check(ctx context.Context, cfg Config, opts ...Option) error {
	o := options{now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	cfg, err := normalize(cfg, &o)
	if err != nil {
		return fmt.Errorf("jwt: invalid config: %w", err)
	}
	if cfg.JWKSFile == "" {
		if cfg.CAFile != "" {
			if _, err := loadCAs(cfg.CAFile); err != nil {
				return fmt.Errorf("jwt: invalid config: %w", err)
			}
		}
		return nil
	}
	src := fileSource{path: cfg.JWKSFile}
	data, err := src.load(ctx)
	if err == nil {
		_, err = parseJWKS(ctx, data, o.log, slog.LevelDebug, src.String())
	}
	if err != nil {
		return fmt.Errorf("jwt: loading keys from %s: %w", src, err)
	}
	return nil
}
