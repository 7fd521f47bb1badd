package jwt

import (
	"strings"
	"sync"
	"time"
)

// defaultCacheSize is the number of verified tokens a Verifier remembers
// when Config.CacheSize is 0.
const defaultCacheSize = 1024

// cache remembers tokens whose signature verified, so that a token seen
// again (a client's next call) skips the signature check: an RS256 check
// costs tens of microseconds, a hit a map lookup. An entry is tied to the
// key set that verified it: when the set changes (a refresh that brought
// different keys), no entry verified with the old set is used again. The
// time claims (exp, nbf, iat) are checked again on every hit; the rest of
// the claims (iss, aud, the subject and scopes) cannot change for the same
// token and Verifier. Failures are never remembered. The least recently
// used entry goes first when the cache is full. It is safe for concurrent
// use.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*entry
	head    entry // sentinel of the recency list: head.next is the newest
}

// entry is one verified token.
type entry struct {
	token string
	set   *keySet // the key set that verified it
	c     *Claims
	// The time claims, checked on every hit; a zero time is absent.
	exp, nbf, iat time.Time

	prev, next *entry
}

func newCache(max int) *cache {
	c := &cache{max: max, entries: make(map[string]*entry)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

// get returns the entry of token if it was verified with set.
func (c *cache) get(token string, set *keySet) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[token]
	if e == nil {
		return nil
	}
	if e.set != set {
		c.remove(e)
		return nil
	}
	c.unlink(e)
	c.pushFront(e)
	return e
}

// put remembers e, evicting the least recently used entry when full.
func (c *cache) put(e *entry) {
	e.token = strings.Clone(e.token) // not a slice of a larger header
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[e.token]; old != nil {
		c.remove(old)
	}
	for len(c.entries) >= c.max {
		c.remove(c.head.prev)
	}
	c.entries[e.token] = e
	c.pushFront(e)
}

// len is the number of entries.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *cache) remove(e *entry) {
	c.unlink(e)
	delete(c.entries, e.token)
}

func (c *cache) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

// checkTimes checks the time claims of a remembered token at now, as
// checkClaims did when it was verified.
func (v *Verifier) checkTimes(e *entry, now time.Time) *Error {
	skew := v.cfg.ClockSkew
	if !now.Before(e.exp.Add(skew)) {
		return fail(reasonExpired, "token is expired")
	}
	if !e.nbf.IsZero() && now.Add(skew).Before(e.nbf) {
		return fail(reasonNotYetValid, `token is not valid yet ("nbf")`)
	}
	if !e.iat.IsZero() && e.iat.After(now.Add(skew)) {
		return fail(reasonIssuedInFuture, `token is issued in the future ("iat")`)
	}
	return nil
}
