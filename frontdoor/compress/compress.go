// Package compress is the HTTP compression of the gateway's answers
// (gzip, zstd and brotli, negotiated by Accept-Encoding with its q-values)
// and the decoding of compressed request bodies with a bound on their
// decoded size. It uses klauspost/compress (gzip, zstd) and
// andybalholm/brotli.
//
// An answer is compressed when the client accepts one of the configured
// encodings, its media type is in the list, it is at least the minimum
// size (by Content-Length, or by what its first writes add up to), and it
// is not encoded already (an upstream's Content-Encoding passes as is).
// Every answer of a compressible type says Vary: Accept-Encoding. A
// flushed answer (NDJSON, server-sent events) is compressed and flushed
// per flush, so each message reaches the client when it is written.
package compress

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// The encodings, by their Accept-Encoding tokens.
const (
	Gzip   = "gzip"
	Zstd   = "zstd"
	Brotli = "br"
)

// Defaults of the configuration's http.compression.
const (
	DefaultMinBytes    = 1024
	DefaultGzipLevel   = 5
	DefaultZstdLevel   = int(zstd.SpeedDefault)
	DefaultBrotliLevel = 4
)

// DefaultEncodings are the encodings offered, in order of preference.
var DefaultEncodings = []string{Zstd, Brotli, Gzip}

// DefaultContentTypes are the media types compressed by default.
var DefaultContentTypes = []string{
	"application/json", "*+json", "application/x-ndjson", "application/javascript",
	"application/xml", "image/svg+xml", "text/*",
}

// Compressor compresses answers. It is safe for concurrent use; a nil
// *Compressor compresses nothing.
type Compressor struct {
	encodings []string
	minBytes  int
	types     []string
	pools     map[string]*sync.Pool
}

// New returns the compressor of cfg (a loaded configuration's
// http.compression; nil: none, and New returns nil).
func New(cfg *configv1.HTTPCompression) (*Compressor, error) {
	if cfg == nil {
		return nil, nil
	}
	c := &Compressor{
		encodings: cfg.GetEncodings(),
		minBytes:  DefaultMinBytes,
		types:     cfg.GetContentTypes(),
		pools:     map[string]*sync.Pool{},
	}
	if len(c.encodings) == 0 {
		c.encodings = DefaultEncodings
	}
	if len(c.types) == 0 {
		c.types = DefaultContentTypes
	}
	if cfg.MinBytes != nil {
		c.minBytes = int(cfg.GetMinBytes())
	}
	gz, zs, br := DefaultGzipLevel, DefaultZstdLevel, DefaultBrotliLevel
	if cfg.GzipLevel != nil {
		gz = int(cfg.GetGzipLevel())
	}
	if cfg.ZstdLevel != nil {
		zs = int(cfg.GetZstdLevel())
	}
	if cfg.BrotliLevel != nil {
		br = int(cfg.GetBrotliLevel())
	}
	for _, e := range c.encodings {
		var err error
		c.pools[e], err = newPool(e, gz, zs, br)
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// encoder is one encoding's writer, reset onto each answer.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

type gzipEncoder struct{ *gzip.Writer }

func (g gzipEncoder) Reset(w io.Writer) { g.Writer.Reset(w) }

type brotliEncoder struct{ *brotli.Writer }

func (b brotliEncoder) Reset(w io.Writer) { b.Writer.Reset(w) }

func newPool(enc string, gz, zs, br int) (*sync.Pool, error) {
	var mk func() encoder
	switch enc {
	case Gzip:
		if _, err := gzip.NewWriterLevel(io.Discard, gz); err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", gz, err)
		}
		mk = func() encoder {
			w, _ := gzip.NewWriterLevel(io.Discard, gz)
			return gzipEncoder{w}
		}
	case Zstd:
		opts := []zstd.EOption{
			zstd.WithEncoderLevel(zstd.EncoderLevel(zs)),
			zstd.WithEncoderConcurrency(1),
			// A window of 1 MiB: an HTTP answer seldom gains from more,
			// and each pooled encoder holds its window.
			zstd.WithWindowSize(1 << 20),
		}
		if _, err := zstd.NewWriter(nil, opts...); err != nil {
			return nil, fmt.Errorf("zstd level %d: %w", zs, err)
		}
		mk = func() encoder {
			w, _ := zstd.NewWriter(nil, opts...)
			return zstdEncoder{w}
		}
	case Brotli:
		mk = func() encoder { return brotliEncoder{brotli.NewWriterLevel(io.Discard, br)} }
	default:
		return nil, fmt.Errorf("unknown encoding %q", enc)
	}
	return &sync.Pool{New: func() any { return mk() }}, nil
}

// Negotiate returns the encoding of c to answer a request that sent
// accept (its Accept-Encoding values), or "" for none: the one with the
// highest q-value, c's order breaking ties; "*" stands for the encodings
// the header does not name, and q=0 refuses one.
func (c *Compressor) Negotiate(accept []string) string {
	return Negotiate(accept, c.encodings)
}

// Negotiate picks from offered (in order of preference) by accept, the
// request's Accept-Encoding values, as Compressor.Negotiate does.
func Negotiate(accept, offered []string) string {
	if len(accept) == 0 {
		return ""
	}
	q := map[string]float64{}
	star := -1.0
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			qv := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					qv = f
				}
			}
			if name == "*" {
				star = qv
				continue
			}
			if name == "x-gzip" {
				name = Gzip
			}
			q[name] = qv
		}
	}
	best, bestQ := "", 0.0
	for _, e := range offered {
		qv, named := q[e]
		if !named {
			qv = max(star, 0)
		}
		if qv > bestQ {
			best, bestQ = e, qv
		}
	}
	return best
}

// Compressible reports whether c compresses answers of the media type ct
// (a Content-Type value).
func (c *Compressor) Compressible(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	for _, t := range c.types {
		switch {
		case strings.HasPrefix(t, "*"):
			if strings.HasSuffix(mt, t[1:]) {
				return true
			}
		case strings.HasSuffix(t, "/*"):
			if strings.HasPrefix(mt, t[:len(t)-1]) {
				return true
			}
		case mt == t:
			return true
		}
	}
	return false
}

// Wrap returns the writer of r's answer on w: it compresses what is
// written when the answer qualifies. The caller must call Close on it
// when the handler has returned. A nil c returns a writer that passes
// everything through.
func (c *Compressor) Wrap(w http.ResponseWriter, r *http.Request) *Writer {
	cw := &Writer{ResponseWriter: w, c: c}
	if c == nil || r.Method == http.MethodHead {
		cw.state = passing
		return cw
	}
	cw.enc = c.Negotiate(r.Header.Values("Accept-Encoding"))
	return cw
}

type state uint8

const (
	undecided   state = iota // nothing written yet
	buffering                // the answer qualifies but is shorter than the minimum so far
	compressing              // the answer is being compressed
	passing                  // the answer goes as it is
)

// Writer is an answer's writer that compresses when the answer qualifies.
type Writer struct {
	http.ResponseWriter
	c     *Compressor
	enc   string // negotiated; "" for none
	state state
	code  int
	buf   []byte
	e     encoder
	err   error
}

// WriteHeader holds the status until the first write says whether the
// answer is compressed; informational answers (1xx) pass at once.
func (w *Writer) WriteHeader(code int) {
	if code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.code != 0 {
		return
	}
	w.code = code
	if w.state == undecided {
		w.decide()
	}
}

// decide looks at the answer's status and headers once they are known.
func (w *Writer) decide() {
	h := w.Header()
	if w.code == 0 {
		w.code = http.StatusOK
	}
	ct := h.Get("Content-Type")
	if w.c.Compressible(ct) && h.Get("Content-Encoding") == "" {
		addVary(h)
	}
	switch {
	case w.enc == "", w.code == http.StatusNoContent, w.code == http.StatusNotModified,
		w.code == http.StatusPartialContent, w.code == http.StatusSwitchingProtocols,
		h.Get("Content-Encoding") != "", h.Get("Content-Range") != "",
		!w.c.Compressible(ct), strings.Contains(h.Get("Cache-Control"), "no-transform"):
		w.pass()
	default:
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			if n < int64(w.c.minBytes) {
				w.pass()
				return
			}
			w.start()
			return
		}
		if w.c.minBytes <= 0 {
			w.start()
			return
		}
		w.state = buffering
	}
}

func (w *Writer) pass() {
	w.state = passing
	w.ResponseWriter.WriteHeader(w.code)
}

func (w *Writer) start() {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", w.enc)
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		// The compressed bytes are another representation: the ETag of
		// the identity one is at most a weak validator of them.
		h.Set("ETag", "W/"+et)
	}
	w.ResponseWriter.WriteHeader(w.code)
	w.e = w.c.pools[w.enc].Get().(encoder)
	w.e.Reset(w.ResponseWriter)
	w.state = compressing
}

// Write compresses b or passes it on, as the answer qualifies.
func (w *Writer) Write(b []byte) (int, error) {
	if w.state == undecided {
		w.decide()
	}
	switch w.state {
	case buffering:
		w.buf = append(w.buf, b...)
		if len(w.buf) < w.c.minBytes {
			return len(b), nil
		}
		w.start()
		buf := w.buf
		w.buf = nil
		if _, err := w.e.Write(buf); err != nil {
			return 0, err
		}
		return len(b), nil
	case compressing:
		return w.e.Write(b)
	default:
		return w.ResponseWriter.Write(b)
	}
}

// Flush sends what was written at once: a stream's answer is compressed
// from its first flush, and each flush ends a compressed block.
func (w *Writer) Flush() {
	if w.state == undecided {
		w.decide()
	}
	if w.state == buffering {
		w.start()
		buf := w.buf
		w.buf = nil
		if _, err := w.e.Write(buf); err != nil {
			w.err = err
		}
	}
	if w.state == compressing {
		if err := w.e.Flush(); err != nil {
			w.err = err
		}
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Close ends the answer: the compressed stream's end, or the short answer
// that was held back. It returns the first error of the compressed
// stream.
func (w *Writer) Close() error {
	switch w.state {
	case undecided:
		if w.code == 0 {
			return nil // nothing written: the handler wrote no answer (hijacked, or an empty 200)
		}
	case buffering:
		w.Header().Set("Content-Length", strconv.Itoa(len(w.buf)))
		w.ResponseWriter.WriteHeader(w.code)
		_, err := w.ResponseWriter.Write(w.buf)
		w.buf = nil
		w.state = passing
		return err
	case compressing:
		err := w.e.Close()
		w.e.Reset(io.Discard)
		w.c.pools[w.enc].Put(w.e)
		w.e = nil
		w.state = passing
		return errors.Join(w.err, err)
	}
	return w.err
}

// Unwrap is the writer below, for http.ResponseController (Hijack of a
// WebSocket upgrade, deadlines).
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Encoded reports whether the answer is compressed.
func (w *Writer) Encoded() bool { return w.state == compressing }

func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			if p := strings.TrimSpace(part); strings.EqualFold(p, "Accept-Encoding") || p == "*" {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}
