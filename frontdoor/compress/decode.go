package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ErrTooLarge is the error of a body whose decoded size is over the bound
// (a decompression bomb, or a body too large).
var ErrTooLarge = errors.New("decoded request body too large")

// ErrUnsupported is the error of a Content-Encoding the gateway does not
// decode.
var ErrUnsupported = errors.New("unsupported Content-Encoding")

// IsEncoded reports whether r's body is encoded (a Content-Encoding other
// than identity).
func IsEncoded(r *http.Request) bool {
	for _, v := range r.Header.Values("Content-Encoding") {
		if s := strings.TrimSpace(v); s != "" && !strings.EqualFold(s, "identity") {
			return true
		}
	}
	return false
}

// DecodeBody replaces the encoded body of r (Content-Encoding gzip, zstd
// or br) with its decoded bytes, read whole, and removes the header: at
// most limit bytes of it, encoded or decoded, else ErrTooLarge, and
// nothing of it is kept. A body that is not encoded is left as it is. An
// encoding it does not know is ErrUnsupported; a corrupt body is another
// error.
func DecodeBody(r *http.Request, limit int64) error {
	if !IsEncoded(r) || r.Body == nil || r.Body == http.NoBody {
		r.Header.Del("Content-Encoding")
		return nil
	}
	values := r.Header.Values("Content-Encoding")
	if len(values) != 1 || strings.Contains(values[0], ",") {
		return fmt.Errorf("%w: %q (one encoding only)", ErrUnsupported, strings.Join(values, ", "))
	}
	if r.ContentLength > limit {
		return ErrTooLarge
	}
	raw := &capped{r: r.Body, left: limit}
	defer func() { _ = r.Body.Close() }()
	var dec io.Reader
	enc := strings.ToLower(strings.TrimSpace(values[0]))
	switch enc {
	case Gzip, "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return wrapCorrupt(enc, err)
		}
		defer func() { _ = zr.Close() }()
		dec = zr
	case Zstd:
		zr, err := zstd.NewReader(raw,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(max(limit, 1<<10))),
			zstd.WithDecoderMaxWindow(uint64(max(min(limit, 1<<27), zstd.MinWindowSize))))
		if err != nil {
			return wrapCorrupt(enc, err)
		}
		defer zr.Close()
		dec = zr
	case Brotli:
		dec = brotli.NewReader(raw)
	default:
		return fmt.Errorf("%w: %q", ErrUnsupported, values[0])
	}
	body, err := io.ReadAll(io.LimitReader(dec, limit+1))
	switch {
	case errors.Is(err, ErrTooLarge) || errors.Is(err, zstd.ErrDecoderSizeExceeded) ||
		errors.Is(err, zstd.ErrWindowSizeExceeded) || int64(len(body)) > limit:
		return ErrTooLarge
	case err != nil:
		return wrapCorrupt(enc, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Encoding")
	r.Header.Del("Content-Length")
	return nil
}

func wrapCorrupt(enc string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return ErrTooLarge
	}
	return fmt.Errorf("the %s body cannot be decoded: %w", enc, err)
}

// capped reads at most left bytes of r, and ErrTooLarge after.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}
