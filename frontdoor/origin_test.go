package frontdoor

import (
	"context"
	"crypto/tls"
	"net/http/httptest"
	"testing"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// A request's own origin is admitted without being listed: the scheme of
// its connection and its Host, default ports made explicit.
func TestCORSAdmitsTheRequestsOwnOrigin(t *testing.T) {
	c := NewCORS(&configv1.CORS{AllowedOrigins: []string{"https://app.example"}})
	for _, tc := range []struct {
		origin, host string
		tls, want    bool
	}{
		{"", "gw.example", false, true},
		{"https://app.example", "gw.example", false, true},
		{"http://gw.example", "gw.example", false, true},
		{"http://gw.example:80", "gw.example", false, true},
		{"http://gw.example", "gw.example:80", false, true},
		{"http://GW.example:8080", "gw.example:8080", false, true},
		{"https://gw.example", "gw.example", true, true},
		{"https://gw.example", "gw.example:443", true, true},
		{"http://[::1]:8080", "[::1]:8080", false, true},
		{"http://[::1]", "[::1]:80", false, true},
		{"https://gw.example", "gw.example", false, false}, // a plaintext request
		{"http://gw.example", "gw.example", true, false},   // a TLS one
		{"http://gw.example:8080", "gw.example", false, false},
		{"http://gw.example.evil", "gw.example", false, false},
		{"http://evil.example", "gw.example", false, false},
		{"http://", "", false, false},
		{"null", "gw.example", false, false},
		{"gw.example", "gw.example", false, false},
	} {
		r := httptest.NewRequest("POST", "/v1/echo:unary", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.tls {
			r = r.WithContext(context.WithValue(r.Context(), tlsStateKey{}, &tls.ConnectionState{}))
		}
		if got := c.admits(r); got != tc.want {
			t.Errorf("Origin %q, Host %q, TLS %v: admitted %v, want %v", tc.origin, tc.host, tc.tls, got, tc.want)
		}
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Origin", "https://evil.example")
	if !NewCORS(&configv1.CORS{AllowedOrigins: []string{"https://app.example"}, ServeOtherOrigins: true}).admits(r) {
		t.Error("serve_other_origins: another origin was not admitted")
	}
}
