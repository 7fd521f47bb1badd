package main

import (
	"testing"
	"time"
)

// A sample is charged to the innermost frame of a known part: allocation
// to the code that allocated, a write to the system calls, a GC worker to
// the collector.
func TestChargeSamples(t *testing.T) {
	traces := []byte(`File: edgegate
Type: cpu
-----------+-------------------------------------------------------
      10ms   runtime.mallocgc
             runtime.newobject
             google.golang.org/grpc/internal/transport.(*http2Client).NewStream
             github.com/edgegate/edgegate/router.(*Proxy).forward
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall/linux.Syscall6
             syscall.write
             net/http.(*http2serverConn).writeFrameAsync
-----------+-------------------------------------------------------
      30ms   runtime.scanobject
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      40ms   github.com/edgegate/edgegate/internal/stack.Grow
             net/http.(*http2serverConn).runHandler
-----------+-------------------------------------------------------
       1.5s  runtime.mcall
-----------+-------------------------------------------------------
`)
	got, total := chargeSamples(traces)
	want := map[string]time.Duration{
		"grpc-go HTTP/2 transport (framing, HPACK, reader, loopy writer)": 10 * time.Millisecond,
		shareSyscall: 20 * time.Millisecond,
		shareGC:      30 * time.Millisecond,
		"edgegate (its own code: doors, chain, proxy)": 40 * time.Millisecond,
		shareRuntime: 1500 * time.Millisecond,
	}
	if total != 1600*time.Millisecond {
		t.Errorf("total %v", total)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("parts %v", got)
	}
}
