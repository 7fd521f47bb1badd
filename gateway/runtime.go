package gateway

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"sync"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// defaultGCPercent is the collector's heap growth target when neither the
// config nor GOGC sets one. A proxy's live heap is small and its garbage
// per call large, so at GOGC=100 it collects very often; 400 measured
// 49.5–55.5 against 65.3–86.0 µs per bare native call (docs/configuration.md,
// "Garbage collection") for ~15 MiB more memory under load.
const defaultGCPercent = 400

// startSettings are the collector settings the process started with
// (GOGC, GOMEMLIMIT or the runtime's defaults), restored when a reload
// removes the config's. They are read on first use, by the first
// applyRuntime: importing the package changes nothing.
var startSettings = sync.OnceValues(func() (gcPercent int, memoryLimit int64) {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p, debug.SetMemoryLimit(-1) // negative: read only
})

// runtimeSettings are the collector settings cfg asks for, given the
// environment (getenv).
func runtimeSettings(r *configv1.Runtime, getenv func(string) string) (gcPercent int, memoryLimit int64) {
	gcPercent, memoryLimit = startSettings()
	switch {
	case r != nil && r.GcPercent != nil:
		gcPercent = int(r.GetGcPercent())
	case getenv("GOGC") == "":
		gcPercent = defaultGCPercent
	}
	if r != nil && r.MemoryLimitBytes != nil {
		memoryLimit = int64(min(r.GetMemoryLimitBytes(), math.MaxInt64))
	}
	return gcPercent, memoryLimit
}

// applyRuntime sets the process's collector as cfg says (WithRuntime).
func applyRuntime(cfg *configv1.Config, log *slog.Logger) {
	gc, limit := runtimeSettings(cfg.GetRuntime(), os.Getenv)
	old := debug.SetGCPercent(gc)
	oldLimit := debug.SetMemoryLimit(limit)
	if old != gc || oldLimit != limit {
		attrs := []any{slog.Int("gc_percent", gc)}
		if limit != math.MaxInt64 {
			attrs = append(attrs, slog.Int64("memory_limit_bytes", limit))
		}
		log.Info("runtime: garbage collector set", attrs...)
	}
}

// releaseStartup returns to the OS, once the gateway serves, the memory
// its start freed: the config's parsing and validation and the build's
// garbage. The collector would keep it: at gc_percent 400 the heap's goal
// is five times what lives, and the scavenger returns only what exceeds
// the goal. It costs one collection (a few milliseconds) at start.
func releaseStartup() { debug.FreeOSMemory() }
