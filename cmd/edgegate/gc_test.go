package main

import (
	"runtime/debug"
	"testing"
)

// lowerGCPercent lowers the collector's target for the config's load and
// sets back what was there; a lower target, or the collector off, stays.
func TestLowerGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct{ before, during int }{
		{100, loadGCPercent},
		{400, loadGCPercent},
		{loadGCPercent - 5, loadGCPercent - 5},
		{-1, -1}, // GOGC=off
	} {
		debug.SetGCPercent(c.before)
		restore := lowerGCPercent(loadGCPercent)
		if got := debug.SetGCPercent(c.during); got != c.during {
			t.Errorf("from %d: %d during the load, want %d", c.before, got, c.during)
		}
		restore()
		if got := debug.SetGCPercent(100); got != c.before {
			t.Errorf("from %d: %d after the load", c.before, got)
		}
	}
}
