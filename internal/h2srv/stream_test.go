package h2srv

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Server.Timeout bounds a stream's context from its header list: at the
// deadline it ends with DeadlineExceeded; a stream without one is not
// bounded, and a client's reset still ends it with Canceled.
func TestStreamTimeout(t *testing.T) {
	type ended struct {
		path     string
		deadline bool
		err      error
	}
	done := make(chan ended, 2)
	ts := startServer(t, &Server{
		Timeout: func(header []hpack.HeaderField) (time.Duration, bool) {
			for _, f := range header {
				if f.Name == "x-timeout" {
					d, err := time.ParseDuration(f.Value)
					return d, err == nil
				}
			}
			return 0, false
		},
		Handler: HandlerFunc(func(st *Stream) {
			ctx := st.Context()
			_, deadline := ctx.Deadline()
			<-ctx.Done()
			done <- ended{st.Path(), deadline, ctx.Err()}
		}),
	}, false)
	h := dial(t, ts)

	if _, err := h.Open(append(get("/bounded"), hpack.HeaderField{Name: "x-timeout", Value: "50ms"}), true); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-done:
		if e.path != "/bounded" || !e.deadline || !errors.Is(e.err, context.DeadlineExceeded) {
			t.Errorf("bounded stream: %+v, want /bounded with a deadline, ended by DeadlineExceeded", e)
		}
	case <-time.After(patience):
		t.Fatal("the bounded stream's context never ended")
	}

	id, err := h.Open(get("/unbounded"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-done:
		if e.path != "/unbounded" || e.deadline || !errors.Is(e.err, context.Canceled) {
			t.Errorf("unbounded stream: %+v, want /unbounded without a deadline, ended by Canceled", e)
		}
	case <-time.After(patience):
		t.Fatal("the reset stream's context never ended")
	}
}
