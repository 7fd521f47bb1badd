// Package logout batches log lines on their way to the process's output.
//
// Each access log line was one write system call: with the JSON encoding
// it was the gateway's own largest cost in a chained native call (9.6 % of
// the CPU in the bench profile, about 40 % of it the write). An Out keeps
// the lines of its buffered side in memory and writes them together, when
// the buffer is full or an interval after the first of them, as Envoy's
// and nginx's buffered access logs do. Its direct side (the gateway's own
// log: starts, reloads, errors) writes at once, after what is buffered, so
// the output keeps the order in which lines were logged and no line is
// split.
package logout

import (
	"io"
	"sync"
	"time"
)

// bufferSize is how much an Out holds before it writes.
const bufferSize = 64 << 10

// Out is an output with a buffered side (Write) and a direct side
// (Direct). It is safe for concurrent use.
type Out struct {
	w        io.Writer
	interval time.Duration

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // flushes the buffer interval after its first line
	err   error       // the last write's error, reported by Flush
}

// New returns an Out writing to w. A line written to the buffered side
// reaches w within interval; interval 0 writes every line at once.
func New(w io.Writer, interval time.Duration) *Out {
	o := &Out{w: w, interval: interval}
	if interval > 0 {
		o.buf = make([]byte, 0, bufferSize)
		o.timer = time.AfterFunc(time.Hour, func() { _ = o.Flush() })
		o.timer.Stop()
	}
	return o
}

// Write buffers p, one or more whole lines (a log handler writes each
// record with one Write). It never fails: a failed write to the output is
// reported by the next Flush.
func (o *Out) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.interval <= 0 {
		return o.writeLocked(p)
	}
	if len(o.buf)+len(p) > cap(o.buf) {
		o.flushLocked()
	}
	if len(p) > cap(o.buf) {
		return o.writeLocked(p)
	}
	if len(o.buf) == 0 {
		o.timer.Reset(o.interval)
	}
	o.buf = append(o.buf, p...)
	return len(p), nil
}

// Direct returns the direct side: each Write goes out at once, after the
// lines buffered before it.
func (o *Out) Direct() io.Writer { return direct{o} }

type direct struct{ o *Out }

func (d direct) Write(p []byte) (int, error) {
	d.o.mu.Lock()
	defer d.o.mu.Unlock()
	d.o.flushLocked()
	return d.o.writeLocked(p)
}

// Flush writes what is buffered. It returns the error of the last write
// that failed since the previous Flush.
func (o *Out) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushLocked()
	err := o.err
	o.err = nil
	return err
}

func (o *Out) flushLocked() {
	if len(o.buf) == 0 {
		return
	}
	o.timer.Stop()
	_, _ = o.writeLocked(o.buf)
	o.buf = o.buf[:0]
}

func (o *Out) writeLocked(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}
