package gateway

import (
	"io"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

func TestRuntimeSettings(t *testing.T) {
	startGCPercent, startMemoryLimit := startSettings()
	noEnv := func(string) string { return "" }
	gogc := func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}
	for _, tc := range []struct {
		name      string
		r         *configv1.Runtime
		getenv    func(string) string
		gc        int
		memLimit  int64
		sameLimit bool // the limit the process started with
	}{
		{"nothing set", nil, noEnv, defaultGCPercent, 0, true},
		{"empty section", &configv1.Runtime{}, noEnv, defaultGCPercent, 0, true},
		{"GOGC set: the runtime's value stays", nil, gogc, startGCPercent, 0, true},
		{"config over GOGC", &configv1.Runtime{GcPercent: proto.Int32(50)}, gogc, 50, 0, true},
		{"collector off with a limit", &configv1.Runtime{GcPercent: proto.Int32(-1), MemoryLimitBytes: proto.Uint64(1 << 30)}, noEnv, -1, 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gc, limit := runtimeSettings(tc.r, tc.getenv)
			if gc != tc.gc {
				t.Errorf("gc percent %d, want %d", gc, tc.gc)
			}
			if tc.sameLimit && limit != startMemoryLimit || !tc.sameLimit && limit != tc.memLimit {
				t.Errorf("memory limit %d", limit)
			}
		})
	}
}

// With WithRuntime, the gateway returns what its start freed to the OS
// once it serves: a forced collection (debug.FreeOSMemory) follows Serve.
func TestServeReleasesStartupMemory(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cfg, err := config.Load("runtime.yaml", []byte(`
listeners: [{address: "127.0.0.1:0"}]
clusters: [{name: echo, endpoints: ["127.0.0.1:1"]}]
routes: [{match: {service: edgegate.testing.v1.EchoService}, cluster: echo}]
logging: {disable_access_log: true}
admin: {disable: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithRuntime())
	if err != nil {
		t.Fatal(err)
	}
	before := forcedGCs()
	served := make(chan error, 1)
	go func() { served <- g.Serve() }()
	defer func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for forcedGCs() == before {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("no forced collection after Serve")
		}
	}
}

// forcedGCs is the number of collections the program forced so far.
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
