package router

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestWorkersRunOnAWorker(t *testing.T) {
	w := newWorkers(2)
	defer w.close()
	want := errors.New("the call's error")
	if err := w.do(func() error { return want }); err != want {
		t.Fatalf("do = %v, want %v", err, want)
	}
	// A panic in the call is raised again in the caller.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = w.do(func() error { panic("boom") })
	}()
	// The worker survived it.
	if err := w.do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// With every worker busy, a call runs on its caller's goroutine instead
// of waiting.
func TestWorkersBusyRunsInline(t *testing.T) {
	w := newWorkers(1)
	defer w.close()
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = w.do(func() error { close(started); <-release; return nil })
	})
	<-started
	done := make(chan error, 1)
	go func() { done <- w.do(func() error { return errors.New("inline") }) }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "inline" {
			t.Fatalf("do = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call waited for the busy worker")
	}
	close(release)
	wg.Wait()
}

func TestWorkersClose(t *testing.T) {
	w := newWorkers(4)
	w.close()
	w.close() // idempotent
	if err := w.do(func() error { return errors.New("after close") }); err == nil {
		t.Fatal("a call after close did not run")
	}
	var nilWorkers *workers
	if err := nilWorkers.do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	nilWorkers.close()
}
