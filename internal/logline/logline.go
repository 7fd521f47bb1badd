// Package logline writes log lines in log/slog's JSON and text forms, byte
// for byte, for the access log: one line per call, so its encoding is on
// every call's path.
//
// slog's own handlers capture the caller's program counter on every line
// (runtime.Callers, even with AddSource off), keep a general handler state
// (groups, ReplaceAttr) and encode each float64 through encoding/json.
// Together that was ~7 % of a chained native gRPC call's CPU in the bench
// profile (go run ./bench/harness -profile DIR). Handler writes the same
// bytes for the attribute kinds the access log uses (strings, integers,
// finite floats, booleans) and hands anything else to slog's handler.
package logline

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Handler is a slog.Handler writing JSON (slog.JSONHandler's form) or text
// (slog.TextHandler's form) lines at or above a level, without slog's
// HandlerOptions.AddSource and ReplaceAttr.
type Handler struct {
	json  bool
	level slog.Leveler
	w     *lockedWriter
	slow  slog.Handler // slog's handler on the same writer: what Handler does not encode itself
}

// New returns a handler writing to w: JSON lines if json, else text.
func New(w io.Writer, json bool, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	lw := &lockedWriter{w: w}
	opts := &slog.HandlerOptions{Level: level}
	h := &Handler{json: json, level: level, w: lw}
	if json {
		h.slow = slog.NewJSONHandler(lw, opts)
	} else {
		h.slow = slog.NewTextHandler(lw, opts)
	}
	return h
}

// lockedWriter writes one line at a time to w, from either path.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Enabled reports whether level is at or above the handler's level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// Handle writes r's line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	if h.WriteAttrs(r.Time, r.Level, r.Message, attrs) {
		return nil
	}
	return h.slow.Handle(ctx, r)
}

// WithAttrs and WithGroup return slog's handler with the attributes or
// group: Handler itself writes only lines of plain attributes.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.slow.WithAttrs(attrs) }

// WithGroup is slog's handler with the group (see WithAttrs).
func (h *Handler) WithGroup(name string) slog.Handler { return h.slow.WithGroup(name) }

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// WriteAttrs writes a line of t, level, msg and attrs, as Handle does for a
// record of them but without building one, and reports whether it could:
// false, and nothing written, for an attribute of a kind it does not
// encode (groups, times, durations, any, non-finite floats) or a time
// outside slog's range. The caller checks Enabled.
func (h *Handler) WriteAttrs(t time.Time, level slog.Level, msg string, attrs []slog.Attr) bool {
	bp := buffers.Get().(*[]byte)
	b, ok := h.appendLine((*bp)[:0], t, level, msg, attrs)
	if cap(b) <= 16<<10 { // as slog: a rare long line does not stay pooled
		*bp = b[:0]
		defer buffers.Put(bp)
	}
	if !ok {
		return false
	}
	_, _ = h.w.Write(b) // as slog's handlers: a failed write is the writer's business
	return true
}

// appendLine appends the line to b, or reports false.
func (h *Handler) appendLine(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	for _, a := range attrs {
		if !encodable(a.Value) {
			return b, false
		}
	}
	if !t.IsZero() && (t.Year() < 0 || t.Year() >= 10000) {
		return b, false
	}
	if h.json {
		b = append(b, '{')
	}
	sep := false
	if !t.IsZero() {
		b = h.appendKey(b, slog.TimeKey, sep)
		sep = true
		t = t.Round(0)
		if h.json {
			b = append(b, '"')
			b = t.AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		} else {
			b = appendMillis(b, t)
		}
	}
	b = h.appendKey(b, slog.LevelKey, sep)
	b = h.appendString(b, level.String())
	b = h.appendKey(b, slog.MessageKey, true)
	b = h.appendString(b, msg)
	for _, a := range attrs {
		b = h.appendKey(b, a.Key, true)
		b = h.appendValue(b, a.Value)
	}
	if h.json {
		b = append(b, '}')
	}
	return append(b, '\n'), true
}

// encodable reports whether v is of a kind that appendValue writes.
func encodable(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool:
		return true
	case slog.KindFloat64:
		f := v.Float64()
		return !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return false
}

func (h *Handler) appendKey(b []byte, key string, sep bool) []byte {
	if sep {
		if h.json {
			b = append(b, ',')
		} else {
			b = append(b, ' ')
		}
	}
	b = h.appendString(b, key)
	if h.json {
		return append(b, ':')
	}
	return append(b, '=')
}

func (h *Handler) appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return h.appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	default: // slog.KindFloat64, finite (encodable)
		if h.json {
			return appendJSONFloat(b, v.Float64())
		}
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	}
}

// appendMillis appends t as the text handler writes times: RFC 3339 with
// exactly three fractional digits, truncated.
func appendMillis(b []byte, t time.Time) []byte {
	// RFC3339Nano drops trailing zeros: a tenth of a millisecond added
	// keeps four digits, and the fourth is cut.
	const prefix = len("2006-01-02T15:04:05.000")
	n := len(b)
	b = t.Truncate(time.Millisecond).Add(time.Millisecond/10).AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefix], b[n+prefix+1:]...)
}

// appendJSONFloat appends a finite f as encoding/json writes a float64:
// the shortest decimal that reads back as f, in exponent form below 1e-6
// and from 1e21, with a one-digit negative exponent written so ("1e-7").
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString appends s as a JSON string, or for text as it is or quoted
// when it needs quoting.
func (h *Handler) appendString(b []byte, s string) []byte {
	if !h.json {
		if needsQuoting(s) {
			return strconv.AppendQuote(b, s)
		}
		return append(b, s...)
	}
	b = append(b, '"')
	b = appendJSONEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONEscaped appends s escaped for a JSON string, as slog does:
// '"' and '\\' and control characters escaped (\n, \r, \t by name, others
// as \u00XX), HTML characters as they are, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped (JavaScript reads them as line ends).
func appendJSONEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// needsQuoting reports whether the text handler quotes s: empty, or with a
// space, '=', '"', an ASCII control character but DEL, invalid UTF-8, or a
// rune that is a space or not printable.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
