package frontdoor

import (
	"log/slog"
	"testing"
	"time"

	"github.com/edgegate/edgegate/config"
)

// A relay listener's engine takes the configuration's limits: the
// defaults when the keys are absent, and each key as set (0s write
// timeout: none, -1: no control-frame bound).
func TestRelayTakesTheLimits(t *testing.T) {
	for _, c := range []struct {
		limits             string
		writeTimeout       time.Duration
		maxControl         int
		ping, pingTimeout  time.Duration
		minPing, age, agrc time.Duration
		permit             bool
	}{
		{"{}", 30 * time.Second, 1000, 2 * time.Hour, 20 * time.Second, 30 * time.Second, 0, 0, false},
		{"{write_timeout: 0s, max_control_frames: -1, keepalive: {time: 1m, timeout: 5s, min_ping_interval: 10s, permit_without_stream: true, max_connection_age: 1h, max_connection_age_grace: 1m}}",
			-1, -1, time.Minute, 5 * time.Second, 10 * time.Second, time.Hour, time.Minute, true},
		{"{write_timeout: 5s, max_control_frames: 50}", 5 * time.Second, 50, 2 * time.Hour, 20 * time.Second, 30 * time.Second, 0, 0, false},
	} {
		cfg, err := config.Load("limits.yaml", []byte(`
listeners: [{name: shared, address: 127.0.0.1:0}, {name: grpc, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}]
clusters: [{name: c, endpoints: ["127.0.0.1:1"]}]
routes: [{match: {service: a.B}, cluster: c}]
limits: `+c.limits+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", c.limits, err)
		}
		for _, l := range cfg.GetListeners() {
			s := NewServer(ListenerOptions{Listener: l, HTTP: cfg.GetHttp(), Limits: cfg.GetLimits(), Native: &NativeDoor{}, Log: slog.New(slog.DiscardHandler)})
			r := s.Relay
			if r == nil {
				t.Fatalf("%s: listener %s has no relay", c.limits, l.GetName())
			}
			got := []any{r.WriteTimeout, r.MaxControlFrames, r.PingInterval, r.PingTimeout, r.MinPingInterval, r.MaxConnectionAge, r.MaxConnectionAgeGrace, r.PermitPingWithoutStream}
			want := []any{c.writeTimeout, c.maxControl, c.ping, c.pingTimeout, c.minPing, c.age, c.agrc, c.permit}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s, listener %s: relay has %v, want %v (write timeout, control frames, ping, ping timeout, min ping, age, grace, permit)", c.limits, l.GetName(), got, want)
					break
				}
			}
		}
	}
}
