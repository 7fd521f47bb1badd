package h2srv

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2wire"
)

// unaryClient drives unary-shaped exchanges on one connection, frame by
// frame: HEADERS, DATA of 100 bytes with END_STREAM; it reads the
// answer's HEADERS, DATA and trailers.
type unaryClient struct {
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	hb     bytes.Buffer
	fields []hpack.HeaderField
	body   []byte
	next   uint32
	out    bytes.Buffer
}

func newUnaryClient(b *testing.B, addr string) *unaryClient {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	u := &unaryClient{c: c, next: 1, body: bytes.Repeat([]byte{'m'}, 100)}
	u.fr = http2.NewFramer(&u.out, bufio.NewReader(c))
	u.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	u.enc = hpack.NewEncoder(&u.hb)
	u.fields = []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "bench"},
		{Name: ":path", Value: "/bench.Echo/Unary"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}
	u.out.WriteString(http2.ClientPreface)
	_ = u.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	_ = u.fr.WriteWindowUpdate(0, 1<<30)
	if _, err := c.Write(u.out.Bytes()); err != nil {
		b.Fatal(err)
	}
	u.out.Reset()
	return u
}

func (u *unaryClient) call(b *testing.B) {
	id := u.next
	u.next += 2
	u.hb.Reset()
	for _, f := range u.fields {
		_ = u.enc.WriteField(f) // indexed after the first call, as a real client's
	}
	_ = u.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: u.hb.Bytes(), EndHeaders: true})
	_ = u.fr.WriteData(id, true, u.body)
	if _, err := u.c.Write(u.out.Bytes()); err != nil {
		b.Fatal(err)
	}
	u.out.Reset()
	got := 0
	for {
		f, err := u.fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if f.StreamEnded() {
				b.Fatal("DATA ended the stream: no trailers")
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				if got != len(u.body) {
					b.Fatalf("answer of %d bytes", got)
				}
				return
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = u.fr.WriteSettingsAck()
				if _, err := u.c.Write(u.out.Bytes()); err != nil {
					b.Fatal(err)
				}
				u.out.Reset()
			}
		case *http2.RSTStreamFrame:
			b.Fatalf("stream %d (of %d) reset: %v", f.StreamID, id, f.ErrCode)
		case *http2.GoAwayFrame:
			b.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		}
	}
}

var grpcStatus = []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}
var okHeaders = []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}

// unaryHandler answers like a unary gRPC call: headers, the request's
// body back, trailers, in one flush.
var unaryHandler = HandlerFunc(func(st *Stream) {
	var buf [512]byte
	n, err := io.ReadFull(st, buf[:])
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		return
	}
	st.Cork()
	defer st.Uncork()
	if st.WriteHeaders(okHeaders, false) != nil {
		return
	}
	if _, err := st.Write(buf[:n]); err != nil {
		return
	}
	_ = st.WriteTrailers(grpcStatus)
})

// BenchmarkUnary measures a unary-shaped exchange on one connection,
// served by this engine and by x/net's HTTP/2 server (as net/http bundles
// it) with an http.Handler doing the same; the client (a Framer on
// loopback) is the same.
func BenchmarkUnary(b *testing.B) {
	b.Run("h2srv", func(b *testing.B) {
		ts := startServer(b, &Server{Handler: unaryHandler}, false)
		u := newUnaryClient(b, ts.Addr)
		defer func() { _ = u.c.Close() }()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			u.call(b)
		}
	})
	b.Run("net-http-h2c", func(b *testing.B) {
		// x/net's http2.Server, as bundled in net/http (x/net's own type
		// is deprecated in its favour), serving h2c.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: &protos, ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf [512]byte
			n, _ := io.ReadFull(r.Body, buf[:])
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.WriteHeader(200)
			_, _ = w.Write(buf[:n])
			w.Header().Set("Grpc-Status", "0")
		})}
		go func() { _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close() }()
		u := newUnaryClient(b, ln.Addr().String())
		defer func() { _ = u.c.Close() }()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			u.call(b)
		}
	})
}

// BenchmarkUnaryParallel runs the exchange on GOMAXPROCS connections at
// once, where the engine's writes of several streams share flushes.
func BenchmarkUnaryParallel(b *testing.B) {
	ts := startServer(b, &Server{Handler: unaryHandler}, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		u := newUnaryClient(b, ts.Addr)
		defer func() { _ = u.c.Close() }()
		for pb.Next() {
			u.call(b)
		}
	})
}

// BenchmarkBody sends 4 MiB up and back on one stream through net/http's
// HTTP/2 client, for several receive windows of the server (what
// InitialWindowSize's default was chosen from).
func BenchmarkBody(b *testing.B) {
	body := bytes.Repeat([]byte{'b'}, 4<<20)
	for _, w := range []uint32{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run("window="+strconv.Itoa(int(w>>10))+"KiB", func(b *testing.B) {
			ts := startServer(b, &Server{Handler: echo, InitialWindowSize: w, ConnWindowSize: max(w, DefaultConnWindowSize)}, false)
			cl := h2Client(nil)
			defer cl.CloseIdleConnections()
			b.SetBytes(int64(2 * len(body)))
			b.ReportAllocs()
			for b.Loop() {
				resp, err := cl.Post("http://"+ts.Addr+"/", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err != nil || n != int64(len(body)) {
					b.Fatalf("%d bytes back: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkDataPath moves 16 KiB DATA frames on one stream, an op a
// frame: the request direction (the client writes, the handler reads)
// and the response direction (the handler writes, the client reads).
// The DATA path allocates nothing per frame.
func BenchmarkDataPath(b *testing.B) {
	frame := make([]byte, 16<<10)
	b.Run("request", func(b *testing.B) {
		read := make(chan int64, 1)
		ts := startServer(b, &Server{Handler: HandlerFunc(func(st *Stream) {
			n, _ := io.Copy(io.Discard, st)
			read <- n
			_ = st.WriteHeaders(okHeaders, true)
		})}, false)
		c, err := net.Dial("tcp", ts.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		bw := bufio.NewWriter(c)
		fr := http2.NewFramer(bw, bufio.NewReader(c))
		fr.SetReuseFrames()
		_, _ = bw.WriteString(http2.ClientPreface)
		_ = fr.WriteSettings()
		var hb bytes.Buffer
		for _, f := range post("/") {
			_ = hpack.NewEncoder(&hb).WriteField(f)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		_ = bw.Flush()
		// Window comes back as the handler reads; the reading goroutine
		// hands the stream's credit over.
		credit := make(chan uint32, 1024)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					close(credit)
					return
				}
				if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == 1 {
					credit <- wu.Increment
				}
			}
		}()
		window := int64(DefaultInitialWindowSize)
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			for window < int64(len(frame)) {
				_ = bw.Flush()
				inc, ok := <-credit
				if !ok {
					b.Fatal("connection ended")
				}
				window += int64(inc)
			}
			window -= int64(len(frame))
			_ = fr.WriteData(1, false, frame)
		}
		_ = fr.WriteData(1, true, nil)
		_ = bw.Flush()
		<-read
	})
	b.Run("response", func(b *testing.B) {
		frames := make(chan int, 1)
		ts := startServer(b, &Server{Handler: HandlerFunc(func(st *Stream) {
			n := <-frames
			if st.WriteHeaders(okHeaders, false) != nil {
				return
			}
			for range n {
				if _, err := st.Write(frame); err != nil {
					return
				}
			}
			_ = st.WriteTrailers(grpcStatus)
		})}, false)
		c, err := net.Dial("tcp", ts.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		bw := bufio.NewWriter(c)
		fr := http2.NewFramer(bw, bufio.NewReaderSize(c, 64<<10))
		fr.SetReuseFrames()
		_, _ = bw.WriteString(http2.ClientPreface)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2wire.MaxWindow})
		_ = fr.WriteWindowUpdate(0, h2wire.MaxWindow-h2wire.InitialWindow)
		var hb bytes.Buffer
		for _, f := range get("/") {
			_ = hpack.NewEncoder(&hb).WriteField(f)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
		_ = bw.Flush()
		frames <- b.N
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		b.ResetTimer()
		got, unacked := 0, 0
		for got < b.N*len(frame) {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if d, ok := f.(*http2.DataFrame); ok {
				got += len(d.Data())
				if unacked += len(d.Data()); unacked >= 1<<30 { // keep the windows open for any b.N
					_ = fr.WriteWindowUpdate(0, uint32(unacked))
					_ = fr.WriteWindowUpdate(1, uint32(unacked))
					_ = bw.Flush()
					unacked = 0
				}
			}
		}
	})
}
