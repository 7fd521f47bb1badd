package frontdoor

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestNotModified(t *testing.T) {
	serve := func(method, inm, etag string, code int) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/v1/x", nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		rec := httptest.NewRecorder()
		w := notModified(rec, req)
		w.Header().Set("Content-Type", "application/json")
		if etag != "" {
			w.Header().Set("Etag", etag)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"a":1}`))
		return rec
	}
	for _, c := range []struct {
		method, inm, etag string
		code, want        int
	}{
		{"GET", `"a"`, `"a"`, 200, 304},
		{"GET", `"b", W/"a"`, `"a"`, 200, 304},
		{"HEAD", `*`, `"a"`, 200, 304},
		{"GET", `"b"`, `"a"`, 200, 200},
		{"GET", `"a"`, "", 200, 200},
		{"GET", `"a"`, `"a"`, 404, 404},
		{"POST", `"a"`, `"a"`, 200, 200},
		{"GET", "", `"a"`, 200, 200},
	} {
		rec := serve(c.method, c.inm, c.etag, c.code)
		if rec.Code != c.want {
			t.Errorf("%s If-None-Match %s, ETag %s, %d: got %d, want %d", c.method, c.inm, c.etag, c.code, rec.Code, c.want)
		}
		if c.want == http.StatusNotModified && (rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" || rec.Header().Get("Etag") != c.etag) {
			t.Errorf("304 with body %q, headers %v", rec.Body, rec.Header())
		}
	}
}
