package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/edgegate/edgegate/cache"
)

// The memory tier's library was chosen by these benchmarks: the same
// byte budget, the same Zipf-distributed load over 100,000 distinct keys
// of 1 KiB answers (get; on a miss, set), otter v2 against ristretto v2.
// They report the hit ratio each keeps at the budget and the time per
// operation (docs/benchmarks.md has a run's figures).

const (
	benchKeys   = 100_000
	benchBudget = 8 << 20
	benchBody   = 1 << 10
)

type benchStore interface {
	get(k string) bool
	set(k string, e *cache.Entry)
}

type otterStore struct{ m *cache.Memory }

func (s otterStore) get(k string) bool            { return s.m.Get(context.Background(), k) != nil }
func (s otterStore) set(k string, e *cache.Entry) { s.m.Set(context.Background(), k, e) }

type ristrettoStore struct {
	c *ristretto.Cache[string, *cache.Entry]
}

func (s ristrettoStore) get(k string) bool { _, ok := s.c.Get(k); return ok }
func (s ristrettoStore) set(k string, e *cache.Entry) {
	s.c.SetWithTTL(k, e, int64(len(k)+e.Size()), time.Until(e.Expires))
}

func benchKeyNames() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("route /pkg.Service/Method %040x", i)
	}
	return keys
}

func BenchmarkStore(b *testing.B) {
	keys := benchKeyNames()
	e := entry(string(make([]byte, benchBody)), time.Hour)
	for _, c := range []struct {
		name string
		open func(b *testing.B) benchStore
	}{
		{"otter", func(b *testing.B) benchStore {
			m := cache.NewMemory(benchBudget, cache.MemoryOptions{})
			b.Cleanup(m.Close)
			return otterStore{m}
		}},
		{"ristretto", func(b *testing.B) benchStore {
			rc, err := ristretto.NewCache(&ristretto.Config[string, *cache.Entry]{
				NumCounters: benchKeys * 10, MaxCost: benchBudget, BufferItems: 64, IgnoreInternalCost: true,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(rc.Close)
			return ristrettoStore{rc}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := c.open(b)
			var hits, ops atomic.Int64
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				z := rand.NewZipf(rand.New(rand.NewPCG(seed.Add(1), 7)), 1.01, 1, benchKeys-1) //nolint:gosec // G404: a benchmark load needs no unpredictability
				var h, n int64
				for pb.Next() {
					k := keys[z.Uint64()]
					if s.get(k) {
						h++
					} else {
						s.set(k, e)
					}
					n++
				}
				hits.Add(h)
				ops.Add(n)
			})
			b.ReportMetric(float64(hits.Load())/float64(max(ops.Load(), 1)), "hit-ratio")
		})
	}
}

// BenchmarkMemoryAtBudget fills a memory tier of a 16 MiB budget with
// 100,000 distinct keys of 1 KiB answers (about 100 MiB offered) and
// reports what it holds: the weight it counts and the live heap after a
// collection.
func BenchmarkMemoryAtBudget(b *testing.B) {
	const budget = 16 << 20
	keys := benchKeyNames()
	ctx := context.Background()
	var held, heap float64
	for b.Loop() {
		m := cache.NewMemory(budget, cache.MemoryOptions{})
		for _, k := range keys {
			m.Set(ctx, k, entry(string(make([]byte, benchBody)), time.Hour))
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		held, heap = float64(m.Bytes()), float64(ms.HeapAlloc)
		m.Close()
	}
	b.ReportMetric(held/(1<<20), "held-MiB")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
}
