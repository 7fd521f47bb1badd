package router

import (
	"sync"
)

// workers are long-lived goroutines that run in-process calls. A call
// passes the whole interceptor chain and the proxy, deep enough that a new
// goroutine's stack grows (and is copied) several times on every call; the
// HTTP doors' requests each come on a new goroutine, so the in-process
// calls are handed to a worker whose stack stays grown (12 % of a gRPC-Web
// call's CPU was stack copying; grpc.NumStreamWorkers does the same for
// native calls). When every worker is busy, the call runs on the caller's
// goroutine.
type workers struct {
	work chan *task    // unbuffered: a send succeeds only to a free worker
	stop chan struct{} // closed by close
	once sync.Once
}

// task is one call handed to a worker.
type task struct {
	run   func() error
	err   error
	panic any
	done  chan struct{} // buffered: the worker never waits
}

var tasks = sync.Pool{New: func() any { return &task{done: make(chan struct{}, 1)} }}

func newWorkers(n int) *workers {
	w := &workers{work: make(chan *task), stop: make(chan struct{})}
	for range n {
		go w.serve()
	}
	return w
}

func (w *workers) serve() {
	for {
		var t *task
		select {
		case t = <-w.work:
		case <-w.stop:
			return
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.panic = r
				}
				t.done <- struct{}{}
			}()
			t.err = t.run()
		}()
	}
}

// do runs f on a free worker, or on this goroutine when none is free, and
// returns its error; a panic in f is raised again here.
func (w *workers) do(f func() error) error {
	if w == nil {
		return f()
	}
	t := tasks.Get().(*task)
	t.run = f
	select {
	case w.work <- t:
		<-t.done
	default:
		t.err = f()
	}
	err, p := t.err, t.panic
	*t = task{done: t.done}
	tasks.Put(t)
	if p != nil {
		panic(p)
	}
	return err
}

// close stops the workers, each after the call it runs; later calls run
// on their callers' goroutines.
func (w *workers) close() {
	if w != nil {
		w.once.Do(func() { close(w.stop) })
	}
}
