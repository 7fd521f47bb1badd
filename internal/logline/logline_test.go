package logline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// slogLine is the line slog's own handler writes for the record.
func slogLine(t testing.TB, json bool, r slog.Record) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// ourLine is the line Handler writes for the record, by Handle and by
// WriteAttrs, which must agree; fast reports whether Handler encoded it
// itself.
func ourLine(t testing.TB, json bool, r slog.Record) (line string, fast bool) {
	t.Helper()
	var buf bytes.Buffer
	h := New(&buf, json, nil)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	line = buf.String()
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	buf.Reset()
	fast = h.WriteAttrs(r.Time, r.Level, r.Message, attrs)
	if fast && buf.String() != line {
		t.Fatalf("WriteAttrs wrote %q, Handle %q", buf.String(), line)
	}
	if !fast && buf.Len() != 0 {
		t.Fatalf("WriteAttrs reported false but wrote %q", buf.String())
	}
	return line, fast
}

var when = time.Date(2026, 11, 26, 14, 13, 3, 123456789, time.FixedZone("X", 3600))

func TestSameAsSlog(t *testing.T) {
	for _, c := range []struct {
		name  string
		time  time.Time
		level slog.Level
		msg   string
		attrs []slog.Attr
		fast  bool
	}{
		{"access log line", when, slog.LevelInfo, "call", []slog.Attr{
			slog.String("request_id", "0f3a"), slog.String("door", "grpc"), slog.Int("http_status", 200),
			slog.String("method", "/edgegate.testing.v1.EchoService/Unary"), slog.String("code", "OK"),
			slog.Float64("duration_ms", 0.183), slog.Int64("bytes_in", 105), slog.Int64("bytes_out", 0),
			slog.String("peer", "127.0.0.1:53124"), slog.String("user_agent", "grpc-go/1.85.0"),
		}, true},
		{"strings to escape and quote", when, slog.LevelWarn, "a \"quoted\"\nmessage", []slog.Attr{
			slog.String("empty", ""), slog.String("space", "a b"), slog.String("equals", "a=b"),
			slog.String("html", "<a href='x'>&amp;</a>"), slog.String("backslash", `C:\path`),
			slog.String("controls", "\x00\x01\t\r\n\x1f\x7f"), slog.String("unicode", "grüße ✓ 日本"),
			slog.String("bad utf-8", "a\xffb\xc3"), slog.String("line seps", "a\u2028b\u2029c"),
			slog.String("nbsp", "a\u00a0b"), slog.String("format char", "a\u200bb"),
			slog.String("key with space", "v"), slog.String("", "no key"),
		}, true},
		{"numbers", time.Time{}, slog.LevelError, "n", []slog.Attr{
			slog.Int64("min", math.MinInt64), slog.Uint64("max", math.MaxUint64), slog.Bool("t", true), slog.Bool("f", false),
			slog.Float64("zero", 0), slog.Float64("neg", -1.5), slog.Float64("tiny", 1e-7), slog.Float64("small", 1.5e-300),
			slog.Float64("edge", 1e-6), slog.Float64("big", 1e21), slog.Float64("below big", 999999999999999999999.0),
			slog.Float64("third", 1.0/3), slog.Float64("negzero", math.Copysign(0, -1)), slog.Float64("large e", 1.7976931348623157e308),
		}, true},
		{"level beyond the names", when, slog.LevelInfo + 2, "x", nil, true},
		// Kinds Handler leaves to slog's handler: the same line still.
		{"time value", when, slog.LevelInfo, "x", []slog.Attr{slog.Time("at", when)}, false},
		{"duration", when, slog.LevelInfo, "x", []slog.Attr{slog.Duration("d", time.Second)}, false},
		{"group", when, slog.LevelInfo, "x", []slog.Attr{slog.Group("g", slog.String("a", "b"))}, false},
		{"any", when, slog.LevelInfo, "x", []slog.Attr{slog.Any("err", errors.New("boom"))}, false},
		{"NaN", when, slog.LevelInfo, "x", []slog.Attr{slog.Float64("nan", math.NaN())}, false},
		{"year past 9999", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "x", nil, false},
	} {
		for _, json := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/json=%v", c.name, json), func(t *testing.T) {
				r := slog.NewRecord(c.time, c.level, c.msg, 0)
				r.AddAttrs(c.attrs...)
				want := slogLine(t, json, r)
				got, fast := ourLine(t, json, r)
				if got != want {
					t.Errorf("line\n%s\nslog's\n%s", got, want)
				}
				if fast != c.fast {
					t.Errorf("encoded itself: %v, want %v", fast, c.fast)
				}
			})
		}
	}
}

// FuzzSameAsSlog holds Handler to slog's handlers on any strings and
// numbers.
func FuzzSameAsSlog(f *testing.F) {
	f.Add("call", "k", "v", int64(1), uint64(2), 0.5, true, int64(0))
	f.Add("", "", "a\xff\u2028\"\\=\n ", int64(-1), uint64(0), 1e-9, false, int64(1<<62))
	f.Fuzz(func(t *testing.T, msg, key, s string, i int64, u uint64, fl float64, json bool, nanos int64) {
		r := slog.NewRecord(time.Unix(0, nanos).UTC(), slog.LevelInfo, msg, 0)
		r.AddAttrs(slog.String(key, s), slog.Int64("i", i), slog.Uint64("u", u), slog.Float64("f", fl), slog.Bool(s, json))
		want := slogLine(t, json, r)
		if got, _ := ourLine(t, json, r); got != want {
			t.Errorf("line\n%q\nslog's\n%q", got, want)
		}
	})
}

func TestEnabled(t *testing.T) {
	h := New(&bytes.Buffer{}, true, slog.LevelWarn)
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("Enabled does not follow the level")
	}
}

// WithAttrs and WithGroup give slog's handler, writing to the same writer.
func TestWithAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(&buf, false, nil)).With("component", "x").WithGroup("g")
	log.Info("m", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=m component=x g.k=v\n") {
		t.Errorf("line %q", got)
	}
}

// Lines written at once from many goroutines, by both paths, are whole.
func TestConcurrentLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	h := New(&buf, true, nil)
	log := slog.New(h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if i%2 == 0 {
					h.WriteAttrs(when, slog.LevelInfo, "call", []slog.Attr{slog.Int("g", g), slog.Int("i", i)})
				} else {
					log.Info("slow", "d", time.Duration(i))
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"time":`) || !strings.HasSuffix(l, "}") || strings.Count(l, `{"time"`) != 1 {
			t.Fatalf("torn line %q", l)
		}
	}
}

// BenchmarkLine is an access log line through slog's JSON handler and
// through Handler.
func BenchmarkLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("request_id", "0f3a9c2e7b1d4a56"), slog.String("door", "grpc"),
		slog.String("method", "/edgegate.testing.v1.EchoService/Unary"), slog.String("route", "echo"),
		slog.String("upstream", "echo"), slog.String("endpoint", "127.0.0.1:50051"), slog.String("code", "OK"),
		slog.Float64("duration_ms", 0.183), slog.Int64("bytes_in", 105), slog.Int64("bytes_out", 105),
		slog.String("principal", "alice"), slog.String("peer", "127.0.0.1:53124"),
		slog.String("client_ip", "127.0.0.1"), slog.String("user_agent", "grpc-go/1.85.0"),
	}
	var discard bytes.Buffer
	b.Run("slog", func(b *testing.B) {
		log := slog.New(slog.NewJSONHandler(&discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			discard.Reset()
			log.LogAttrs(context.Background(), slog.LevelInfo, "call", attrs...)
		}
	})
	b.Run("logline", func(b *testing.B) {
		h := New(&discard, true, nil)
		b.ReportAllocs()
		for b.Loop() {
			discard.Reset()
			h.WriteAttrs(time.Now(), slog.LevelInfo, "call", attrs)
		}
	})
}
