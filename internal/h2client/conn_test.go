package h2client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startHTTP2 serves h with net/http's HTTP/2 server (unencrypted) on
// loopback: an implementation independent of this package.
func startHTTP2(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t testing.TB, addr string, o Options) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, o)
	t.Cleanup(func() { _ = c.Close(); <-c.Done() })
	select {
	case <-c.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	return c
}

func request(path string, extra ...string) []hpack.HeaderField {
	h := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "test"},
		{Name: "te", Value: "trailers"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return h
}

func field(h []hpack.HeaderField, name string) string {
	for _, f := range h {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// echo answers with the request body, the request's x-in header as
// x-out, and a trailer.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "x-trailer")
	w.Header().Set("x-out", r.Header.Get("x-in"))
	w.WriteHeader(200)
	_, _ = io.Copy(w, r.Body)
	w.Header().Set("x-trailer", "done")
}

func TestRoundTrip(t *testing.T) {
	addr := startHTTP2(t, http.HandlerFunc(echo))
	c := dial(t, addr, Options{})
	for _, size := range []int{0, 5, 16 << 10, 3 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		st, err := c.NewStream(context.Background(), request("/echo", "x-in", "hello"), false, false)
		if err != nil {
			t.Fatal(err)
		}
		// The request is written while the response is read: more than
		// the windows in both directions.
		werr := make(chan error, 1)
		go func() { werr <- st.Write([]byte("pre"), body, true) }()
		h, ended, err := st.Header()
		if err != nil || ended || field(h, ":status") != "200" || field(h, "x-out") != "hello" {
			t.Fatalf("size %d: header %v ended %v err %v", size, h, ended, err)
		}
		got, err := io.ReadAll(st)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if err := <-werr; err != nil {
			t.Fatalf("size %d: write: %v", size, err)
		}
		if !bytes.Equal(got, append([]byte("pre"), body...)) {
			t.Fatalf("size %d: echoed %d bytes", size, len(got))
		}
		_ = append(h, hpack.HeaderField{Name: "x-appended"}) // the caller's to append to: the trailers stay
		if v := field(st.Trailer(), "x-trailer"); v != "done" || field(st.Trailer(), "x-appended") != "" {
			t.Fatalf("size %d: trailer %v", size, st.Trailer())
		}
		st.Close()
	}
	if open, _ := c.Load(); open != 0 {
		t.Fatalf("%d streams still open", open)
	}
}

// 64 calls at once share one connection, each answered with its own
// bytes. (Under net/http's default stream limit: with a limit below 64 its
// server may count a stream the client already saw end, and refuse the
// next with PROTOCOL_ERROR; TestStreamLimitWaits tests the limit.)
func TestConcurrentStreamsOneConnection(t *testing.T) {
	addr := startHTTP2(t, http.HandlerFunc(echo))
	c := dial(t, addr, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			msg := strings.Repeat(string(rune('a'+i%26)), 1000+i)
			st, err := c.NewStream(context.Background(), request("/echo"), false, true)
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			err = st.Write(nil, []byte(msg), true)
			st.Uncork()
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(st)
			if err != nil || string(got) != msg {
				errs <- fmt.Errorf("stream %d: echoed %d bytes of %d (%.10q…), err %w", st.ID(), len(got), len(msg), got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawServer accepts one connection and hands the test its framer, after
// the preface and an exchange of SETTINGS.
func rawServer(t *testing.T, serve func(fr *http2.Framer, dec *hpack.Decoder), settings ...http2.Setting) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = nc.Close() }()
		preface := make([]byte, len(clientPreface))
		if _, err := io.ReadFull(nc, preface); err != nil {
			return
		}
		fr := http2.NewFramer(nc, nc)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		_ = fr.WriteSettings(settings...)
		serve(fr, nil)
	}()
	return ln.Addr().String()
}

// readUntil reads frames until one of type typ on stream id (0: any).
func readUntil(fr *http2.Framer, typ http2.FrameType) (http2.Frame, error) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = fr.WriteSettingsAck()
		}
		if f.Header().Type == typ {
			return f, nil
		}
	}
}

func TestGoAwayRefusesStreamsItDidNotProcess(t *testing.T) {
	addr := rawServer(t, func(fr *http2.Framer, _ *hpack.Decoder) {
		if _, err := readUntil(fr, http2.FrameHeaders); err != nil {
			return
		}
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, []byte("bye"))
		_, _ = readUntil(fr, 0xff) // until the client closes
	})
	c := dial(t, addr, Options{})
	st, err := c.NewStream(context.Background(), request("/x"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = st.Header()
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Header after GOAWAY(last 0): %v, want ErrRefused", err)
	}
	if _, err := c.NewStream(context.Background(), request("/y"), true, false); !errors.Is(err, ErrRefused) {
		t.Fatalf("NewStream after GOAWAY: %v, want ErrRefused", err)
	}
	if c.Usable() {
		t.Fatal("a connection that got GOAWAY is still usable")
	}
}

func TestResets(t *testing.T) {
	codes := make(chan http2.ErrCode, 2)
	addr := rawServer(t, func(fr *http2.Framer, _ *hpack.Decoder) {
		// Stream 1 refused, stream 3 reset with INTERNAL_ERROR, stream 5
		// canceled by the client: its RST_STREAM code reaches us.
		for _, code := range []http2.ErrCode{http2.ErrCodeRefusedStream, http2.ErrCodeInternal} {
			f, err := readUntil(fr, http2.FrameHeaders)
			if err != nil {
				return
			}
			_ = fr.WriteRSTStream(f.Header().StreamID, code)
		}
		if _, err := readUntil(fr, http2.FrameHeaders); err != nil {
			return
		}
		f, err := readUntil(fr, http2.FrameRSTStream)
		if err != nil {
			return
		}
		codes <- f.(*http2.RSTStreamFrame).ErrCode
		_, _ = readUntil(fr, 0xff)
	})
	c := dial(t, addr, Options{})
	st, _ := c.NewStream(context.Background(), request("/a"), true, false)
	if _, _, err := st.Header(); !errors.Is(err, ErrRefused) {
		t.Fatalf("REFUSED_STREAM: %v, want ErrRefused", err)
	}
	st.Close()
	st, _ = c.NewStream(context.Background(), request("/b"), true, false)
	var se *StreamError
	if _, _, err := st.Header(); !errors.As(err, &se) || se.Code != http2.ErrCodeInternal || !se.Remote || errors.Is(err, ErrRefused) {
		t.Fatalf("INTERNAL_ERROR: %v", err)
	}
	st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.NewStream(ctx, request("/c"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, _, err := st.Header(); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	st.Close()
	if got := <-codes; got != http2.ErrCodeCancel {
		t.Fatalf("the server saw RST_STREAM %v, want CANCEL", got)
	}
}

// A response bigger than the windows reaches a reader that reads slowly,
// and the server is held to the windows meanwhile: it never has more
// than a stream window outstanding.
func TestFlowControlHoldsTheServer(t *testing.T) {
	const window = 64 << 10
	written := make(chan int, 1)
	addr := startHTTP2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		chunk := bytes.Repeat([]byte("y"), 4096)
		for range 256 { // 1 MiB
			k, err := w.Write(chunk)
			n += k
			if err != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		written <- n
	}))
	c := dial(t, addr, Options{InitialWindowSize: window, ConnWindowSize: window})
	st, err := c.NewStream(context.Background(), request("/big"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	// Nothing read yet: the server is stuck at the window.
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatal(err)
	}
	st.rmu.Lock()
	held := st.rbuf.Len()
	st.rmu.Unlock()
	if held > window {
		t.Fatalf("the stream holds %d bytes, more than its window %d", held, window)
	}
	rest, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rest) + len(buf); n != 1<<20 || <-written != 1<<20 {
		t.Fatalf("read %d bytes of 1 MiB", n)
	}
}

// A stream past the server's MAX_CONCURRENT_STREAMS waits for a slot,
// until its context ends, and goes out once a stream has ended. (A raw
// server, so that when it counts a stream as ended is exact: net/http's
// server counts one until its writer goroutine reports the END_STREAM
// written, which a client may already have read.)
func TestStreamLimitWaits(t *testing.T) {
	opened := make(chan uint32, 4)
	answer := make(chan uint32)
	addr := rawServer(t, func(fr *http2.Framer, _ *hpack.Decoder) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for {
				select {
				case id := <-answer:
					hb.Reset()
					_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
				case <-done:
					return
				}
			}
		}()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if f.Header().Type == http2.FrameHeaders {
				opened <- f.Header().StreamID
			}
		}
	}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
	c := dial(t, addr, Options{})
	// The server's SETTINGS have arrived (dial waits for Ready); its
	// limit is in force.
	first, err := c.NewStream(context.Background(), request("/hold"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if id := <-opened; id != 1 {
		t.Fatalf("the server saw stream %d first", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.NewStream(ctx, request("/next"), true, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second stream past the limit: %v, want it to wait until its deadline", err)
	}
	got := make(chan error, 1)
	go func() {
		st, err := c.NewStream(context.Background(), request("/next"), true, false)
		if err == nil {
			_, _, err = st.Header()
			st.Close()
		}
		got <- err
	}()
	answer <- 1
	if _, _, err := first.Header(); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-opened:
		if id != 3 {
			t.Fatalf("the waiting stream opened as %d, want 3", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting stream did not open after the first ended")
	}
	answer <- 3
	if err := <-got; err != nil {
		t.Fatalf("the waiting stream: %v", err)
	}
}

func TestKeepaliveEndsADeadConnection(t *testing.T) {
	addr := rawServer(t, func(fr *http2.Framer, _ *hpack.Decoder) {
		// Reads everything, answers nothing (no PING ACK).
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	})
	c := dial(t, addr, Options{PingInterval: 20 * time.Millisecond, PingTimeout: 50 * time.Millisecond, PermitWithoutStream: true})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a connection whose PINGs go unanswered did not end")
	}
	var ce *ConnError
	if !errors.As(c.Err(), &ce) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestTrailersOnly(t *testing.T) {
	addr := startHTTP2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("grpc-status", "12")
		w.WriteHeader(200)
	}))
	c := dial(t, addr, Options{})
	st, err := c.NewStream(context.Background(), request("/x"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, ended, err := st.Header()
	if err != nil || !ended || field(h, "grpc-status") != "12" {
		t.Fatalf("header %v ended %v err %v", h, ended, err)
	}
	if n, err := st.Read(make([]byte, 10)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read after a trailers-only answer: %d, %v", n, err)
	}
	if field(st.Trailer(), "grpc-status") != "12" {
		t.Fatalf("trailer %v", st.Trailer())
	}
}

// Response header blocks are decoded by the connection (HEADERS and its
// CONTINUATIONs): a malformed one (a field name in capitals, a request's
// pseudo-header, a list over MaxHeaderListSize) resets its stream with
// PROTOCOL_ERROR and the connection goes on; a good one, in two frames,
// reaches its stream, and the fields Header returns stay the caller's
// while the connection decodes the next block into the same table.
func TestResponseHeaderBlocks(t *testing.T) {
	resets := make(chan http2.ErrCode, 3)
	addr := rawServer(t, func(fr *http2.Framer, _ *hpack.Decoder) {
		var block headerBytes
		enc := hpack.NewEncoder(&block)
		encode := func(kv ...string) []byte {
			block = block[:0]
			for i := 0; i+1 < len(kv); i += 2 {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), block...)
		}
		bad := [][]byte{
			encode(":status", "200", "X-Upper", "1"),
			encode(":status", "200", ":path", "/"),
			encode(":status", "200", "x-big", strings.Repeat("v", 300)),
		}
		for _, b := range bad {
			f, err := readUntil(fr, http2.FrameHeaders)
			if err != nil {
				return
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.Header().StreamID, BlockFragment: b, EndHeaders: true})
			rs, err := readUntil(fr, http2.FrameRSTStream)
			if err != nil {
				return
			}
			resets <- rs.(*http2.RSTStreamFrame).ErrCode
		}
		for _, v := range []string{"first", "second"} {
			f, err := readUntil(fr, http2.FrameHeaders)
			if err != nil {
				return
			}
			b := encode(":status", "200", "x-answer", v)
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.Header().StreamID, BlockFragment: b[:2]})
			_ = fr.WriteContinuation(f.Header().StreamID, true, b[2:])
		}
		_, _ = readUntil(fr, 0xff)
	})
	c := dial(t, addr, Options{MaxHeaderListSize: 200})
	for i := range 3 {
		st, err := c.NewStream(context.Background(), request("/bad"), true, false)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = st.Header()
		if i < 2 {
			var se *StreamError
			if !errors.As(err, &se) || se.Code != http2.ErrCodeProtocol || se.Remote {
				t.Fatalf("block %d: %v, want a PROTOCOL_ERROR reset by the client", i, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "over 200 bytes") {
			t.Fatalf("block over MaxHeaderListSize: %v", err)
		}
		if got := <-resets; got != http2.ErrCodeProtocol {
			t.Fatalf("block %d: the server saw RST_STREAM %v", i, got)
		}
		st.Close()
	}
	first, err := c.NewStream(context.Background(), request("/good"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	h1, _, err := first.Header()
	if err != nil || field(h1, "x-answer") != "first" {
		t.Fatalf("first: %v %v", h1, err)
	}
	second, err := c.NewStream(context.Background(), request("/good"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	h2, _, err := second.Header()
	if err != nil || field(h2, "x-answer") != "second" {
		t.Fatalf("second: %v %v", h2, err)
	}
	if field(h1, "x-answer") != "first" || field(h1, ":status") != "200" {
		t.Fatalf("the first stream's fields changed with the second block: %v", h1)
	}
	if !c.Usable() {
		t.Fatalf("the connection ended: %v", c.Err())
	}
}
