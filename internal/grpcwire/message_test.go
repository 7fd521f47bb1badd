package grpcwire

import (
	"testing"
	"time"
)

func TestFormatTimeoutRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 0, 1, 999, 99999999, 100000000, 1500 * time.Millisecond, 30 * time.Second, 5 * time.Hour, 1<<63 - 1} {
		v := FormatTimeout(d)
		got, ok, err := ParseTimeout(v)
		if err != nil || !ok {
			t.Fatalf("FormatTimeout(%v) = %q, which does not parse: %v", d, v, err)
		}
		if len(v) > 9 {
			t.Errorf("FormatTimeout(%v) = %q: more than 8 digits", d, v)
		}
		// Rounded up, never below d, and within one unit of it.
		if d > 0 && (got < d || (d < time.Hour && got-d > d/1e7+time.Nanosecond)) {
			t.Errorf("FormatTimeout(%v) = %q = %v", d, v, got)
		}
	}
}
