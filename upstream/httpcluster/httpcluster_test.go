package httpcluster

import (
	"net/http"
	"strings"
	"testing"
)

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		method, body, upgrade string
		want                  bool
	}{
		{"GET", "", "", true},
		{"HEAD", "", "", true},
		{"PUT", "", "", true},
		{"DELETE", "", "", true},
		{"POST", "", "", false},
		{"PATCH", "", "", false},
		{"PUT", "x", "", false},
		{"GET", "", "websocket", false},
	} {
		var body *strings.Reader
		req, _ := http.NewRequest(c.method, "http://x/", nil)
		if c.body != "" {
			body = strings.NewReader(c.body)
			req, _ = http.NewRequest(c.method, "http://x/", body)
		}
		if c.upgrade != "" {
			req.Header.Set("Upgrade", c.upgrade)
		}
		if got := retryable(req); got != c.want {
			t.Errorf("%s body %q upgrade %q: %v, want %v", c.method, c.body, c.upgrade, got, c.want)
		}
	}
}
