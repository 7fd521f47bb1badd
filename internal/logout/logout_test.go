package logout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records each write to the output.
type sink struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func TestBufferedLinesGoOutTogether(t *testing.T) {
	s := &sink{}
	o := New(s, time.Hour)
	for i := range 3 {
		fmt.Fprintf(o, "line %d\n", i)
	}
	if w := s.get(); len(w) != 0 {
		t.Fatalf("written before a flush: %q", w)
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if w := s.get(); len(w) != 1 || w[0] != "line 0\nline 1\nline 2\n" {
		t.Fatalf("writes %q, want the three lines in one", w)
	}
}

func TestIntervalFlushes(t *testing.T) {
	s := &sink{}
	o := New(s, 20*time.Millisecond)
	fmt.Fprintln(o, "a")
	deadline := time.Now().Add(5 * time.Second)
	for len(s.get()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written within 5s of a 20ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintln(o, "b")
	for len(s.get()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a line after the first flush was not written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w := s.get(); strings.Join(w, "") != "a\nb\n" {
		t.Fatalf("writes %q", w)
	}
}

// The direct side writes at once, after the lines buffered before it.
func TestDirectKeepsOrder(t *testing.T) {
	s := &sink{}
	o := New(s, time.Hour)
	fmt.Fprintln(o, "access 1")
	fmt.Fprintln(o.Direct(), "error")
	fmt.Fprintln(o, "access 2")
	if w := s.get(); len(w) != 2 || w[0] != "access 1\n" || w[1] != "error\n" {
		t.Fatalf("writes %q", w)
	}
	_ = o.Flush()
	if w := s.get(); len(w) != 3 || w[2] != "access 2\n" {
		t.Fatalf("writes %q", w)
	}
}

// A full buffer is written before the line that does not fit; a line
// larger than the buffer goes out on its own.
func TestFullBuffer(t *testing.T) {
	s := &sink{}
	o := New(s, time.Hour)
	line := strings.Repeat("x", 1000) + "\n"
	n := bufferSize / len(line)
	for range n + 1 {
		_, _ = o.Write([]byte(line))
	}
	if w := s.get(); len(w) != 1 || len(w[0]) != n*len(line) {
		t.Fatalf("%d writes, the first %d bytes; want one of %d", len(w), len(w[0]), n*len(line))
	}
	big := strings.Repeat("y", bufferSize+1)
	_, _ = o.Write([]byte(big))
	if w := s.get(); len(w) != 3 || w[1] != line || w[2] != big {
		t.Fatalf("%d writes", len(w))
	}
}

func TestZeroIntervalWritesAtOnce(t *testing.T) {
	s := &sink{}
	o := New(s, 0)
	fmt.Fprintln(o, "a")
	fmt.Fprintln(o, "b")
	if w := s.get(); len(w) != 2 {
		t.Fatalf("writes %q", w)
	}
}

func TestFlushReportsWriteError(t *testing.T) {
	s := &sink{fail: errors.New("disk full")}
	o := New(s, time.Hour)
	fmt.Fprintln(o, "a")
	if err := o.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v", err)
	}
	if err := o.Flush(); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
}

// Lines written concurrently from both sides all arrive whole.
func TestConcurrentLinesWhole(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	o := New(w, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				dst := o.Direct()
				if i%2 == 0 {
					_, _ = fmt.Fprintf(o, "g%d line %d end\n", g, i)
				} else {
					_, _ = fmt.Fprintf(dst, "g%d line %d end\n", g, i)
				}
			}
		}()
	}
	wg.Wait()
	_ = o.Flush()
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "g") || !strings.HasSuffix(l, " end") {
			t.Fatalf("broken line %q", l)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkWrite compares an access log line written at once with one
// buffered, to a file (each direct write a system call).
func BenchmarkWrite(b *testing.B) {
	line := []byte(`{"time":"2026-11-26T12:00:00Z","level":"INFO","msg":"access","door":"grpc","method":"/pkg.Svc/M","code":"OK","duration_ms":0.42}` + "\n")
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"direct", 0}, {"buffered", time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			f, err := openFile(b)
			if err != nil {
				b.Fatal(err)
			}
			o := New(f, c.interval)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = o.Write(line)
			}
			_ = o.Flush()
		})
	}
}

func openFile(b *testing.B) (*os.File, error) {
	f, err := os.CreateTemp(b.TempDir(), "log")
	if err == nil {
		b.Cleanup(func() { _ = f.Close() })
	}
	return f, err
}
