// Package cache stores the answers of the gateway's response cache
// (package interceptors/cache): a memory tier with a byte budget
// (maypok86/otter v2, W-TinyLFU eviction, chosen over ristretto v2 by the
// benchmarks in bench_test.go), an optional Redis tier shared by replicas
// behind it, and the coalescing of concurrent identical misses (Flights).
//
// An Entry is what one answer was: its header and trailer metadata, its
// message or its error status, and until when it is fresh and kept. Keys
// are strings whose prefixes the cache's purge selects (a route, a route
// and a method).
package cache
