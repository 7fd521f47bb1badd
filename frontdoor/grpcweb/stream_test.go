package grpcweb

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/health/grpc_health_v1" // a unary and a streaming method's descriptors

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	_ "github.com/edgegate/edgegate/gen/edgegate/testing/v1" // all four kinds of method
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/router"
)

// frames prefixes each message as gRPC does (flag 0).
func frames(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(m)))
		b = append(b, m...)
	}
	return b
}

// serveGRPC runs one request through ServeCore with handler as
// the core and no chain.
func serveGRPC(t *testing.T, max int, handler grpc.StreamHandler, path string, hdr map[string]string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/grpc")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	ServeCore(router.NewInProcess(nil, handler), max, rec, req)
	return rec
}

// readAll receives every request message as a Frame.
func readAll(ss grpc.ServerStream) ([][]byte, error) {
	var out [][]byte
	for {
		f := &router.Frame{}
		if err := ss.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, f.Bytes())
		f.Free()
	}
}

// echoBack reads every request message, then sets header, answers each
// message with "re:" and the message, and sets trailer.
func echoBack(ss grpc.ServerStream, header, trailer metadata.MD) error {
	msgs, err := readAll(ss)
	if err != nil {
		return err
	}
	if err := grpc.SetHeader(ss.Context(), header); err != nil {
		return err
	}
	for _, m := range msgs {
		f := &router.Frame{}
		f.SetBytes(append([]byte("re:"), m...))
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
	ss.SetTrailer(trailer)
	return nil
}

func TestServeHTTPStream(t *testing.T) {
	var gotMD metadata.MD
	var gotMethod string
	var deadline time.Duration
	handler := func(_ any, ss grpc.ServerStream) error {
		gotMD, _ = metadata.FromIncomingContext(ss.Context())
		gotMethod, _ = grpc.MethodFromServerStream(ss)
		if d, ok := ss.Context().Deadline(); ok {
			deadline = time.Until(d)
		}
		return echoBack(ss, metadata.Pairs("x-h", "hv", "x-b-bin", "\x00\xff"), metadata.Pairs("x-t", "tv"))
	}
	rec := serveGRPC(t, 0, handler, "/pkg.Svc/Method", map[string]string{
		"X-Custom":     "c1",
		"X-Data-Bin":   base64.StdEncoding.EncodeToString([]byte{1, 2}),
		"X-Raw-Bin":    base64.RawStdEncoding.EncodeToString([]byte{3}),
		"Grpc-Timeout": "200m",
		"Te":           "trailers",
		"User-Agent":   "ua/1",
	}, frames([]byte("a"), []byte("bc")))

	if gotMethod != "/pkg.Svc/Method" {
		t.Errorf("method %q", gotMethod)
	}
	for k, want := range map[string]string{"x-custom": "c1", "x-data-bin": "\x01\x02", "x-raw-bin": "\x03", "user-agent": "ua/1", ":authority": "example.com"} {
		if got := gotMD.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"te", "grpc-timeout", "content-type"} {
		if v := gotMD.Get(k); v != nil {
			t.Errorf("reserved header %s reached the metadata: %q", k, v)
		}
	}
	if deadline <= 0 || deadline > 200*time.Millisecond {
		t.Errorf("deadline in %v, want within 200ms", deadline)
	}

	h := rec.Result().Header
	if rec.Code != 200 || h.Get("Content-Type") != "application/grpc" {
		t.Fatalf("HTTP %d, content type %q", rec.Code, h.Get("Content-Type"))
	}
	if h.Get("X-H") != "hv" || h.Get("X-B-Bin") != base64.RawStdEncoding.EncodeToString([]byte{0, 0xff}) {
		t.Errorf("header metadata %v", h)
	}
	if want := frames([]byte("re:a"), []byte("re:bc")); !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("body %q, want %q", rec.Body.Bytes(), want)
	}
	tl := rec.Result().Trailer
	if tl.Get("Grpc-Status") != "0" || tl.Get("X-T") != "tv" {
		t.Errorf("trailers %v", tl)
	}
	if h.Get("Grpc-Status") != "" {
		t.Errorf("status in the headers of an answer with messages: %v", h)
	}
}

func TestServeHTTPTrailersOnlyError(t *testing.T) {
	st, err := status.New(codes.NotFound, "nothing at 100%\n").WithDetails(&errdetails.ErrorInfo{Reason: "GONE"})
	if err != nil {
		t.Fatal(err)
	}
	rec := serveGRPC(t, 0, func(_ any, ss grpc.ServerStream) error {
		ss.SetTrailer(metadata.Pairs("x-t", "tv"))
		return st.Err()
	}, "/pkg.Svc/Method", nil, frames([]byte("a")))
	h := rec.Result().Header
	if h.Get("Grpc-Status") != "5" || h.Get("Grpc-Message") != "nothing at 100%25%0A" || h.Get("X-T") != "tv" {
		t.Fatalf("headers %v", h)
	}
	raw, err := base64.RawStdEncoding.DecodeString(h.Get("Grpc-Status-Details-Bin"))
	if err != nil {
		t.Fatal(err)
	}
	var got spb.Status
	if err := proto.Unmarshal(raw, &got); err != nil || !proto.Equal(&got, st.Proto()) {
		t.Errorf("details %v (%v), want %v", &got, err, st.Proto())
	}
	if rec.Body.Len() != 0 {
		t.Errorf("body %q", rec.Body.Bytes())
	}
}

// Bad requests are answered with a status; the core never sees them.
func TestServeHTTPRejects(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(bytes.Repeat([]byte("z"), 64))
	_ = zw.Close()
	compressed := append([]byte{1, 0, 0, 0, 0}, gz.Bytes()...)
	binary.BigEndian.PutUint32(compressed[1:5], uint32(gz.Len()))

	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		body       []byte
		code       codes.Code
		msg        string
		reached    bool // the handler runs (and its RecvMsg fails)
	}{
		{"malformed method", "/nomethod", nil, frames([]byte("a")), codes.Unimplemented, "malformed method name", false},
		{"trailing slash", "/pkg.Svc/", nil, frames([]byte("a")), codes.Unimplemented, "malformed method name", false},
		{"bad timeout unit", "/p.S/M", map[string]string{"Grpc-Timeout": "5x"}, frames([]byte("a")), codes.InvalidArgument, "malformed grpc-timeout", false},
		{"timeout not a number", "/p.S/M", map[string]string{"Grpc-Timeout": "-1S"}, frames([]byte("a")), codes.InvalidArgument, "malformed grpc-timeout", false},
		{"unknown compression", "/p.S/M", map[string]string{"Grpc-Encoding": "br"}, frames([]byte("a")), codes.Unimplemented, `compression "br"`, false},
		{"message over the limit", "/p.S/M", nil, frames(make([]byte, 65)), codes.ResourceExhausted, "larger than max (65 vs. 64)", true},
		{"inflated message over the limit", "/p.S/M", map[string]string{"Grpc-Encoding": "gzip"}, compressed, codes.ResourceExhausted, "after decompression larger than max (32)", true},
		{"compressed without encoding", "/p.S/M", nil, compressed, codes.Internal, "without grpc-encoding", true},
		{"truncated header", "/p.S/M", nil, []byte{0, 0, 0}, codes.InvalidArgument, "ends inside a message header", true},
		{"truncated message", "/p.S/M", nil, frames([]byte("abcd"))[:7], codes.InvalidArgument, "ends inside a message (4 bytes declared)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := 64
			if strings.HasPrefix(tc.name, "inflated") {
				max = 32
			}
			reached := false
			rec := serveGRPC(t, max, func(_ any, ss grpc.ServerStream) error {
				reached = true
				_, err := readAll(ss)
				return err
			}, tc.path, tc.hdr, tc.body)
			h := rec.Result().Header
			if h.Get("Grpc-Status") != strconv.Itoa(int(tc.code)) {
				t.Fatalf("grpc-status %q, want %d (%v); message %q", h.Get("Grpc-Status"), tc.code, tc.code, h.Get("Grpc-Message"))
			}
			if !strings.Contains(h.Get("Grpc-Message"), tc.msg) {
				t.Errorf("grpc-message %q, want it to say %q", h.Get("Grpc-Message"), tc.msg)
			}
			if reached != tc.reached {
				t.Errorf("handler ran: %v, want %v", reached, tc.reached)
			}
		})
	}
}

func TestServeHTTPGzipRequest(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("hello"))
	_ = zw.Close()
	body := append([]byte{1, 0, 0, 0, 0}, gz.Bytes()...)
	binary.BigEndian.PutUint32(body[1:5], uint32(gz.Len()))
	var got [][]byte
	rec := serveGRPC(t, 1<<20, func(_ any, ss grpc.ServerStream) error {
		var err error
		got, err = readAll(ss)
		return err
	}, "/p.S/M", map[string]string{"Grpc-Encoding": "gzip"}, body)
	if rec.Result().Header.Get("Grpc-Status") != "0" || len(got) != 1 || string(got[0]) != "hello" {
		t.Fatalf("status %q, messages %q", rec.Result().Header.Get("Grpc-Status"), got)
	}
}

func TestEncodeGrpcMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":  "plain text",
		"a b%c\né":    "a b%25c%0A%C3%A9",
		"":            "",
		"tab\there ~": "tab%09here ~",
	} {
		if got := grpcwire.EncodeMessage(in); got != want {
			t.Errorf("EncodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// webFrames splits a gRPC-Web response body into its frames: flag and
// payload each.
func webFrames(t *testing.T, body []byte) (flags []byte, payloads [][]byte) {
	t.Helper()
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("body ends inside a frame header: %q", body)
		}
		n := binary.BigEndian.Uint32(body[1:5])
		if uint32(len(body)-5) < n {
			t.Fatalf("body ends inside a frame: %q", body)
		}
		flags = append(flags, body[0])
		payloads = append(payloads, body[5:5+n])
		body = body[5+n:]
	}
	return flags, payloads
}

// ServeHTTP speaks gRPC-Web itself: the answer's headers listed for the
// browser, the messages, then the status and trailer metadata in a trailer
// frame of lower-case "key: value" lines; in text mode both bodies are
// base64, one padded chunk per frame.
func TestServeHTTPGRPCWeb(t *testing.T) {
	handler := func(_ any, ss grpc.ServerStream) error {
		if err := echoBack(ss, metadata.Pairs("x-h", "hv"), metadata.Pairs("x-t", "tv", "x-tb-bin", "\x00\x01")); err != nil {
			return err
		}
		return status.Error(codes.Aborted, "stop 100%")
	}
	for _, c := range []struct{ ct, wantCT string }{
		{"application/grpc-web+proto", "application/grpc-web"},
		{"application/grpc-web", "application/grpc-web"},
		{"application/grpc-web-text+proto", "application/grpc-web-text"},
	} {
		t.Run(c.ct, func(t *testing.T) {
			text := strings.HasPrefix(c.ct, "application/grpc-web-text")
			body := frames([]byte("a"), []byte("bc"))
			if text {
				body = []byte(base64.StdEncoding.EncodeToString(body))
			}
			rec := serveGRPC(t, 0, handler, "/pkg.Svc/Method", map[string]string{"Content-Type": c.ct}, body)
			h := rec.Result().Header
			if rec.Code != 200 || h.Get("Content-Type") != c.wantCT {
				t.Fatalf("HTTP %d, content type %q", rec.Code, h.Get("Content-Type"))
			}
			if h.Get("X-H") != "hv" || h.Get("Grpc-Status") != "" {
				t.Errorf("headers %v", h)
			}
			expose := h.Get("Access-Control-Expose-Headers")
			for _, k := range []string{"Content-Type", "X-H", "grpc-status", "grpc-message"} {
				if !strings.Contains(expose, k) {
					t.Errorf("Access-Control-Expose-Headers %q lacks %s", expose, k)
				}
			}
			raw := rec.Body.Bytes()
			if text {
				// Base64 chunks, each padded: decoded four characters at
				// a time, as browser clients do.
				if len(raw)%4 != 0 {
					t.Fatalf("text body %q is not whole base64 quanta", raw)
				}
				var dec []byte
				for i := 0; i < len(raw); i += 4 {
					b, err := base64.StdEncoding.DecodeString(string(raw[i : i+4]))
					if err != nil {
						t.Fatalf("quantum %q of %q: %v", raw[i:i+4], raw, err)
					}
					dec = append(dec, b...)
				}
				raw = dec
			}
			flags, payloads := webFrames(t, raw)
			if len(flags) != 3 || flags[0] != 0 || flags[1] != 0 || flags[2] != 0x80 {
				t.Fatalf("frames %v %q", flags, payloads)
			}
			if string(payloads[0]) != "re:a" || string(payloads[1]) != "re:bc" {
				t.Errorf("messages %q", payloads[:2])
			}
			want := "grpc-message: stop 100%25\r\ngrpc-status: 10\r\nx-t: tv\r\nx-tb-bin: AAE\r\n"
			if string(payloads[2]) != want {
				t.Errorf("trailer frame %q, want %q", payloads[2], want)
			}
		})
	}
}

// A gRPC-Web call that fails before any message is answered trailers-only:
// the status in the headers, listed for the browser, and no body.
func TestServeHTTPGRPCWebTrailersOnly(t *testing.T) {
	rec := serveGRPC(t, 0, func(_ any, ss grpc.ServerStream) error {
		return status.Error(codes.PermissionDenied, "no")
	}, "/pkg.Svc/Method", map[string]string{"Content-Type": "application/grpc-web-text"}, nil)
	h := rec.Result().Header
	if rec.Code != 200 || h.Get("Grpc-Status") != "7" || h.Get("Grpc-Message") != "no" || h.Get("Content-Type") != "application/grpc-web-text" {
		t.Fatalf("HTTP %d, headers %v", rec.Code, h)
	}
	// Each status header listed once, whatever its case.
	expose := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
	if strings.Count(expose, "grpc-status") != 1 || strings.Count(expose, "grpc-message") != 1 {
		t.Errorf("Access-Control-Expose-Headers %q", h.Get("Access-Control-Expose-Headers"))
	}
	if rec.Body.Len() != 0 {
		t.Errorf("body %q", rec.Body.Bytes())
	}
}

// BenchmarkServeHTTP serves a unary call in-process as gRPC-Web and as
// gRPC over HTTP: one request message, the two header calls of the
// default chain (request id, rate limit), one answer, a trailer. It
// measures the door's own work, without a network or an upstream.
func BenchmarkServeHTTP(b *testing.B) {
	handler := func(_ any, ss grpc.ServerStream) error {
		f := &router.Frame{}
		if err := ss.RecvMsg(f); err != nil {
			return err
		}
		_ = ss.SetHeader(metadata.Pairs("x-request-id", "0123456789abcdef"))
		_ = ss.SetHeader(metadata.Pairs("ratelimit-policy", `"ip";q=100;w=1`, "ratelimit", `"ip";r=99;t=1`))
		if err := ss.SendMsg(f); err != nil {
			return err
		}
		ss.SetTrailer(metadata.Pairs("x-served-by", "bench"))
		return nil
	}
	body := frames(make([]byte, 100))
	ip := router.NewInProcess(nil, handler)
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc"} {
		b.Run(ct, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/edgegate.testing.v1.EchoService/Unary", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-Grpc-Web", "1")
				req.Header.Set("X-User-Agent", "grpc-web-javascript/0.1")
				req.Header.Set("Authorization", "Bearer abc.def.ghi")
				rec := httptest.NewRecorder()
				ServeCore(ip, 4<<20, rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("HTTP %d", rec.Code)
				}
			}
		})
	}
}

// Trailer keys are lower-cased; reserved keys in any case and invalid
// header names are left out (they could forge the status or add lines).
func TestTrailerBlockDropsBadKeys(t *testing.T) {
	got := string(trailerBlock(status.New(codes.OK, ""), metadata.MD{
		"Grpc-Status": {"13"},
		"X-Up":        {"u"},
		"bad key":     {"v"},
		"x\r\ny":      {"v"},
		"":            {"v"},
	}))
	if want := "grpc-status: 0\r\nx-up: u\r\n"; got != want {
		t.Errorf("trailerBlock %q, want %q", got, want)
	}
}

// trailerBlock writes what http.Header.Write writes for the same lines with
// lower-case keys (as the gRPC-Web door wrote its trailer frame before).
func TestTrailerBlock(t *testing.T) {
	withDetails, err := status.New(codes.InvalidArgument, "bad\nline 100%").WithDetails(&errdetails.ErrorInfo{Reason: "R"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		st      *status.Status
		trailer metadata.MD
	}{
		{"ok, no trailer", status.New(codes.OK, ""), nil},
		{"message and details", withDetails, metadata.Pairs("x-t", "tv")},
		{"values to clean", status.New(codes.Aborted, "stop"), metadata.MD{
			"x-multi":    {"one", " two ", "three\r\nfour"},
			"x-t":        {"a"},
			"x-t-bin":    {"\x00\x01\x02"},
			"grpc-extra": {"reserved, dropped"},
			":authority": {"dropped"},
			"te":         {"dropped"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := make(http.Header)
			grpcwire.PutStatus(h, "", c.st)
			grpcwire.PutMetadata(h, "", c.trailer)
			lower := make(http.Header, len(h))
			for k, vs := range h {
				lower[strings.ToLower(k)] = vs
			}
			var want bytes.Buffer
			if err := lower.Write(&want); err != nil {
				t.Fatal(err)
			}
			if got := trailerBlock(c.st, c.trailer); string(got) != want.String() {
				t.Errorf("trailerBlock\n%q\nwant\n%q", got, want.String())
			}
		})
	}
}

// Once the header is sent, it stays sent: a second SendHeader and a later
// SetHeader fail (as on the router's in-process stream).
func TestHeaderSentOnce(t *testing.T) {
	ss := &stream{w: httptest.NewRecorder()}
	if err := ss.SendHeader(metadata.Pairs("a", "1")); err != nil {
		t.Fatalf("first SendHeader: %v", err)
	}
	if err := ss.SendHeader(metadata.Pairs("b", "2")); status.Code(err) != codes.Internal {
		t.Errorf("second SendHeader: %v, want INTERNAL", err)
	}
	if err := ss.SetHeader(metadata.Pairs("c", "3")); status.Code(err) != codes.Internal {
		t.Errorf("SetHeader after sending: %v, want INTERNAL", err)
	}
}
