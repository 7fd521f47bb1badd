package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/cache"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/redisclient"
	"github.com/edgegate/edgegate/internal/testredis"
)

func entry(body string, ttl time.Duration) *cache.Entry {
	now := time.Now()
	return &cache.Entry{
		Header:  map[string][]string{"cache-control": {"max-age=60"}, "x-a": {"1", "2"}},
		Trailer: map[string][]string{"x-t": {"t"}},
		Body:    []byte(body),
		ETag:    `"abc"`,
		Stored:  now,
		Fresh:   now.Add(ttl),
		Expires: now.Add(2 * ttl),
	}
}

func sameEntry(t *testing.T, got, want *cache.Entry) {
	t.Helper()
	if got == nil {
		t.Fatal("no entry")
	}
	if !bytes.Equal(got.Body, want.Body) || !bytes.Equal(got.Status, want.Status) || got.ETag != want.ETag ||
		!reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.Trailer, want.Trailer) ||
		!got.Fresh.Equal(want.Fresh) || !got.Expires.Equal(want.Expires) || !got.Stored.Equal(want.Stored) {
		t.Fatalf("entry %+v, want %+v", got, want)
	}
}

func TestEntryEncoding(t *testing.T) {
	for _, e := range []*cache.Entry{
		entry("hello", time.Minute),
		{Status: []byte{8, 5}, Stored: time.Unix(0, 1), Fresh: time.Unix(0, 2), Expires: time.Unix(0, 3)},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got cache.Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		sameEntry(t, &got, e)
		for i := range b {
			if err := new(cache.Entry).UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("a truncated entry (%d of %d bytes) decoded", i, len(b))
			}
		}
	}
}

// FuzzEntryUnmarshal: bytes from Redis never panic the decoder, and what
// decodes encodes back to the same bytes.
func FuzzEntryUnmarshal(f *testing.F) {
	b, _ := entry("seed", time.Minute).MarshalBinary()
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e cache.Entry
		if e.UnmarshalBinary(b) != nil {
			return
		}
		again, _ := e.MarshalBinary()
		var e2 cache.Entry
		if err := e2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		sameEntry(t, &e2, &e)
	})
}

// TestMemoryBudget: the memory tier never holds more than its budget; it
// evicts (and says so) to stay within it.
func TestMemoryBudget(t *testing.T) {
	var evicted atomic.Int64
	const budget = 256 << 10
	m := cache.NewMemory(budget, cache.MemoryOptions{Evicted: func() { evicted.Add(1) }})
	defer m.Close()
	ctx := context.Background()
	body := string(bytes.Repeat([]byte("x"), 1000))
	for i := range 5000 {
		m.Set(ctx, fmt.Sprintf("r /m k%d", i), entry(body, time.Hour))
	}
	if got := m.Bytes(); got > budget {
		t.Fatalf("holds %d bytes, budget %d", got, budget)
	}
	if m.Len() == 0 || m.Len() >= 5000 {
		t.Fatalf("holds %d entries", m.Len())
	}
	Eventually(t, func() bool { return evicted.Load() > 0 })
}

func Eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMemoryExpiryAndPurge: an entry past its Expires is gone; Purge
// deletes by key prefix.
func TestMemoryExpiryAndPurge(t *testing.T) {
	m := cache.NewMemory(1<<20, cache.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	past := entry("old", time.Hour)
	past.Expires = time.Now().Add(-time.Second)
	m.Set(ctx, "r /m old", past)
	if m.Get(ctx, "r /m old") != nil {
		t.Fatal("an expired entry was returned")
	}
	for _, k := range []string{"books /s/Get a", "books /s/Get b", "books /s/List a", "orders /o/Get a"} {
		m.Set(ctx, k, entry(k, time.Hour))
	}
	if n, _ := m.Purge(ctx, "books /s/Get "); n != 2 {
		t.Fatalf("purged %d, want 2", n)
	}
	if m.Get(ctx, "books /s/Get a") != nil || m.Get(ctx, "books /s/List a") == nil {
		t.Fatal("purge by method prefix")
	}
	if n, _ := m.Purge(ctx, "books "); n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	if m.Get(ctx, "orders /o/Get a") == nil {
		t.Fatal("another route's entry was purged")
	}
}

func TestFlights(t *testing.T) {
	var f cache.Flights
	fl, leader := f.Join("k")
	if !leader {
		t.Fatal("the first is not the leader")
	}
	var wg sync.WaitGroup
	got := make(chan *cache.Entry, 10)
	for range 10 {
		w, leader := f.Join("k")
		if leader {
			t.Fatal("a second leader")
		}
		wg.Go(func() {
			e, err := w.Wait(context.Background())
			if err != nil {
				t.Error(err)
			}
			got <- e
		})
	}
	e := entry("answer", time.Minute)
	f.Land("k", fl, e)
	wg.Wait()
	close(got)
	for g := range got {
		if g != e {
			t.Fatal("a waiter got another answer")
		}
	}
	if _, leader := f.Join("k"); !leader {
		t.Fatal("a landed flight is still joined")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w, _ := f.Join("k")
	if _, err := w.Wait(ctx); err == nil {
		t.Fatal("Wait ignored its context")
	}
}

func redisClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestTieredRedis: two tiered stores (two replicas) share entries through
// a real Redis; purge reaches Redis; with Redis killed, gets miss and sets
// go on in memory, each failure reported, and nothing blocks.
func TestTieredRedis(t *testing.T) {
	rs := testredis.Start(t)
	var failures atomic.Int64
	newStore := func() *cache.Tiered {
		m := cache.NewMemory(1<<20, cache.MemoryOptions{})
		t.Cleanup(m.Close)
		return &cache.Tiered{Memory: m, Redis: cache.NewRedis(redisClient(t, rs.Addr), cache.RedisOptions{
			Timeout: 200 * time.Millisecond, Failed: func(string, error) { failures.Add(1) },
		})}
	}
	a, b := newStore(), newStore()
	ctx := context.Background()
	e := entry("shared", time.Minute)
	a.Set(ctx, "r /m k", e)
	sameEntry(t, b.Get(ctx, "r /m k"), e)
	if b.Memory.Get(ctx, "r /m k") == nil {
		t.Fatal("an entry read from Redis is not kept in memory")
	}
	a.Set(ctx, "r /m k2", e)
	if n, err := a.Purge(ctx, "r /m k2"); n != 1 || err != nil {
		t.Fatalf("purge: %d %v", n, err)
	}
	_, _ = b.Memory.Purge(ctx, "")
	if b.Get(ctx, "r /m k2") != nil {
		t.Fatal("a purged entry is still in Redis")
	}
	rs.Kill()
	a.Set(ctx, "r /m k3", e)
	if a.Get(ctx, "r /m k3") == nil {
		t.Fatal("with Redis down, the memory tier lost the entry")
	}
	if b.Get(ctx, "r /m k3") != nil || failures.Load() == 0 {
		t.Fatalf("with Redis down: failures %d", failures.Load())
	}
}

// TestRedisTierOnCluster: the Redis tier on a real three-master Redis
// Cluster: entries of many slots are shared, and a purge by prefix reaches
// every master (each holds its own keys).
func TestRedisTierOnCluster(t *testing.T) {
	cl := testredis.StartCluster(t)
	c, err := redisclient.New(&configv1.Redis{
		Cluster: &configv1.RedisCluster{Addresses: cl.Addrs()},
		Timeout: durationpb.New(time.Second),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := cache.NewRedis(c, cache.RedisOptions{Timeout: time.Second, Failed: func(op string, err error) { t.Errorf("%s: %v", op, err) }})
	ctx := context.Background()
	e := entry("clustered", time.Minute)
	const n = 60
	for i := range n {
		r.Set(ctx, fmt.Sprintf("route-a /m k%d", i), e)
		r.Set(ctx, fmt.Sprintf("route-b /m k%d", i), e)
	}
	for i := range n {
		sameEntry(t, r.Get(ctx, fmt.Sprintf("route-a /m k%d", i)), e)
	}
	var masters atomic.Int64 // ForEachMaster calls the masters concurrently
	_ = c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		if node.DBSize(ctx).Val() > 0 {
			masters.Add(1)
		}
		return nil
	})
	if masters.Load() < 2 {
		t.Fatalf("the keys sit on %d masters, want them spread", masters.Load())
	}
	if got, err := r.Purge(ctx, "route-a "); got != n || err != nil {
		t.Fatalf("purge: %d %v, want %d", got, err, n)
	}
	for i := range n {
		if r.Get(ctx, fmt.Sprintf("route-a /m k%d", i)) != nil {
			t.Fatalf("route-a k%d is still there after the purge", i)
		}
		sameEntry(t, r.Get(ctx, fmt.Sprintf("route-b /m k%d", i)), e)
	}
}
