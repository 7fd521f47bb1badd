package waf_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/frontdoor/waf"
	"github.com/edgegate/edgegate/internal/callinfo"
)

func compile(t *testing.T, c *configv1.WAF, cache *waf.Cache) *waf.Firewall {
	t.Helper()
	f, release, err := waf.Compile(c, "waf", cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return f
}

// serve runs one request through f in front of a handler that answers
// 200, and returns the answer and the record.
func serve(f *waf.Firewall, r *http.Request, body string) (*httptest.ResponseRecorder, *callinfo.Info) {
	rec := httptest.NewRecorder()
	info := callinfo.New(callinfo.DoorREST)
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	w, done, ok := f.Serve(rec, r, info, waf.Request{Body: b})
	if ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
		done()
	}
	return rec, info
}

func TestBlocksSQLInjectionInQuery(t *testing.T) {
	f := compile(t, &configv1.WAF{}, waf.NewCache())
	r := httptest.NewRequest(http.MethodGet, "/v1/products?q=1%27%20OR%20%271%27%3D%271", nil)
	r.Header.Set("User-Agent", "curl/8")
	r.Header.Set("Accept", "*/*")
	rec, info := serve(f, r, "")
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"code":7`) {
		t.Fatalf("answer %d %s, want 403 PERMISSION_DENIED", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "942") {
		t.Errorf("the answer names rules: %s", rec.Body)
	}
	if info.WAFOutcome != waf.OutcomeBlocked || info.WAFScore < 5 || len(info.WAFRules) == 0 {
		t.Errorf("record: %s %d %v", info.WAFOutcome, info.WAFScore, info.WAFRules)
	}
	t.Logf("rules %v score %d", info.WAFRules, info.WAFScore)
}
