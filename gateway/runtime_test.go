package gateway

import (
	"testing"

	"google.golang.org/protobuf/proto"

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
