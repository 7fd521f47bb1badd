// Package cache is the response cache policy: a route's unary calls that
// are safe to answer twice (methods marked NO_SIDE_EFFECTS, the methods
// the route lists, REST GET and HEAD requests) are answered from the
// store (package github.com/edgegate/edgegate/cache) while the answer is
// fresh, on every door alike, as raw frames.
//
// The key is the route, the method, the request message's bytes, the
// values of the metadata keys the route varies by and, unless the route's
// scope is "shared", the caller: the principal when the call is
// authenticated, else its authorization and cookie headers. One caller's
// answer never reaches another.
//
// An answer is stored unless it streams, sets a cookie, says no-store,
// private or no-cache (cache-control response metadata), or is an error
// whose code the route does not cache. Its freshness is the route's ttl,
// or the upstream's s-maxage or max-age. After it, stale_while_revalidate
// serves it while one background call refreshes it, and stale_if_error
// serves it when the upstream fails. Concurrent identical misses make one
// upstream call.
//
// Answers carry x-cache-status (native gRPC) or Cache-Status (RFC 9211,
// REST and gRPC-Web) and, on REST, an ETag; the call's record says how the
// cache answered (hit, miss, stale, coalesced) for the access log.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/cache"
	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/internal/redisclient"
	"github.com/edgegate/edgegate/policy"
)

// Defaults of the cache section.
const (
	DefaultMaxBytes      = 64 << 20
	DefaultMaxEntryBytes = 1 << 20
)

// key carries a route's cache rule.
var key = policy.NewKey[*Rule]("cache")

// Interceptor is the cache policy of the chain: one store for the
// gateway's life (the cache section is read at start), a rule per route
// from every configuration.
type Interceptor struct {
	d       policy.Deps
	mem     *cache.Memory
	store   *cache.Tiered
	client  redis.UniversalClient
	flights cache.Flights
	m       *collectors
	lastLog atomic.Int64
	// Fixed at start: the status headers, the largest entry.
	httpStatus, grpcStatus bool
	maxEntry               int
}

// New builds the store of cfg's cache section (read at start, as are
// http.disable_cache_status and the other cache keys): the memory tier
// and, with cache.redis, the Redis tier of the redis section (a client of its own,
// which connects when first used; none in a dry run).
func New(cfg *configv1.Config, d policy.Deps) (*Interceptor, error) {
	c := cfg.GetCache()
	maxBytes := c.GetMaxBytes()
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	p := &Interceptor{
		d: d, m: newCollectors(),
		httpStatus: !cfg.GetHttp().GetDisableCacheStatus(),
		grpcStatus: !c.GetDisableStatusHeader(),
		maxEntry:   int(c.GetMaxEntryBytes()),
	}
	if p.maxEntry == 0 {
		p.maxEntry = DefaultMaxEntryBytes
	}
	if d.Log == nil {
		p.d.Log = slog.Default()
	}
	p.mem = cache.NewMemory(maxBytes, cache.MemoryOptions{Evicted: p.m.evictions.Inc})
	p.store = &cache.Tiered{Memory: p.mem}
	if r := cfg.GetRedis(); r != nil && c.GetRedis() && !d.DryRun {
		client, err := redisclient.New(r, d.Log)
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		p.client = client
		p.store.Redis = cache.NewRedis(p.client, cache.RedisOptions{Timeout: r.GetTimeout().AsDuration(), Failed: p.redisFailed})
	}
	if d.Metrics != nil && !d.DryRun {
		p.m.register(d.Metrics.Registry, p.mem)
	}
	return p, nil
}

// redisFailed logs (at most once a second) and counts a failed Redis
// command: the memory tier goes on alone.
func (p *Interceptor) redisFailed(op string, err error) {
	p.m.redisErrors.WithLabelValues(op).Inc()
	if now := time.Now().UnixNano(); now-p.lastLog.Load() > int64(time.Second) {
		p.lastLog.Store(now)
		p.d.Log.Warn("cache redis tier unavailable; serving from memory", slog.String("op", op), slog.String("error", err.Error()))
	}
}

// Name implements policy.Policy.
func (*Interceptor) Name() string { return "cache" }

// Close releases the store.
func (p *Interceptor) Close() error {
	p.mem.Close()
	if p.client != nil {
		return p.client.Close()
	}
	return nil
}

// Purge deletes the stored answers of route (all of them when prefix is
// empty), or, with route empty, those whose key starts with prefix (keys
// are "ROUTE /pkg.Service/Method HASH"), in this process's memory and in
// Redis; it returns how many. The memory tiers of other replicas keep
// theirs until they expire.
func (p *Interceptor) Purge(ctx context.Context, route, prefix string) (int, error) {
	if route != "" {
		prefix = route + " " + prefix
	}
	n, err := p.store.Purge(ctx, prefix)
	if err != nil {
		return n, fmt.Errorf("purge %q: %w", prefix, err)
	}
	return n, nil
}

// Rule is one route's compiled cache settings. It is immutable.
type Rule struct {
	route    string
	scope    string // a hash of the settings: changed settings, new keys
	ttl      time.Duration
	swr, sie time.Duration
	methods  map[string]bool
	vary     []string
	shared   bool
	negative map[codes.Code]time.Duration
	maxEntry int
	// Which status headers the answers carry.
	httpStatus, grpcStatus bool
}

// Compile gives every route with a cache section its rule.
func (p *Interceptor) Compile(b *policy.Build) error {
	cfg := b.Config
	var errs []error
	bad := func(path, format string, args ...any) { errs = append(errs, config.FieldErrorf(path, format, args...)) }
	if cfg.GetCache().GetRedis() && cfg.GetRedis() == nil {
		bad("cache.redis", "the Redis tier needs the redis section")
	}
	for i, rt := range cfg.GetRoutes() {
		c := rt.GetCache()
		if c == nil {
			continue
		}
		path := fmt.Sprintf("routes[%d].cache", i)
		r := &Rule{
			route:      rt.GetName(),
			ttl:        c.GetTtl().AsDuration(),
			swr:        c.GetStaleWhileRevalidate().AsDuration(),
			sie:        c.GetStaleIfError().AsDuration(),
			methods:    map[string]bool{},
			shared:     c.GetScope() == "shared",
			negative:   map[codes.Code]time.Duration{},
			maxEntry:   p.maxEntry,
			httpStatus: p.httpStatus,
			grpcStatus: p.grpcStatus,
		}
		for _, m := range c.GetMethods() {
			r.methods[m] = true
		}
		for j, v := range c.GetVary() {
			v = strings.ToLower(v)
			if !grpcwire.ValidKey(v) {
				bad(fmt.Sprintf("%s.vary[%d]", path, j), "%q is not a metadata key ([0-9a-z-_.])", c.GetVary()[j])
				continue
			}
			r.vary = append(r.vary, v)
		}
		slices.Sort(r.vary)
		for j, n := range c.GetNegative() {
			var code codes.Code
			if err := code.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(n.GetCode())))); err != nil || code == codes.OK {
				bad(fmt.Sprintf("%s.negative[%d].code", path, j), "%q is not an error code (NOT_FOUND, PERMISSION_DENIED, …)", n.GetCode())
				continue
			}
			r.negative[code] = n.GetTtl().AsDuration()
		}
		buf, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		sum := sha256.Sum256(buf)
		r.scope = hex.EncodeToString(sum[:6])
		policy.Put(b, i, key, r)
	}
	return errors.Join(errs...)
}

// collectors are the cache's metrics.
type collectors struct {
	requests    *prometheus.CounterVec
	evictions   prometheus.Counter
	redisErrors *prometheus.CounterVec
}

func newCollectors() *collectors {
	return &collectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_cache_requests_total", Help: "Cacheable calls, by route, door and how the cache answered (hit, miss, stale, coalesced).",
		}, []string{"route", "door", "result"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegate_cache_evictions_total", Help: "Answers evicted from the memory tier to stay within cache.max_bytes.",
		}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_cache_redis_errors_total", Help: "Commands of the cache's Redis tier that failed, by operation; the memory tier served instead.",
		}, []string{"op"}),
	}
}

func (c *collectors) register(reg *prometheus.Registry, mem *cache.Memory) {
	if reg == nil {
		return
	}
	for _, col := range []prometheus.Collector{
		c.requests, c.evictions, c.redisErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgegate_cache_bytes", Help: "Bytes the memory tier holds (keys, messages and metadata).",
		}, func() float64 { return float64(mem.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgegate_cache_entries", Help: "Answers the memory tier holds.",
		}, func() float64 { return float64(mem.Len()) }),
	} {
		_ = reg.Register(col) // a second gateway in one process shares the first's
	}
}
