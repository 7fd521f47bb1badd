package compress_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/edgegate/edgegate/frontdoor/compress"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

func TestNegotiate(t *testing.T) {
	offered := compress.DefaultEncodings
	for _, c := range []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"GZIP", "gzip"},
		{"x-gzip", "gzip"},
		{"br, gzip", "br"},
		{"gzip;q=1, zstd;q=0.999", "gzip"},
		{"gzip;q=0", ""},
		{"*", "zstd"},
		{"*;q=0", ""},
		{"zstd;q=0, br;q=0, *", "gzip"},
		{"gzip;q=bogus", ""},
		{"gzip;q=2", ""},
		{" br ; q=0.5 , gzip ; q=0.4", "br"},
	} {
		if got := compress.Negotiate([]string{c.accept}, offered); got != c.want {
			t.Errorf("Negotiate(%q) = %q, want %q", c.accept, got, c.want)
		}
	}
}

func TestCompressible(t *testing.T) {
	c, _ := compress.New(&configv1.HTTPCompression{})
	for ct, want := range map[string]bool{
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"application/problem+json":        true,
		"text/html":                       true,
		"text/event-stream":               true,
		"image/png":                       false,
		"application/octet-stream":        false,
		"":                                false,
	} {
		if got := c.Compressible(ct); got != want {
			t.Errorf("Compressible(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestNeverTwice: an answer that is encoded already passes as it is.
func TestNeverTwice(t *testing.T) {
	c, _ := compress.New(&configv1.HTTPCompression{MinBytes: new(uint32)})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	w := c.Wrap(rec, req)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", "br")
	_, _ = w.Write([]byte("already"))
	_ = w.Close()
	if rec.Header().Get("Content-Encoding") != "br" || rec.Body.String() != "already" {
		t.Errorf("encoded answer changed: %v %q", rec.Header(), rec.Body.String())
	}
}

func TestDecodeBody(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(bytes.Repeat([]byte("a"), 2000))
	_ = zw.Close()
	for limit, wantErr := range map[int64]error{2000: nil, 1999: compress.ErrTooLarge} {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(buf.Bytes()))
		r.Header.Set("Content-Encoding", "gzip")
		err := compress.DecodeBody(r, limit)
		if !errors.Is(err, wantErr) {
			t.Fatalf("limit %d: %v, want %v", limit, err, wantErr)
		}
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			if len(b) != 2000 || r.Header.Get("Content-Encoding") != "" {
				t.Errorf("decoded %d bytes, Content-Encoding %q", len(b), r.Header.Get("Content-Encoding"))
			}
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	r.Header.Set("Content-Encoding", "gzip, br")
	if err := compress.DecodeBody(r, 10); !errors.Is(err, compress.ErrUnsupported) {
		t.Errorf("two encodings: %v", err)
	}
}

// FuzzNegotiate: any Accept-Encoding value picks an offered encoding or
// none, without a panic.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "br;q=0.5, *;q=0.1", "zstd;q=, ,;", "*;q=1e9", "gzip;q=0.001;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got := compress.Negotiate([]string{accept}, compress.DefaultEncodings)
		if got != "" && got != "zstd" && got != "br" && got != "gzip" {
			t.Fatalf("Negotiate(%q) = %q", accept, got)
		}
	})
}
