package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/frontdoor/waf"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// BenchmarkRESTWAF is the cost of the web application firewall: the same
// REST call (a 100-byte message, over loopback HTTP/1.1 to the gateway)
// without the WAF and with it at paranoia level 1, blocking; and the WAF
// alone on the same request (Firewall.Serve in front of a handler that
// answers at once), the figure to read next to Coraza's own benchmarks.
// All three run in parallel (GOMAXPROCS goroutines), so ns/op is wall
// time per call over the machine's cores.
func BenchmarkRESTWAF(b *testing.B) {
	body := `{"message":"` + strings.Repeat("x", 100) + `"}`
	call := func(b *testing.B, url string, client *http.Client) {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, c := range []struct{ name, listener string }{
		{"without-waf", ""},
		{"waf-pl1", ", waf: {paranoia_level: 1}"},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := benchGatewayWith(b, c.listener)
			url := "http://" + g.Addrs()[0].String() + "/v1/echo:unary"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			call(b, url, client)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call(b, url, client)
				}
			})
		})
	}
	b.Run("waf-alone-pl1", func(b *testing.B) {
		f, release, err := waf.Compile(&configv1.WAF{}, "waf", waf.NewCache(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer release()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest(http.MethodPost, "/v1/echo:unary", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "Go-http-client/1.1")
				rec := httptest.NewRecorder()
				w, done, ok := f.Serve(rec, req, callinfo.New(callinfo.DoorREST), waf.Request{Body: []byte(body)})
				if !ok {
					b.Errorf("refused: %d", rec.Code)
					return
				}
				w.WriteHeader(http.StatusOK)
				done()
			}
		})
	})
}
