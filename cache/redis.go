package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions are the Redis tier's settings; every field is optional.
type RedisOptions struct {
	// Prefix is put before every key in Redis; default "edgegate:cache:".
	Prefix string
	// Timeout bounds one Redis command; default 50ms.
	Timeout time.Duration
	// Failed is told of every command that failed (op is "get", "set" or
	// "purge"). After a failure the tier is skipped for a second, so that
	// a Redis that is down costs calls nothing.
	Failed func(op string, err error)
}

// Redis is the Redis tier: entries shared by every replica that uses the
// same server, each kept until its Expires (PX).
type Redis struct {
	c         redis.UniversalClient
	o         RedisOptions
	skipUntil atomic.Int64 // unix nanoseconds: after a failure
}

// NewRedis returns the Redis tier of c, a client that honours context
// deadlines (ContextTimeoutEnabled).
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = "edgegate:cache:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	return &Redis{c: c, o: o}
}

// skipFor is how long the tier is skipped after a failure.
const skipFor = time.Second

func (r *Redis) usable() bool { return time.Now().UnixNano() >= r.skipUntil.Load() }

func (r *Redis) failed(op string, err error) {
	r.skipUntil.Store(time.Now().Add(skipFor).UnixNano())
	if r.o.Failed != nil {
		r.o.Failed(op, err)
	}
}

// Get implements Store. A Redis that fails (or is skipped) misses.
func (r *Redis) Get(ctx context.Context, key string) *Entry {
	if !r.usable() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeout)
	defer cancel()
	b, err := r.c.Get(ctx, r.o.Prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		r.failed("get", err)
		return nil
	}
	e := &Entry{}
	if err := e.UnmarshalBinary(b); err != nil || !time.Now().Before(e.Expires) {
		return nil
	}
	return e
}

// Set implements Store.
func (r *Redis) Set(ctx context.Context, key string, e *Entry) {
	ttl := time.Until(e.Expires)
	if ttl <= 0 || !r.usable() {
		return
	}
	b, _ := e.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeout)
	defer cancel()
	if err := r.c.Set(ctx, r.o.Prefix+key, b, ttl).Err(); err != nil {
		r.failed("set", err)
	}
}

// Purge implements Store: SCAN for the prefix, then DEL, on every master
// of a Redis Cluster (each node's keys are its own) or on the one server.
// It is not skipped after a failure, and its commands get ten times the
// timeout.
func (r *Redis) Purge(ctx context.Context, prefix string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*r.o.Timeout)
	defer cancel()
	match := globEscape(r.o.Prefix+prefix) + "*"
	var n atomic.Int64
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return purgeNode(ctx, node, match, &n)
		})
	} else {
		err = purgeNode(ctx, r.c, match, &n)
	}
	if err != nil {
		r.failed("purge", err)
		return int(n.Load()), fmt.Errorf("cache: redis purge: %w", err)
	}
	return int(n.Load()), nil
}

// purgeNode deletes the keys of one node that match, a key per DEL (keys
// of one SCAN page may lie in different slots of a Cluster), adding the
// count deleted to n.
func purgeNode(ctx context.Context, c redis.Cmdable, match string, n *atomic.Int64) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Del(ctx, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, cmd := range cmds {
				n.Add(cmd.(*redis.IntCmd).Val())
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// globEscape escapes the characters of a Redis glob pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Tiered is the memory tier in front of an optional Redis tier: a get
// asks memory, then Redis (and keeps what Redis had in memory); a set
// writes both.
type Tiered struct {
	Memory *Memory
	Redis  *Redis // nil: memory only
}

var _ Store = (*Tiered)(nil)

// Get implements Store.
func (t *Tiered) Get(ctx context.Context, key string) *Entry {
	if e := t.Memory.Get(ctx, key); e != nil {
		return e
	}
	if t.Redis == nil {
		return nil
	}
	e := t.Redis.Get(ctx, key)
	if e != nil {
		t.Memory.Set(ctx, key, e)
	}
	return e
}

// Set implements Store.
func (t *Tiered) Set(ctx context.Context, key string, e *Entry) {
	t.Memory.Set(ctx, key, e)
	if t.Redis != nil {
		t.Redis.Set(ctx, key, e)
	}
}

// Purge implements Store: the memory tier of this process, and Redis
// (the other replicas' memory tiers keep their copies until they expire).
// The count is the larger of the two tiers'.
func (t *Tiered) Purge(ctx context.Context, prefix string) (int, error) {
	n, _ := t.Memory.Purge(ctx, prefix)
	if t.Redis == nil {
		return n, nil
	}
	m, err := t.Redis.Purge(ctx, prefix)
	return max(n, m), err
}
