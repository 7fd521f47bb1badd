package ratelimit

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOption configures [NewRedis].
type RedisOption func(*redisOptions)

type redisOptions struct {
	prefix  string
	timeout time.Duration
}

func defaultRedisOptions() redisOptions {
	return redisOptions{prefix: "edgegate:rl:", timeout: 50 * time.Millisecond}
}

// WithKeyPrefix sets the prefix of every Redis key the store uses (default "edgegate:rl:").
func WithKeyPrefix(prefix string) RedisOption {
	return func(o *redisOptions) { o.prefix = prefix }
}

// WithTimeout sets the longest one check may take (default 50ms), after which Allow returns an
// error. d <= 0 keeps the default.
func WithTimeout(d time.Duration) RedisOption {
	return func(o *redisOptions) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// Redis is a [Store] in Redis, shared by every gateway replica that uses the same Redis and key
// prefix. It is safe for concurrent use and holds no state besides its configuration.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// NewRedis returns a store that keeps its state in Redis through client, which the caller owns
// (and closes). The per-check timeout is applied to the context of each call; for it to bound a
// call to a Redis that accepts connections but does not answer, the client must be built with
// ContextTimeoutEnabled (otherwise go-redis waits its own ReadTimeout).
func NewRedis(client redis.UniversalClient, opts ...RedisOption) *Redis {
	o := defaultRedisOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return &Redis{client: client, prefix: o.prefix, timeout: o.timeout}
}

// gcraScript is the whole check of one call, run atomically by Redis.
//
// KEYS[i] holds limit i's TAT, in microseconds since the epoch; ARGV[2i-1] and ARGV[2i] are its
// emission interval T and tolerance τ, in microseconds. The reply is
// {allowed (1 or 0), now, tat_1, ..., tat_n}: for an allowed call the TATs just stored, for a
// denied one max(stored TAT, now), as [decide] leaves them. Numbers are written with %.0f
// because Redis would format a Lua number with 14 significant digits only.
var gcraScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local allowed = 1
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  if tat < now then tat = now end
  if tat + tonumber(ARGV[2*i-1]) - tonumber(ARGV[2*i]) > now then allowed = 0 end
  tats[i] = tat
end
local reply = {allowed, now}
for i = 1, n do
  local tat = tats[i]
  if allowed == 1 then
    tat = tat + tonumber(ARGV[2*i-1])
    redis.call('SET', KEYS[i], string.format('%.0f', tat),
      'PX', string.format('%.0f', math.ceil((tat - now) / 1000)))
  end
  reply[i+2] = tat
end
return reply
`)

// Allow implements [Store]. It runs one script (EVALSHA, or EVAL when Redis does not have it)
// within the store's timeout, and returns an error wrapping the go-redis or context error when
// Redis cannot decide, or for an invalid Limit.
func (r *Redis) Allow(ctx context.Context, key string, limits []Limit) (Decision, error) {
	var pbuf [4]gcraParams
	ps, err := paramsOf(limits, pbuf[:])
	if err != nil {
		return Decision{}, err
	}
	if len(ps) == 0 {
		return Decision{Allowed: true}, nil
	}
	keys := make([]string, len(ps))
	args := make([]any, 0, 2*len(ps))
	buf := make([]byte, 0, len(r.prefix)+len(key)+34)
	for i, p := range ps {
		buf = appendTagged(append(buf[:0], r.prefix...), key)
		buf = append(strconv.AppendInt(append(buf, ':'), p.interval, 10), '-')
		keys[i] = string(strconv.AppendInt(buf, p.tolerance, 10))
		args = append(args, p.interval, p.tolerance)
	}

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	reply, err := gcraScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(reply) != 2+len(ps) {
		return Decision{}, fmt.Errorf("ratelimit: redis: script replied %d values, want %d", len(reply), 2+len(ps))
	}
	return decision(reply[1], reply[0] == 1, limits, ps, reply[2:]), nil
}

// appendTagged appends key to buf as a Redis Cluster hash tag, "{key}", so
// that every limit of one key is in one hash slot (a Cluster runs a script
// only on keys of one slot). A key holding a '}' would end the tag early,
// or leave it empty ("{}"; Redis then hashes the whole name): such a key is
// appended as "{h}key", h the hex FNV-1a hash of the key, which is the tag.
func appendTagged(buf []byte, key string) []byte {
	if strings.IndexByte(key, '}') < 0 {
		return append(append(append(buf, '{'), key...), '}')
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	buf = strconv.AppendUint(append(buf, '{'), h.Sum64(), 16)
	return append(append(buf, '}'), key...)
}
