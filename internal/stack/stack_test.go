package stack

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
)

// deep recurses n frames of about 1 KiB each.
//
//go:noinline
func deep(n int) byte {
	var b [1 << 10]byte
	b[n%len(b)] = byte(n)
	if n == 0 {
		return b[0]
	}
	return deep(n-1) + b[(n+1)%len(b)]
}

// BenchmarkGoroutine runs a goroutine that goes 24 KiB deep, as a proxied
// call does, with and without Grow first; the difference is the stack
// copying Grow saves.
func BenchmarkGoroutine(b *testing.B) {
	for _, c := range []struct {
		name string
		grow bool
	}{{"on-demand", false}, {"grow-first", true}} {
		b.Run(c.name, func(b *testing.B) {
			done := make(chan byte)
			for b.Loop() {
				go func() {
					if c.grow {
						Grow()
					}
					done <- deep(24)
				}()
				<-done
			}
		})
	}
}

// stackInUse starts n goroutines that call f and block, and returns how
// much the stack memory in use grew with them. It returns once they have
// exited, so that their stacks are not freed during the next measurement.
func stackInUse(n int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ready, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			f()
			ready <- struct{}{}
			<-release
		})
	}
	for range n {
		<-ready
	}
	runtime.ReadMemStats(&after)
	close(release)
	wg.Wait()
	return after.StackInuse - before.StackInuse
}

// Grow leaves a goroutine with a stack of 32 KiB: 64 goroutines that grew
// hold at least 64 × 24 KiB more stack than 64 that did not. The collector
// is off meanwhile: a collection shrinks the stack of a goroutine that
// uses a quarter of it or less, as these do once Grow has returned.
func TestGrow(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n = 64
	plain := stackInUse(n, func() {})
	grown := stackInUse(n, Grow)
	if grown < plain+n*24<<10 {
		t.Fatalf("stack in use: %d B for %d goroutines that grew, %d B for %d that did not", grown, n, plain, n)
	}
}

// growZeroed is Grow as it was first written: a frame that is used, and so
// zeroed on every call.
//
//go:noinline
func growZeroed() {
	var frame [Call]byte
	touch(&frame)
}

// BenchmarkGrow is the cost of Grow on a goroutine's first call, against a
// frame that is zeroed too.
func BenchmarkGrow(b *testing.B) {
	for _, c := range []struct {
		name string
		grow func()
	}{{"branch", Grow}, {"zeroed", growZeroed}} {
		b.Run(c.name, func(b *testing.B) {
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					c.grow()
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
