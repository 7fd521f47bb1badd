package compress_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/frontdoor/compress"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// answer16K is a 16 KiB JSON answer: a list of products.
var answer16K = func() []byte {
	var b strings.Builder
	b.WriteString(`{"products":[`)
	for i := 0; b.Len() < 16<<10-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"p-%05d","name":"Product number %d","priceCents":%d,"tags":["t%d","sale"]}`, i, i, 100+i*7, i%13)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}()

// BenchmarkCompress16KiBJSON is the CPU per answer of each encoding at
// its default level on a 16 KiB JSON answer, through the Writer.
func BenchmarkCompress16KiBJSON(b *testing.B) {
	c, err := compress.New(&configv1.HTTPCompression{})
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range compress.DefaultEncodings {
		b.Run(enc, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Accept-Encoding", enc)
			b.SetBytes(int64(len(answer16K)))
			b.ReportAllocs()
			var out int
			for b.Loop() {
				rec := &discard{h: http.Header{}}
				w := c.Wrap(rec, req)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(answer16K)
				_ = w.Close()
				out = rec.n
			}
			b.ReportMetric(float64(out)/float64(len(answer16K)), "ratio")
		})
	}
}

type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header { return d.h }
func (d *discard) WriteHeader(int)     {}
func (d *discard) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}
