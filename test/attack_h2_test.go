package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/test/attack"
)

// The HTTP/2 attacks of the attack suite: what a single client can send
// before its first request (the sniffer's bounds) and after it (the
// connection guard), each answered with GOAWAY and the right code, memory
// within a stated bound, and normal calls on every door served meanwhile.

// attackConfig is a gateway with a shared port (every door) and a
// dedicated gRPC port in front of the echo upstream at addr.
func attackConfig(addr, extra string) string {
	return fmt.Sprintf(`
listeners:
  - {name: shared, address: 127.0.0.1:0}
  - {name: grpc, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}
clusters: [{name: echo, endpoints: [%q]}]
routes: [{match: {service: edgegate.testing.v1.EchoService}, cluster: echo}]
%s`, addr, extra)
}

// normalCalls makes one unary call on each door of the shared port at
// addr in a loop until stop is closed, and returns the failures (the
// first error of each door) and the calls made.
func normalCalls(t *testing.T, addr string, stop <-chan struct{}) func() (calls int64, failed []string) {
	t.Helper()
	doors := []door{
		grpcDoor{testingv1.NewEchoServiceClient(Dial(t, addr))},
		webDoor{base: "http://" + addr},
		restDoor{base: "http://" + addr},
	}
	var n atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for _, d := range doors {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := d.unary(t, &testingv1.EchoRequest{Message: "normal"}, nil, 5*time.Second)
				n.Add(1)
				if r.st.Code() != 0 {
					mu.Lock()
					failures = append(failures, d.name()+": "+r.st.String())
					mu.Unlock()
					return
				}
			}
		})
	}
	return func() (int64, []string) {
		wg.Wait()
		return n.Load(), failures
	}
}

// expectGoAway waits for the GOAWAY that ends h and checks its code.
func expectGoAway(t *testing.T, h *attack.H2, code http2.ErrCode) *http2.GoAwayFrame {
	t.Helper()
	ga, err := h.GoAway(Patience)
	if err != nil {
		t.Fatalf("no GOAWAY: %v", err)
	}
	if ga.ErrCode != code {
		t.Fatalf("GOAWAY %v %q, want %v", ga.ErrCode, ga.DebugData(), code)
	}
	if !attack.Closed(h.Conn, Patience) {
		t.Fatal("the connection stayed open after GOAWAY")
	}
	return ga
}

// Before its first request a client gets its SETTINGS acknowledged and its
// PINGs answered at once (a client that pings first, or waits for the
// acknowledgement, is not left hanging), and exactly one acknowledgement
// of its SETTINGS, though the server it is handed to acknowledges them
// too. Point 8.
func TestEarlySettingsAndPingAcks(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, ""))
	for i, addr := range gw.Addrs() {
		t.Run([]string{"shared", "dedicated"}[i], func(t *testing.T) {
			h, err := attack.Dial(addr.String(), nil, []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 20}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			if err := h.Fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
				t.Fatal(err)
			}
			var acks, pings int
			if _, err := h.Frames(Patience, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						acks++
					}
				case *http2.PingFrame:
					if f.IsAck() && f.Data == [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
						pings++
					}
				}
				return acks == 1 && pings == 1
			}); err != nil {
				t.Fatalf("before any request: %d SETTINGS ACKs, %d PING ACKs: %v", acks, pings, err)
			}
			// A request on the same connection is served, and no second
			// acknowledgement of the client's SETTINGS comes with it.
			_ = h.Fr.WriteSettingsAck()
			req, _ := proto.Marshal(&testingv1.EchoRequest{Message: "after ping"})
			id, err := h.Open(attack.GRPC(addr.String(), "/edgegate.testing.v1.EchoService/Unary"), false)
			if err != nil {
				t.Fatal(err)
			}
			_ = h.Fr.WriteData(id, true, attack.Message(req))
			var status string
			if _, err := h.Frames(Patience, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						acks++
					}
				case *http2.MetaHeadersFrame:
					if s := f.PseudoValue("status"); s != "" || f.StreamEnded() {
						for _, hf := range f.Fields {
							if hf.Name == "grpc-status" {
								status = hf.Value
							}
						}
					}
				}
				return status != ""
			}); err != nil {
				t.Fatalf("the request was not answered: %v", err)
			}
			if status != "0" || acks != 1 {
				t.Errorf("grpc-status %q, %d SETTINGS ACKs; want 0 and exactly one", status, acks)
			}
		})
	}
}

// A connection without a request within limits.connection_timeout is sent
// GOAWAY NO_ERROR and closed, on the shared port and on a dedicated gRPC
// port alike (which kept such connections for max_connection_idle); an
// eagerly connected grpc-go client that idles past it reconnects on its
// next call, which succeeds. Points 8 and 14.
func TestIdleBeforeFirstRequest(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, "limits: {connection_timeout: 300ms}"))
	for i, addr := range gw.Addrs() {
		t.Run([]string{"shared", "dedicated"}[i], func(t *testing.T) {
			h, err := attack.Dial(addr.String(), nil, []http2.Setting{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			start := time.Now()
			ga := expectGoAway(t, h, http2.ErrCodeNo)
			if waited := time.Since(start); waited < 250*time.Millisecond {
				t.Errorf("closed after %v, before the connection timeout", waited)
			}
			if !strings.Contains(string(ga.DebugData()), "connection timeout") {
				t.Errorf("GOAWAY says %q", ga.DebugData())
			}
			conn := Dial(t, addr.String())
			conn.Connect()
			ctx := Ctx(t, Patience)
			for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
				if !conn.WaitForStateChange(ctx, s) {
					t.Fatal("never connected")
				}
			}
			// The connection is closed by the gateway while idle ...
			for s := conn.GetState(); s == connectivity.Ready; s = conn.GetState() {
				if !conn.WaitForStateChange(ctx, s) {
					t.Fatal("the idle connection was never closed")
				}
			}
			// ... and the next call connects again and succeeds.
			if _, err := testingv1.NewEchoServiceClient(conn).Unary(ctx, &testingv1.EchoRequest{Message: "later"}); err != nil {
				t.Fatalf("the call after the idle close failed: %v", err)
			}
		})
	}
}

// rssDelta runs attack against the gateway binary's shared port and
// returns how much its resident memory grew, and the normal calls'
// outcome meanwhile.
func rssDelta(t *testing.T, p *Proc, attack func()) int64 {
	t.Helper()
	before := rss(t, p)
	attack()
	return rss(t, p) - before
}

func rss(t *testing.T, p *Proc) int64 {
	t.Helper()
	kib, err := attack.RSSKiB(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

// The shared port's sniffer holds a bounded amount per connection before
// its first request: huge frames, header blocks padded with HPACK table
// size updates, PING floods and unknown frames are each ended with GOAWAY,
// eight connections at once, the gateway's memory stays within 32 MiB of
// where it was, and normal calls on every door go on. Point 1.
func TestSnifferMemoryBounded(t *testing.T) {
	up := StartEcho(t, "up")
	p := StartBinary(t, EchoConfig(up.Addr))
	sizeUpdates := bytes.Repeat([]byte{0x20}, 16384) // "dynamic table size: 0", 16 KiB of them
	attacks := []struct {
		name string
		code http2.ErrCode
		send func(h *attack.H2) error
	}{
		{"16 MiB frame", http2.ErrCodeFrameSize, func(h *attack.H2) error {
			hdr := []byte{0xff, 0xff, 0xff, byte(http2.FrameData), 0, 0, 0, 0, 1}
			_, err := h.Conn.Write(append(hdr, make([]byte, 64<<10)...))
			return err
		}},
		{"CONTINUATION of size updates", http2.ErrCodeEnhanceYourCalm, func(h *attack.H2) error {
			if err := h.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: sizeUpdates}); err != nil {
				return err
			}
			for range 1024 { // up to 16 MiB
				if err := h.Fr.WriteContinuation(1, false, sizeUpdates); err != nil {
					return nil // closed by the gateway: what the test waits for
				}
			}
			return nil
		}},
		{"PING flood", http2.ErrCodeEnhanceYourCalm, func(h *attack.H2) error {
			for i := range 10000 {
				if err := h.Fr.WritePing(false, [8]byte{byte(i)}); err != nil {
					return nil
				}
			}
			return nil
		}},
		{"unknown frames", http2.ErrCodeEnhanceYourCalm, func(h *attack.H2) error {
			for range 10000 {
				if err := h.Fr.WriteRawFrame(0x42, 0, 0, make([]byte, 16384)); err != nil {
					return nil
				}
			}
			return nil
		}},
	}
	stop := make(chan struct{})
	done := normalCalls(t, p.Addr, stop)
	grew := rssDelta(t, p, func() {
		var wg sync.WaitGroup
		for i := range 8 {
			a := attacks[i%len(attacks)]
			wg.Go(func() {
				h, err := attack.Dial(p.Addr, nil, []http2.Setting{})
				if err != nil {
					t.Error(err)
					return
				}
				defer func() { _ = h.Close() }()
				go func() { _ = a.send(h) }()
				start := time.Now()
				defer func() { t.Logf("%s: %v", a.name, time.Since(start)) }()
				ga, err := h.GoAway(Patience)
				if err != nil {
					t.Errorf("%s: no GOAWAY: %v", a.name, err)
					return
				}
				if ga.ErrCode != a.code {
					t.Errorf("%s: GOAWAY %v %q, want %v", a.name, ga.ErrCode, ga.DebugData(), a.code)
				}
			})
		}
		wg.Wait()
	})
	close(stop)
	calls, failed := done()
	t.Logf("RSS grew %d KiB", grew)
	if grew > 32<<10 {
		t.Errorf("RSS grew %d KiB during the attack, want at most 32 MiB", grew)
	}
	if len(failed) > 0 || calls == 0 {
		t.Errorf("normal calls during the attack: %d, failed: %v", calls, failed)
	}
}

// After the first request, a header block that never ends (CONTINUATION
// frames of HPACK size updates: the decoder does not count them) is ended
// at limits.max_header_block_bytes with GOAWAY ENHANCE_YOUR_CALM, on the
// shared and the dedicated port, having read little of it. Point 7.
func TestContinuationFloodAfterFirstRequest(t *testing.T) {
	afterFirstRequest(t, func(t *testing.T, h *attack.H2, id uint32) {
		sent := make(chan int64, 1)
		go func() {
			var n int64
			block := bytes.Repeat([]byte{0x20}, 16384)
			if err := h.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id + 2, BlockFragment: block}); err == nil {
				n += int64(len(block))
				for range 4096 { // up to 64 MiB
					if err := h.Fr.WriteContinuation(id+2, false, block); err != nil {
						break
					}
					n += int64(len(block))
				}
			}
			sent <- n
		}()
		expectGoAway(t, h, http2.ErrCodeEnhanceYourCalm)
		if n := <-sent; n > 8<<20 {
			t.Errorf("the gateway took %d bytes of the flood before it ended the connection", n)
		}
	})
}

// afterFirstRequest runs flood on a raw connection to each port of a
// gateway (the shared and the dedicated), after a first request on it
// (stream id), while normal calls go on beside it; they must all succeed.
func afterFirstRequest(t *testing.T, flood func(t *testing.T, h *attack.H2, id uint32)) {
	t.Helper()
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, ""))
	stop := make(chan struct{})
	done := normalCalls(t, gw.Addr, stop)
	for i, addr := range gw.Addrs() {
		t.Run([]string{"shared", "dedicated"}[i], func(t *testing.T) {
			h, id := firstRequest(t, addr.String())
			defer func() { _ = h.Close() }()
			flood(t, h, id)
		})
	}
	close(stop)
	if calls, failed := done(); len(failed) > 0 || calls == 0 {
		t.Errorf("normal calls during the attack: %d, failed: %v", calls, failed)
	}
}

// firstRequest opens a raw HTTP/2 connection to addr and sends a whole
// unary call on it (stream id), so that what follows comes after the
// connection's first request.
func firstRequest(t *testing.T, addr string) (*attack.H2, uint32) {
	t.Helper()
	h, err := attack.Dial(addr, nil, []http2.Setting{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := proto.Marshal(&testingv1.EchoRequest{Message: "first"})
	id, err := h.Open(attack.GRPC(addr, "/edgegate.testing.v1.EchoService/Unary"), false)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	_ = h.Fr.WriteData(id, true, attack.Message(req))
	return h, id
}

// A flood of PINGs after a first request (CVE-2019-9512), which costs the
// relay a PING ACK each, ends with GOAWAY ENHANCE_YOUR_CALM on both ports
// (with the default limits, at its fourth PING, by min_ping_interval's
// policy; the control-frame allowance, TestMaxControlFrames, bounds what
// that policy lets through); normal calls go on.
func TestPingFloodAfterFirstRequest(t *testing.T) {
	afterFirstRequest(t, func(t *testing.T, h *attack.H2, _ uint32) {
		sent := make(chan int, 1)
		go func() {
			n := 0
			for ; n < 200_000; n++ { // bounded: the allowance is 1,000 at once
				if h.Fr.WritePing(false, [8]byte{byte(n)}) != nil {
					break
				}
			}
			sent <- n
		}()
		expectGoAway(t, h, http2.ErrCodeEnhanceYourCalm)
		_ = h.Close()
		if n := <-sent; n >= 200_000 {
			t.Errorf("all %d PINGs were taken without the connection ending", n)
		}
	})
}

// HTTP/2 Rapid Reset (CVE-2023-44487): a client that opens streams and
// resets them at once, or sends whole calls in batches and resets them, is
// sent GOAWAY ENHANCE_YOUR_CALM once its premature resets pass
// limits.max_premature_resets (and half its streams), on the native door
// of both ports and on the HTTP/2 REST door; few of its calls reach the
// upstream, and normal calls go on. Point 3.
func TestRapidReset(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, "limits: {max_premature_resets: 50}\nlogging: {disable_access_log: true}"))
	stop := make(chan struct{})
	done := normalCalls(t, gw.Addr, stop)
	req, _ := proto.Marshal(&testingv1.EchoRequest{Message: "reset me"})
	body := attack.Message(req)
	addrs := gw.Addrs()
	for _, c := range []struct {
		name   string
		addr   string
		fields func(addr string) []hpack.HeaderField
		data   bool // the whole call (HEADERS and DATA), in batches of 100
	}{
		{"native shared, HEADERS+RST", addrs[0].String(), grpcFields, false},
		{"native dedicated, HEADERS+RST", addrs[1].String(), grpcFields, false},
		{"native shared, batches of whole calls", addrs[0].String(), grpcFields, true},
		{"REST over h2c, HEADERS+RST", addrs[0].String(), func(a string) []hpack.HeaderField {
			return attack.Request("POST", a, "/v1/echo:unary", "application/json")
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := up.Started()
			h, err := attack.Dial(c.addr, nil, []http2.Setting{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			pairs := make(chan int, 1)
			go func() {
				n := 0
				defer func() { pairs <- n }()
				for n < 20000 {
					batch := 1
					if c.data {
						batch = 100
					}
					ids := make([]uint32, 0, batch)
					for range batch {
						id, err := h.Open(c.fields(c.addr), false)
						if err != nil {
							return
						}
						if c.data {
							if err := h.Fr.WriteData(id, true, body); err != nil {
								return
							}
						}
						ids = append(ids, id)
					}
					for _, id := range ids {
						if err := h.Fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
							return
						}
						n++
					}
				}
			}()
			ga := expectGoAway(t, h, http2.ErrCodeEnhanceYourCalm)
			n := <-pairs
			if n >= 20000 {
				t.Fatalf("all %d resets were taken", n)
			}
			if !strings.Contains(string(ga.DebugData()), "reset") {
				t.Errorf("GOAWAY says %q", ga.DebugData())
			}
			if reached := up.Started() - before; reached > 300 {
				t.Errorf("%d of the attack's calls reached the upstream", reached)
			}
		})
	}
	close(stop)
	if calls, failed := done(); len(failed) > 0 || calls == 0 {
		t.Errorf("normal calls during the attack: %d, failed: %v", calls, failed)
	}
}

func grpcFields(addr string) []hpack.HeaderField {
	return attack.GRPC(addr, "/edgegate.testing.v1.EchoService/Unary")
}

// grpcStatus reads frames of h until stream id's answer carries a
// grpc-status, and returns it ("" when the stream was reset or the
// connection ended).
func grpcStatus(t *testing.T, h *attack.H2, id uint32) string {
	t.Helper()
	got := ""
	_, err := h.Frames(Patience, func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				for _, hf := range f.Fields {
					if hf.Name == "grpc-status" {
						got = hf.Value
					}
				}
			}
		case *http2.RSTStreamFrame:
			return f.StreamID == id
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.Fr.WriteSettingsAck()
			}
		}
		return got != ""
	})
	if err != nil {
		t.Fatalf("stream %d: %v", id, err)
	}
	return got
}

// A header list over limits.max_header_list_bytes (in a block within
// limits.max_header_block_bytes) is refused on its own stream with
// RESOURCE_EXHAUSTED, and the connection serves the next call. Point 12.
func TestOversizedHeaderPerCall(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, "limits: {max_header_list_bytes: 1024}"))
	for i, addr := range gw.Addrs() {
		t.Run([]string{"shared", "dedicated"}[i], func(t *testing.T) {
			h, err := attack.Dial(addr.String(), nil, []http2.Setting{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			id, err := h.Open(attack.GRPC(addr.String(), "/edgegate.testing.v1.EchoService/Unary", "x-big", strings.Repeat("a", 4096)), false)
			if err != nil {
				t.Fatal(err)
			}
			_ = h.Fr.WriteData(id, true, attack.Message(nil))
			if st := grpcStatus(t, h, id); st != "8" {
				t.Fatalf("oversized header list: grpc-status %q, want 8 (RESOURCE_EXHAUSTED)", st)
			}
			id, err = h.Open(attack.GRPC(addr.String(), "/edgegate.testing.v1.EchoService/Unary"), false)
			if err != nil {
				t.Fatal(err)
			}
			_ = h.Fr.WriteData(id, true, attack.Message(nil))
			if st := grpcStatus(t, h, id); st != "0" {
				t.Fatalf("the next call on the connection: grpc-status %q", st)
			}
		})
	}
}

// Slow request bodies (a Content-Length larger than what is sent, or a
// chunked body that never ends) do not take the listener's in-flight
// slots: while 200 of them are held against a limit of 50, REST, gRPC-Web
// and the OpenAPI spec are served; each slow request gets 408 once
// http.request_body_timeout has passed. Point 2.
func TestSlowBodiesDoNotTakeTheSlots(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"http: {max_in_flight: 50, request_body_timeout: 1s}\n")
	var conns []net.Conn
	for i := range 200 {
		path, ct := "/v1/echo:unary", "application/json"
		if i%2 == 1 {
			path, ct = "/edgegate.testing.v1.EchoService/Unary", "application/grpc-web+proto"
		}
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n{\"message\":", path, ct)
		if i%4 == 2 {
			head = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\n", path, ct)
		}
		c, err := attack.Raw(gw.Addr, head)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		defer func() { _ = c.Close() }()
	}
	start := time.Now()
	base := "http://" + gw.Addr
	if r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", `{"message":"normal"}`, nil); r.code != 200 {
		t.Errorf("REST during the slow bodies: %d %s", r.code, r.body)
	}
	if r := (webDoor{base: base}).unary(t, &testingv1.EchoRequest{Message: "normal"}, nil, 5*time.Second); r.st.Code() != 0 {
		t.Errorf("gRPC-Web during the slow bodies: %v", r.st)
	}
	if r := doHTTP(t, nil, "GET", base+"/openapi.json", "", nil); r.code != 200 {
		t.Errorf("/openapi.json during the slow bodies: %d", r.code)
	}
	if time.Since(start) >= time.Second {
		t.Fatalf("the normal calls took %v, past the body timeout: the slow bodies were no longer held", time.Since(start))
	}
	// Each slow request is answered 408 (gRPC-Web: DEADLINE_EXCEEDED) and
	// its connection closed.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(Patience))
		b, _ := io.ReadAll(c)
		got := string(b)
		switch {
		case i%2 == 0 && !strings.HasPrefix(got, "HTTP/1.1 408"):
			t.Fatalf("slow REST body %d: %q", i, got)
		case i%2 == 1 && !strings.Contains(got, "Grpc-Status: 4"):
			t.Fatalf("slow gRPC-Web body %d: %q", i, got)
		}
	}
}

// A request whose header list is over limits.max_header_list_bytes (in a
// block within limits.max_header_block_bytes) is answered on its own:
// 431 with a google.rpc.Status body on REST, over HTTP/1.1 and HTTP/2,
// RESOURCE_EXHAUSTED trailers-only on gRPC-Web; nothing is forwarded, and
// the HTTP/2 connection serves the next request. Point 12.
func TestOversizedHeaderPerRequest(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr)+"limits: {max_header_list_bytes: 1024}\n")
	base := "http://" + gw.Addr
	big := map[string]string{"X-Big": strings.Repeat("a", 4096)}
	before := up.Started()
	r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", `{"message":"big"}`, big)
	if r.code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(r.body), `"code":8`) || !strings.Contains(string(r.body), "limits.max_header_list_bytes") {
		t.Errorf("REST over HTTP/1.1: %d %s", r.code, r.body)
	}
	if w := (webDoor{base: base}).unary(t, &testingv1.EchoRequest{}, big, 5*time.Second); w.st.Code() != 8 {
		t.Errorf("gRPC-Web: %v", w.st)
	}
	h, err := attack.Dial(gw.Addr, nil, []http2.Setting{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	for i, size := range []int{4096, 10} {
		id, err := h.Open(attack.Request("GET", gw.Addr, "/v1/users/ada", "", "x-big", strings.Repeat("a", size)), true)
		if err != nil {
			t.Fatal(err)
		}
		code := ""
		if _, err := h.Frames(Patience, func(f http2.Frame) bool {
			if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == id {
				code = mh.PseudoValue("status")
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				_ = h.Fr.WriteSettingsAck()
			}
			return code != ""
		}); err != nil {
			t.Fatalf("REST over HTTP/2, request %d: %v", i, err)
		}
		// The second request is small: it passes the limit, and finds no
		// binding (the echo config routes no users service).
		if want := []string{"431", "404"}[i]; code != want {
			t.Errorf("REST over HTTP/2, request %d: %s, want %s", i, code, want)
		}
	}
	if _, err := testingv1.NewEchoServiceClient(Dial(t, gw.Addr)).Unary(WithMarker(Ctx(t, Patience), "after"), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if calls := up.StartedUntil(t, before, "after"); len(calls) != 0 {
		t.Errorf("an oversized request reached the upstream: %s", calls[0].Method)
	}
}

// A client's GOAWAY before its first request is not the end of the
// connection's life on the gateway's side: a PING sent after it is still
// answered (RFC 9113 §6.8: the endpoint goes on with the connection's
// other frames).
func TestEarlyGoAwayStillAnswered(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, attackConfig(up.Addr, ""))
	for i, addr := range gw.Addrs() {
		t.Run([]string{"shared", "dedicated"}[i], func(t *testing.T) {
			h, err := attack.Dial(addr.String(), nil, []http2.Setting{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			_ = h.Fr.WriteGoAway(0, http2.ErrCode(0x42), nil)
			_ = h.Fr.WritePing(false, [8]byte{9})
			if _, err := h.Frames(Patience, func(f http2.Frame) bool {
				p, ok := f.(*http2.PingFrame)
				return ok && p.IsAck() && p.Data == [8]byte{9}
			}); err != nil {
				t.Fatalf("no PING ACK after the client's GOAWAY: %v", err)
			}
		})
	}
}

// limits.max_control_frames sets the relay's control-frame allowance: 200
// PRIORITY frames after a first request end the connection with GOAWAY
// ENHANCE_YOUR_CALM under an allowance of 20, on both ports, and are
// taken under the default 1,000 (a PING after them is answered).
func TestMaxControlFrames(t *testing.T) {
	up := StartEcho(t, "up")
	for _, c := range []struct {
		limits string
		ends   bool
	}{{"limits: {max_control_frames: 20}", true}, {"", false}} {
		gw := StartGateway(t, attackConfig(up.Addr, c.limits))
		for i, addr := range gw.Addrs() {
			t.Run(fmt.Sprintf("%s/ends=%v", []string{"shared", "dedicated"}[i], c.ends), func(t *testing.T) {
				h, id := firstRequest(t, addr.String())
				defer func() { _ = h.Close() }()
				for range 200 {
					if err := h.Fr.WritePriority(id, http2.PriorityParam{Weight: 1}); err != nil {
						break // the gateway ended the connection
					}
				}
				if c.ends {
					expectGoAway(t, h, http2.ErrCodeEnhanceYourCalm)
					return
				}
				if err := h.Fr.WritePing(false, [8]byte{9}); err != nil {
					t.Fatal(err)
				}
				if _, err := h.Frames(Patience, func(f http2.Frame) bool {
					if ga, ok := f.(*http2.GoAwayFrame); ok {
						t.Fatalf("GOAWAY %v %q under the default allowance", ga.ErrCode, ga.DebugData())
					}
					p, ok := f.(*http2.PingFrame)
					return ok && p.IsAck()
				}); err != nil {
					t.Fatalf("no PING ACK after 200 PRIORITY frames: %v", err)
				}
			})
		}
	}
}
