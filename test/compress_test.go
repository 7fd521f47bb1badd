package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	_ "github.com/edgegate/edgegate/internal/grpczstd" // the client's zstd
)

// encodings are the HTTP encodings the gateway offers, each with a reader
// and a writer: the clients and bombs of the tests.
var encodings = []struct {
	name   string
	reader func(io.Reader) (io.Reader, error)
	writer func(io.Writer) io.WriteCloser
}{
	{"gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }, func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }},
	{"zstd", func(r io.Reader) (io.Reader, error) { d, err := zstd.NewReader(r); return d, err }, func(w io.Writer) io.WriteCloser { e, _ := zstd.NewWriter(w); return e }},
	{"br", func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }, func(w io.Writer) io.WriteCloser { return brotli.NewWriter(w) }},
}

func encode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	for _, e := range encodings {
		if e.name == enc {
			var buf bytes.Buffer
			w := e.writer(&buf)
			if _, err := w.Write(b); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
	}
	t.Fatalf("no encoding %q", enc)
	return nil
}

func decode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	for _, e := range encodings {
		if e.name == enc {
			r, err := e.reader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("decoding %s: %v", enc, err)
			}
			return out
		}
	}
	t.Fatalf("no encoding %q", enc)
	return nil
}

// rawClient is an HTTP client that neither asks for nor decodes gzip
// itself, nor follows redirects: what the gateway sends is what the test
// sees.
var rawClient = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func postEcho(t *testing.T, url string, body []byte, hdr map[string]string) httpResult {
	t.Helper()
	return doHTTP(t, rawClient, http.MethodPost, url, string(body), hdr)
}

func hasVary(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		if strings.Contains(strings.ToLower(v), "accept-encoding") {
			return true
		}
	}
	return false
}

const compressionConfig = `
http:
  max_body_bytes: 1048576
  compression: {}
`

// TestCompressionNegotiated: a REST answer over 1 KiB is compressed with
// the encoding the client prefers (q-values honoured, the gateway's order
// breaking ties), says Vary: Accept-Encoding, and decodes to the answer; a
// small answer, or a client that accepts none, gets it as is (with Vary).
func TestCompressionNegotiated(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+compressionConfig)
	url := "http://" + gw.Addr + "/v1/echo:unary"
	big := []byte(`{"message":"` + strings.Repeat("compressible ", 2000) + `"}`)
	for _, c := range []struct{ accept, want string }{
		{"gzip", "gzip"},
		{"zstd", "zstd"},
		{"br", "br"},
		{"gzip, deflate, br, zstd", "zstd"}, // ties: zstd, br, gzip
		{"gzip;q=0.5, br;q=0.9", "br"},      // q-values
		{"zstd;q=0, *;q=0.1, gzip;q=0.2", "gzip"},
		{"zstd;q=0, *", "br"}, // "*": the next offered
		{"identity", ""},
		{"deflate", ""},
		{"", ""},
	} {
		t.Run(c.accept, func(t *testing.T) {
			r := postEcho(t, url, big, map[string]string{"Accept-Encoding": c.accept})
			if r.code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", r.code, r.body)
			}
			if got := r.header.Get("Content-Encoding"); got != c.want {
				t.Fatalf("Content-Encoding %q, want %q", got, c.want)
			}
			if !hasVary(r.header) {
				t.Errorf("no Vary: Accept-Encoding: %v", r.header)
			}
			body := r.body
			if c.want != "" {
				if len(body) >= len(big) {
					t.Errorf("compressed body is %d bytes, the answer %d", len(body), len(big))
				}
				body = decode(t, c.want, body)
			}
			var out testingv1.EchoResponse
			if err := protojson.Unmarshal(body, &out); err != nil || !strings.HasPrefix(out.GetMessage(), "compressible ") {
				t.Fatalf("answer %.80q: %v", body, err)
			}
		})
	}
	small := postEcho(t, url, []byte(`{"message":"hi"}`), map[string]string{"Accept-Encoding": "gzip"})
	if small.header.Get("Content-Encoding") != "" || !hasVary(small.header) {
		t.Errorf("small answer: Content-Encoding %q, Vary %q; want none and Accept-Encoding", small.header.Get("Content-Encoding"), small.header.Values("Vary"))
	}
}

// TestCompressionOff: without http.compression nothing is compressed.
func TestCompressionOff(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr))
	big := []byte(`{"message":"` + strings.Repeat("x", 4096) + `"}`)
	r := postEcho(t, "http://"+gw.Addr+"/v1/echo:unary", big, map[string]string{"Accept-Encoding": "gzip, br, zstd"})
	if r.code != http.StatusOK || r.header.Get("Content-Encoding") != "" {
		t.Fatalf("HTTP %d, Content-Encoding %q; want 200 and none", r.code, r.header.Get("Content-Encoding"))
	}
}

// stepServer streams one response per step: a server stream that holds
// back its next message until the test lets it go.
type stepServer struct {
	testingv1.UnimplementedEchoServiceServer
	step chan struct{}
}

func (s *stepServer) ServerStream(req *testingv1.EchoRequest, ss grpc.ServerStreamingServer[testingv1.EchoResponse]) error {
	for i := range req.GetRepeat() {
		if i > 0 {
			select {
			case <-s.step:
			case <-ss.Context().Done():
				return ss.Context().Err()
			}
		}
		if err := ss.Send(&testingv1.EchoResponse{Message: req.GetMessage(), Index: i}); err != nil {
			return err
		}
	}
	return nil
}

// TestCompressionStreamFlushed: a REST server stream (NDJSON) is
// compressed and each message reaches the client, decoded, while the
// stream is still open (the upstream holds the next one back until the
// client has read the first).
func TestCompressionStreamFlushed(t *testing.T) {
	srv := &stepServer{step: make(chan struct{})}
	addr := StartServer(t, func(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, srv) })
	gw := StartGateway(t, EchoConfig(addr)+compressionConfig)
	for _, e := range encodings {
		t.Run(e.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"message":%q,"repeat":3}`, strings.Repeat("m", 100))
			req, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodPost, "http://"+gw.Addr+"/v1/echo:stream", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept-Encoding", e.name)
			resp, err := rawClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			if got := resp.Header.Get("Content-Encoding"); got != e.name {
				t.Fatalf("Content-Encoding %q, want %q", got, e.name)
			}
			dec, err := e.reader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewReader(dec)
			for i := range 3 {
				line, err := lines.ReadString('\n')
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !strings.Contains(line, fmt.Sprintf(`"index":%d`, i)) && i > 0 {
					t.Fatalf("message %d: %s", i, line)
				}
				if i < 2 {
					srv.step <- struct{}{} // only now may the next one be sent
				}
			}
		})
	}
}

// TestCompressedRequestBodies: a REST request body sent gzip, zstd or br
// encoded reaches the upstream decoded; a bomb of each (8 MiB of zeros in
// a few KiB, over the 1 MiB body limit) is 413 with a google.rpc.Status
// and never forwarded; an unknown encoding is 415, a corrupt body 400.
func TestCompressedRequestBodies(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+compressionConfig)
	url := "http://" + gw.Addr + "/v1/echo:unary"
	bomb := []byte(`{"message":"` + strings.Repeat("0", 8<<20) + `"}`)
	for _, e := range encodings {
		t.Run(e.name, func(t *testing.T) {
			r := postEcho(t, url, encode(t, e.name, []byte(`{"message":"decoded"}`)), map[string]string{"Content-Encoding": e.name})
			if r.code != http.StatusOK || !bytes.Contains(r.body, []byte(`"decoded"`)) {
				t.Fatalf("HTTP %d: %s", r.code, r.body)
			}
			before := up.Count()
			packed := encode(t, e.name, bomb)
			if len(packed) > 64<<10 {
				t.Fatalf("the bomb is %d bytes packed", len(packed))
			}
			r = postEcho(t, url, packed, map[string]string{"Content-Encoding": e.name})
			wantStatusJSON(t, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than 1048576 bytes decoded")
			if n := up.Count(); n != before {
				t.Errorf("the bomb reached the upstream (%d calls, want %d)", n, before)
			}
			r = postEcho(t, url, []byte("not "+e.name), map[string]string{"Content-Encoding": e.name})
			wantStatusJSON(t, r, http.StatusBadRequest, codes.InvalidArgument, "cannot be decoded")
		})
	}
	r := postEcho(t, url, []byte("x"), map[string]string{"Content-Encoding": "compress"})
	wantStatusJSON(t, r, http.StatusUnsupportedMediaType, codes.InvalidArgument, "unsupported Content-Encoding")
	if r.header.Get("Accept-Encoding") == "" {
		t.Error("415 without Accept-Encoding")
	}
}

// compressionSeen records the grpc-encoding of the requests a server
// received.
type compressionSeen struct {
	mu   sync.Mutex
	last string
}

func (*compressionSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (*compressionSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (*compressionSeen) HandleConn(context.Context, stats.ConnStats) {}
func (c *compressionSeen) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		c.mu.Lock()
		c.last = h.Compression
		c.mu.Unlock()
	}
}

func (c *compressionSeen) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// TestGRPCZstd: a native client sends and receives zstd-compressed
// messages; a zstd (and a gzip) bomb over limits.max_message_bytes is
// RESOURCE_EXHAUSTED and never forwarded; a cluster with compression:
// zstd is sent zstd messages, one without uncompressed ones.
func TestGRPCZstd(t *testing.T) {
	seenZ, seenPlain := &compressionSeen{}, &compressionSeen{}
	upZ := StartEcho(t, "zstd", grpc.StatsHandler(seenZ))
	upPlain := StartEcho(t, "plain", grpc.StatsHandler(seenPlain))
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
limits: {max_message_bytes: 1048576}
clusters:
  - {name: z, endpoints: [%q], compression: zstd}
  - {name: plain, endpoints: [%q]}
routes:
  - {match: {method: edgegate.testing.v1.EchoService/Unary}, cluster: z}
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: plain}
`, upZ.Addr, upPlain.Addr))
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	for _, enc := range []string{"zstd", "gzip"} {
		resp, err := c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Message: strings.Repeat("z", 4096)}, grpc.UseCompressor(enc))
		if err != nil || resp.GetServer() != "zstd" {
			t.Fatalf("%s call: %v %v", enc, resp, err)
		}
		if got := seenZ.get(); got != "zstd" {
			t.Errorf("the zstd cluster was sent %q messages", got)
		}
		before := upZ.Count()
		_, err = c.Unary(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Payload: make([]byte, 8<<20)}, grpc.UseCompressor(enc))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s bomb: %v, want RESOURCE_EXHAUSTED", enc, err)
		}
		if upZ.Count() != before {
			t.Errorf("%s bomb reached the upstream", enc)
		}
	}
	st, err := c.ServerStream(Ctx(t, 10*time.Second), &testingv1.EchoRequest{Message: "plain"}, grpc.UseCompressor("zstd"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetServer() != "plain" {
		t.Fatalf("stream: %v %v", m, err)
	}
	if got := seenPlain.get(); got != "" {
		t.Errorf("the plain cluster was sent %q messages", got)
	}
}
