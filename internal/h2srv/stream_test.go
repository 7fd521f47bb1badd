package h2srv

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/test/attack"
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

// pingAcked sends a PING and waits for its ACK: the server has read it
// (and nothing ended the connection).
func pingAcked(t *testing.T, h *attack.H2, n byte) {
	t.Helper()
	if err := h.Fr.WritePing(false, [8]byte{n}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Frames(patience, func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data[0] == n
	}); err != nil {
		t.Fatalf("PING %d: no ACK: %v", n, err)
	}
}

// MinPingInterval, as grpc-go's server: two PINGs too soon are strikes,
// the third ends the connection with GOAWAY ENHANCE_YOUR_CALM
// "too_many_pings"; HEADERS or DATA the server sends in between clear
// the strikes; without a stream open, any PING within two hours of the
// last is too soon, unless PermitPingWithoutStream.
func TestPingPolicy(t *testing.T) {
	// A handler that writes a frame (HEADERS, then DATA) each time it is
	// told to, and keeps its stream open.
	newServer := func(minPing time.Duration, permit bool) (*testServer, chan struct{}) {
		write := make(chan struct{})
		return startServer(t, &Server{
			MinPingInterval:         minPing,
			PermitPingWithoutStream: permit,
			Handler: HandlerFunc(func(st *Stream) {
				first := true
				for {
					select {
					case <-write:
						if first {
							_ = st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
							first = false
						} else {
							_, _ = st.Write([]byte("x"))
						}
					case <-st.Context().Done():
						return
					}
				}
			}),
		}, false), write
	}
	waitFrame := func(t *testing.T, h *attack.H2, id uint32) {
		t.Helper()
		if _, err := h.Frames(patience, func(f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				return f.StreamID == id
			case *http2.DataFrame:
				return f.StreamID == id
			}
			return false
		}); err != nil {
			t.Fatalf("no frame on stream %d: %v", id, err)
		}
	}
	tooMany := func(t *testing.T, h *attack.H2) {
		t.Helper()
		for n := byte(1); n <= 3; n++ { // the first is free, then two strikes
			pingAcked(t, h, n)
		}
		if err := h.Fr.WritePing(false, [8]byte{4}); err != nil {
			t.Fatal(err)
		}
		if ga := wantGoAway(t, h, http2.ErrCodeEnhanceYourCalm); string(ga.DebugData()) != "too_many_pings" {
			t.Errorf("GOAWAY debug data %q, want too_many_pings", ga.DebugData())
		}
	}
	allowed := func(t *testing.T, h *attack.H2) {
		t.Helper()
		for n := byte(1); n <= 10; n++ {
			pingAcked(t, h, n)
		}
	}

	t.Run("stream_open", func(t *testing.T) {
		ts, _ := newServer(time.Hour, false)
		h := dial(t, ts)
		if _, err := h.Open(post("/"), false); err != nil {
			t.Fatal(err)
		}
		tooMany(t, h)
	})
	t.Run("stream_open_interval_kept", func(t *testing.T) {
		ts, _ := newServer(time.Nanosecond, false)
		h := dial(t, ts)
		if _, err := h.Open(post("/"), false); err != nil {
			t.Fatal(err)
		}
		allowed(t, h)
	})
	t.Run("answers_clear_strikes", func(t *testing.T) {
		ts, write := newServer(time.Hour, false)
		h := dial(t, ts)
		id, err := h.Open(post("/"), false)
		if err != nil {
			t.Fatal(err)
		}
		n := byte(0)
		for range 3 { // each round: three PINGs, then an answer frame
			for range 3 {
				n++
				pingAcked(t, h, n)
			}
			write <- struct{}{}
			waitFrame(t, h, id)
		}
	})
	t.Run("no_stream", func(t *testing.T) {
		ts, _ := newServer(time.Nanosecond, false)
		tooMany(t, dial(t, ts))
	})
	t.Run("no_stream_permitted", func(t *testing.T) {
		ts, _ := newServer(time.Nanosecond, true)
		allowed(t, dial(t, ts))
	})
}

// MaxConnectionAge: a connection that old is sent GOAWAY NO_ERROR (a
// graceful close); with MaxConnectionAgeGrace, a stream still open then
// ends with the connection after the grace; without it, the stream is
// answered and the connection closes after it.
func TestMaxConnectionAge(t *testing.T) {
	for _, grace := range []time.Duration{50 * time.Millisecond, 0} {
		answer := make(chan struct{})
		ended := make(chan error, 1)
		s := &Server{
			MaxConnectionAge:      50 * time.Millisecond,
			MaxConnectionAgeGrace: grace,
			drainWait:             10 * time.Millisecond,
			Handler: HandlerFunc(func(st *Stream) {
				select {
				case <-answer:
					_ = st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, true)
				case <-st.Context().Done():
				}
				ended <- st.Context().Err()
			}),
		}
		h := dial(t, startServer(t, s, false))
		id, err := h.Open(post("/"), false)
		if err != nil {
			t.Fatal(err)
		}
		wantGoAway(t, h, http2.ErrCodeNo)
		if grace > 0 {
			if !attack.Closed(h.Conn, patience) {
				t.Fatalf("grace %v: the connection is still open", grace)
			}
			select {
			case err := <-ended:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("the open stream's context ended with %v, want Canceled", err)
				}
			case <-time.After(patience):
				t.Fatal("the open stream's handler never ended")
			}
			continue
		}
		close(answer)
		wantEnded(t, h, id)
		if err := <-ended; err != nil {
			t.Errorf("the answered stream's context: %v, want not ended", err)
		}
		if !attack.Closed(h.Conn, patience) {
			t.Fatal("no grace: the connection is still open after its last stream")
		}
	}
}
