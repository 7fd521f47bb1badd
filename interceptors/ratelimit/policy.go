package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/redisclient"
	"github.com/edgegate/edgegate/policy"
	limiter "github.com/edgegate/edgegate/ratelimit"
)

// key carries a route's rate limit policies.
var key = policy.NewKey[[]*Policy]("rate_limits")

// Interceptor is the rate limit policy of the chain: the named policies of
// rate_limits, applied to the routes that name them, counted in the
// gateway's stores (one in memory; one in Redis with a redis section, read
// at start). A policy's counts are keyed by its name and a hash of its
// limits, so that reloads keep the counts of unchanged policies.
type Interceptor struct {
	d      policy.Deps
	memory *limiter.Memory
	redis  *limiter.Redis
	client redis.UniversalClient
}

// New builds the stores of cfg: the in-memory store and, with cfg's redis
// section, a client of that Redis built by redisclient (one server,
// Sentinel or Cluster; it connects when first used).
func New(cfg *configv1.Config, d policy.Deps) (*Interceptor, error) {
	rl := &Interceptor{d: d, memory: limiter.NewMemory()}
	if r := cfg.GetRedis(); r != nil && !d.DryRun {
		redis.SetLogger(NewRedisLogger(d.Log, redisLogEvery))
		// A check never waits long: the store's own timeout bounds it, and
		// no retry may stretch it (redisclient's defaults).
		client, err := redisclient.New(r, d.Log)
		if err != nil {
			return nil, err
		}
		rl.client = client
		rl.redis = limiter.NewRedis(rl.client, limiter.WithTimeout(r.GetTimeout().AsDuration()))
	}
	return rl, nil
}

// Name implements policy.Policy.
func (*Interceptor) Name() string { return "rate_limits" }

// Close closes the stores.
func (rl *Interceptor) Close() error {
	err := rl.memory.Close()
	if rl.client != nil {
		err = errors.Join(err, rl.client.Close())
	}
	return err
}

// StreamServerInterceptor applies the route's policies to every call (see
// the package-level StreamServerInterceptor).
func (rl *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	o := Options{Policies: key.From, Log: rl.d.Log}
	if m := rl.d.Metrics; m != nil {
		o.Rejected = func(policy, door string) { m.Rejected("ratelimit", policy, door) }
		o.StoreFailed = m.StoreFailed
	}
	return StreamServerInterceptor(o)
}

// Compile compiles the rate limit policies of b's configuration and gives
// each route the ones it names.
func (rl *Interceptor) Compile(b *policy.Build) error {
	cfg := b.Config
	var errs []error
	bad := func(path, format string, args ...any) { errs = append(errs, config.FieldErrorf(path, format, args...)) }
	byName := map[string]*Policy{}
	for i, pc := range cfg.GetRateLimits() {
		path := fmt.Sprintf("rate_limits[%d]", i)
		if _, dup := byName[pc.GetName()]; dup {
			bad(path+".name", "duplicate rate limit name %q", pc.GetName())
			continue
		}
		p := &Policy{Name: pc.GetName(), FailClosed: pc.GetFailClosed(), OmitHeadersWhenAllowed: pc.GetOmitHeadersWhenAllowed()}
		for _, l := range pc.GetLimits() {
			p.Limits = append(p.Limits, limiter.Limit{Requests: l.GetRequests(), Period: l.GetPeriod().AsDuration(), Burst: l.GetBurst()})
		}
		for _, k := range pc.GetKey() {
			switch part := k.GetPart().(type) {
			case *configv1.RateLimitKey_Principal:
				p.Key = append(p.Key, Principal)
			case *configv1.RateLimitKey_ClientIp:
				p.Key = append(p.Key, ClientIP)
			case *configv1.RateLimitKey_Method:
				p.Key = append(p.Key, Method)
			case *configv1.RateLimitKey_Header:
				p.Key = append(p.Key, Header(part.Header))
			case *configv1.RateLimitKey_ApiKeyHeader:
				p.Key = append(p.Key, APIKey(part.ApiKeyHeader))
			}
		}
		switch {
		case pc.GetBackend() != configv1.RateLimitBackend_RATE_LIMIT_BACKEND_REDIS:
			p.Store = rl.memory
		case cfg.GetRedis() == nil:
			bad(path+".backend", "RATE_LIMIT_BACKEND_REDIS needs the redis section")
		case rl.redis == nil && !b.DryRun:
			bad(path+".backend", "no redis section at start (it is read at start only)")
		default:
			p.Store = rl.redis
		}
		buf, _ := proto.MarshalOptions{Deterministic: true}.Marshal(pc)
		sum := sha256.Sum256(buf)
		p.Scope = hex.EncodeToString(sum[:6])
		byName[p.Name] = p.Compile()
	}
	for i, r := range b.Routes() {
		var ps []*Policy
		for j, name := range r.GetRateLimits() {
			p, ok := byName[name]
			if !ok {
				bad(fmt.Sprintf("%s.rate_limits[%d]", b.Path(i), j), "unknown rate limit policy %q", name)
				continue
			}
			ps = append(ps, p)
		}
		if len(ps) > 0 {
			policy.Put(b, i, key, ps)
		}
	}
	return errors.Join(errs...)
}

// redisLogEvery is how often at most one kind of go-redis log line is
// written: a Redis that is down makes the client log every failed dial.
const redisLogEvery = 10 * time.Second

// RedisMessage is the message of the log lines of the Redis client.
const RedisMessage = "redis client"

// RedisLogger writes go-redis's own log lines (redis.SetLogger: a pool
// that cannot dial, a connection it drops) as the gateway's log lines at
// WARN, message RedisMessage, the line in the attribute "detail". Each
// kind of line (its format) is written at most once per every; the next
// one written says how many were left out in between ("suppressed"). It is
// safe for concurrent use.
type RedisLogger struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*redisKind // by format: a fixed set in go-redis
}

type redisKind struct {
	last       time.Time
	suppressed int
}

// NewRedisLogger returns a RedisLogger writing to log (slog's default when
// nil).
func NewRedisLogger(log *slog.Logger, every time.Duration) *RedisLogger {
	if log == nil {
		log = slog.Default()
	}
	return &RedisLogger{log: log, every: every, now: time.Now, kinds: map[string]*redisKind{}}
}

// Printf implements go-redis's internal.Logging.
func (r *RedisLogger) Printf(_ context.Context, format string, v ...any) {
	now := r.now()
	r.mu.Lock()
	k := r.kinds[format]
	if k == nil {
		k = &redisKind{}
		r.kinds[format] = k
	} else if now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	attrs := []any{slog.String("detail", strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))}
	if n > 0 {
		attrs = append(attrs, slog.Int("suppressed", n))
	}
	r.log.Warn(RedisMessage, attrs...)
}
