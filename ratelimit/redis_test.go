package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedisThreeReplicas: three stores on three go-redis clients, as three gateway replicas
// would be, hammer one key at once; exactly the burst is allowed in total.
func TestRedisThreeReplicas(t *testing.T) {
	srv := startRedis(t)
	l := Limit{Requests: 50, Period: 24 * time.Hour, Burst: 50}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		store := NewRedis(srv.Client(), WithTimeout(10*time.Second))
		for range 10 {
			hammer(t, &wg, store, "shared", l, 10, &allowed, &denied)
		}
	}
	wg.Wait()
	if allowed.Load() != 50 || denied.Load() != 250 {
		t.Errorf("allowed %d, denied %d; want 50 and 250", allowed.Load(), denied.Load())
	}
}

// TestRedisWaitRetryAfter: with the server's clock, a client that sleeps RetryAfter is allowed.
func TestRedisWaitRetryAfter(t *testing.T) {
	srv := startRedis(t)
	store := NewRedis(srv.Client(), WithTimeout(5*time.Second))
	l := Limit{Requests: 1, Period: 30 * time.Millisecond, Burst: 1}
	for round := range 5 {
		// Drain, then wait as told.
		var d Decision
		for i := 0; i < 100; i++ {
			if d = allow(t, store, "k", l); !d.Allowed {
				break
			}
		}
		if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 30*time.Millisecond {
			t.Fatalf("round %d: %+v, want denied for (0, 30ms]", round, d)
		}
		time.Sleep(d.RetryAfter)
		if d := allow(t, store, "k", l); !d.Allowed {
			t.Fatalf("round %d: denied after sleeping RetryAfter: %+v", round, d)
		}
	}
}

// TestRedisKeys checks the key names, that allowed calls set a TTL equal to the time until the
// TAT is past, and that denied calls write nothing.
func TestRedisKeys(t *testing.T) {
	srv := startRedis(t)
	client := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	store := NewRedis(client, WithTimeout(5*time.Second))
	l := Limit{Requests: 3, Period: 30 * time.Second, Burst: 3} // T 10s, τ 30s
	allow(t, store, "user:1", l)
	key := "edgegate:rl:{user:1}:10000000-30000000"
	pttl, err := client.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	if pttl <= 9*time.Second || pttl > 10*time.Second {
		t.Errorf("PTTL %s = %v, want (9s, 10s]: the time until the TAT", key, pttl)
	}
	allow(t, store, "user:1", l)
	allow(t, store, "user:1", l)
	if pttl, _ := client.PTTL(ctx, key).Result(); pttl <= 29*time.Second || pttl > 30*time.Second {
		t.Errorf("after the burst: PTTL = %v, want (29s, 30s]", pttl)
	}
	before, err := client.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := allow(t, store, "user:1", l); d.Allowed {
		t.Fatalf("4th call allowed")
	}
	if after, _ := client.Get(ctx, key).Result(); after != before {
		t.Errorf("a denied call changed the TAT: %s -> %s", before, after)
	}
	// The TAT is microseconds since the epoch, by the server's clock.
	tat, err := strconv.ParseInt(before, 10, 64)
	if err != nil {
		t.Fatalf("TAT %q: %v", before, err)
	}
	serverNow, err := client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.UnixMicro(tat).Sub(serverNow); d <= 29*time.Second || d > 30*time.Second {
		t.Errorf("TAT - server time = %v, want (29s, 30s]", d)
	}

	// A denied call on a new key leaves no key behind.
	allow(t, store, "user:2", strict1)
	if n, _ := client.Exists(ctx, "edgegate:rl:{user:2}:3600000000-3600000000").Result(); n != 1 {
		t.Errorf("user:2 strict1 key missing")
	}
	if d := allow(t, store, "user:2", Limit{Requests: 5, Period: time.Minute}, strict1); d.Allowed {
		t.Fatalf("user:2 allowed past strict1")
	}
	if n, _ := client.Exists(ctx, "edgegate:rl:{user:2}:12000000-60000000").Result(); n != 0 {
		t.Errorf("a denied call created a key for its other limit")
	}

	// The prefix is configurable.
	allow(t, NewRedis(client, WithKeyPrefix("other:"), WithTimeout(5*time.Second)), "user:1", l)
	if n, _ := client.Exists(ctx, "other:{user:1}:10000000-30000000").Result(); n != 1 {
		t.Errorf("key with prefix other: missing")
	}
	// State expires by itself.
	short := Limit{Requests: 1, Period: 20 * time.Millisecond}
	allow(t, store, "short", short)
	shortKey := "edgegate:rl:{short}:20000-20000"
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		n, err := client.Exists(ctx, shortKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i >= 500 || time.Now().After(deadline) {
			t.Fatalf("%s still exists after 5s", shortKey)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisScriptFlushed: after SCRIPT FLUSH (as after a restart) EVALSHA fails with NOSCRIPT
// and the store falls back to EVAL by itself.
func TestRedisScriptFlushed(t *testing.T) {
	srv := startRedis(t)
	client := srv.Client()
	store := NewRedis(client, WithTimeout(5*time.Second))
	allow(t, store, "k", hour3)
	if err := client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if d := allow(t, store, "k", hour3); !d.Allowed || d.States[0].Remaining != 1 {
		t.Errorf("after SCRIPT FLUSH: %+v, want the 2nd call of 3", d)
	}
}

// TestRedisDownAndBack: with Redis killed, Allow returns an error, promptly (the timeout); once
// Redis is back on the same port, Allow works again without any action from the caller.
func TestRedisDownAndBack(t *testing.T) {
	srv := startRedis(t)
	store := NewRedis(srv.Client()) // the default 50ms timeout
	allow(t, store, "k", hour3)

	srv.Kill()
	for i := range 3 {
		start := time.Now()
		d, err := store.Allow(context.Background(), "k", []Limit{hour3})
		elapsed := time.Since(start)
		if err == nil {
			t.Fatalf("call %d with Redis down: no error (%+v)", i, d)
		}
		if d.Allowed || d.States != nil {
			t.Errorf("call %d: Decision %+v with an error, want the zero value", i, d)
		}
		if elapsed > 2*time.Second {
			t.Errorf("call %d: took %v with Redis down, want about the 50ms timeout", i, elapsed)
		}
		t.Logf("call %d with Redis down: %v after %v", i, err, elapsed)
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		d, err := store.Allow(context.Background(), "k", []Limit{hour3})
		if err == nil {
			// The restarted Redis has no state (no persistence): a fresh key.
			if !d.Allowed || d.States[0].Remaining != 2 {
				t.Errorf("after restart: %+v, want a fresh key", d)
			}
			break
		}
		if i >= 200 || time.Now().After(deadline) {
			t.Fatalf("Allow still fails 10s after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisCallerContext: the caller's context bounds the check too.
func TestRedisCallerContext(t *testing.T) {
	srv := startRedis(t)
	store := NewRedis(srv.Client(), WithTimeout(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Allow(ctx, "k", []Limit{hour3}); !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a cancelled context: err = %v, want context.Canceled", err)
	}
}

// BenchmarkRedisAllow measures one check against a local redis-server, serial and parallel.
func BenchmarkRedisAllow(b *testing.B) {
	srv := startRedis(b)
	store := NewRedis(srv.Client(), WithTimeout(5*time.Second))
	limits := []Limit{{Requests: 10, Period: time.Second, Burst: 10}, {Requests: 1000, Period: 24 * time.Hour}}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.Allow(ctx, "k", limits); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			key := "k" + strconv.FormatInt(next.Add(1), 10)
			for pb.Next() {
				if _, err := store.Allow(ctx, key, limits); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
