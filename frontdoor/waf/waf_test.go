package waf_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"

	"github.com/edgegate/edgegate/frontdoor/waf"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
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

func TestMerge(t *testing.T) {
	l := &configv1.WAF{ParanoiaLevel: proto.Uint32(2), RemoveRuleIds: []uint32{920350}, Mode: configv1.WAFMode_WAF_MODE_DETECTION_ONLY}
	r := &configv1.WAF{InboundAnomalyThreshold: proto.Uint32(10), RemoveRuleIds: []uint32{942100}, Mode: configv1.WAFMode_WAF_MODE_BLOCKING}
	m := waf.Merge(l, r)
	if m.GetParanoiaLevel() != 2 || m.GetInboundAnomalyThreshold() != 10 || m.GetMode() != configv1.WAFMode_WAF_MODE_BLOCKING {
		t.Errorf("merged %v", m)
	}
	if got := m.GetRemoveRuleIds(); len(got) != 2 || got[0] != 920350 || got[1] != 942100 {
		t.Errorf("merged exclusions %v", got)
	}
	if len(l.GetRemoveRuleIds()) != 1 {
		t.Errorf("Merge changed the listener's settings: %v", l)
	}
	if waf.Merge(l, &configv1.WAF{Disabled: true}) != nil || waf.Merge(nil, nil) != nil || waf.Merge(&configv1.WAF{Disabled: true}, nil) != nil {
		t.Error("a disabled WAF merged into one that is on")
	}
	if got := waf.Merge(nil, r); got != r {
		t.Errorf("route alone: %v", got)
	}
}

// TestCacheSharesRuleSets: the same directives compile once while held
// (a reload that leaves a WAF alone reuses its rule set); other
// directives compile anew; a rule set no one holds is dropped.
func TestCacheSharesRuleSets(t *testing.T) {
	cache := waf.NewCache()
	_, r1, err := waf.Compile(&configv1.WAF{}, "waf", cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := waf.Compile(&configv1.WAF{}, "waf", cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cache.Compiles() != 1 {
		t.Fatalf("%d compiles of the same directives, want 1", cache.Compiles())
	}
	_, r3, err := waf.Compile(&configv1.WAF{ParanoiaLevel: proto.Uint32(2)}, "waf", cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cache.Compiles() != 2 {
		t.Fatalf("%d compiles, want 2", cache.Compiles())
	}
	r1()
	r2()
	r3()
	if _, r, err := waf.Compile(&configv1.WAF{}, "waf", cache, nil); err != nil || cache.Compiles() != 3 {
		t.Fatalf("after release: %v, %d compiles, want 3", err, cache.Compiles())
	} else {
		r()
	}
}

func TestDetectionOnlyServes(t *testing.T) {
	f := compile(t, &configv1.WAF{Mode: configv1.WAFMode_WAF_MODE_DETECTION_ONLY}, waf.NewCache())
	rec, info := serve(f, httptest.NewRequest(http.MethodGet, "/x?id=1%27%20OR%20%271%27%3D%271", nil), "")
	if rec.Code != http.StatusOK || info.WAFOutcome != waf.OutcomeDetected || !slices.Contains(info.WAFRules, 942100) {
		t.Fatalf("%d %s %v", rec.Code, info.WAFOutcome, info.WAFRules)
	}
}

func TestBodyOverTheLimit(t *testing.T) {
	big := `{"message":"` + strings.Repeat("a", 200) + `"}`
	post := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(big))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	reject := compile(t, &configv1.WAF{MaxBodyBytes: proto.Uint32(100)}, waf.NewCache())
	rec, info := serve(reject, post(), big)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), `"code":8`) || info.WAFOutcome != waf.OutcomeTooLarge {
		t.Errorf("reject: %d %s %s", rec.Code, rec.Body, info.WAFOutcome)
	}
	pass := compile(t, &configv1.WAF{MaxBodyBytes: proto.Uint32(100), BodyLimit: configv1.WAFBodyLimit_WAF_BODY_LIMIT_PASS}, waf.NewCache())
	attack := `{"message":"1' OR '1'='1 ` + strings.Repeat("a", 200) + `"}`
	rec, info = serve(pass, post(), attack)
	if rec.Code != http.StatusOK || info.WAFOutcome != waf.OutcomeUninspected {
		t.Errorf("pass: %d %s %s", rec.Code, rec.Body, info.WAFOutcome)
	}
	// The URI and headers of a body over the limit are still inspected.
	r := post()
	r.URL.RawQuery = "id=1%27%20OR%20%271%27%3D%271"
	if rec, _ = serve(pass, r, attack); rec.Code != http.StatusForbidden {
		t.Errorf("pass, attack in the query: %d", rec.Code)
	}
}

// TestResponseInspection: with inspect_responses, a unary answer that
// leaks an SQL error is withheld (403); a clean one is written whole; a
// stream's is never held.
func TestResponseInspection(t *testing.T) {
	f := compile(t, &configv1.WAF{InspectResponses: proto.Bool(true)}, waf.NewCache())
	leak := `{"error":"You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near ''' at line 1"}`
	answer := func(body string, stream bool) (*httptest.ResponseRecorder, *callinfo.Info) {
		rec := httptest.NewRecorder()
		info := callinfo.New(callinfo.DoorREST)
		w, done, ok := f.Serve(rec, httptest.NewRequest(http.MethodGet, "/x", nil), info, waf.Request{Stream: stream})
		if !ok {
			t.Fatalf("request refused: %d %s", rec.Code, rec.Body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
		done()
		return rec, info
	}
	rec, info := answer(leak, false)
	if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "SQL") {
		t.Errorf("leak: %d %s", rec.Code, rec.Body)
	}
	if info.WAFOutcome != waf.OutcomeBlocked || !slices.ContainsFunc(info.WAFRules, func(id int) bool { return id/1000 == 951 }) {
		t.Errorf("leak record: %s %v", info.WAFOutcome, info.WAFRules)
	}
	if rec, _ = answer(`{"ok":true}`, false); rec.Code != http.StatusOK || rec.Body.String() != `{"ok":true}` {
		t.Errorf("clean: %d %s", rec.Code, rec.Body)
	}
	if rec, _ = answer(leak, true); rec.Code != http.StatusOK || rec.Body.String() != leak {
		t.Errorf("stream: %d %s", rec.Code, rec.Body)
	}
}

func TestDirectiveErrorAtItsLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "extra.conf")
	if err := os.WriteFile(file, []byte("# fine\nSecRuleRemoveById 920350\nSecRule ARGS \"@nosuch x\" \"id:1,phase:2,deny\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := waf.Compile(&configv1.WAF{DirectivesFile: proto.String(file)}, "routes[2].waf", waf.NewCache(), nil)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "routes[2].waf.directives_file" || !strings.Contains(err.Error(), file+":3:") {
		t.Fatalf("error %v, want one at routes[2].waf.directives_file naming %s:3", err, file)
	}
	_, _, err = waf.Compile(&configv1.WAF{DirectivesFile: proto.String(filepath.Join(dir, "missing.conf"))}, "waf", waf.NewCache(), nil)
	if !errors.As(err, &fe) || fe.Path != "waf.directives_file" {
		t.Fatalf("missing file: %v", err)
	}
}
