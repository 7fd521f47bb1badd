package h2srv

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzSeeds are frame sequences a client sends after its preface and
// SETTINGS: requests with bodies and trailers, resets, settings, pings,
// window updates, padding, header blocks split over CONTINUATIONs.
func fuzzSeeds() [][]byte {
	var out [][]byte
	build := func(write func(fr *http2.Framer, block func(...hpack.HeaderField) []byte)) {
		var buf, hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		block := func(fs ...hpack.HeaderField) []byte {
			hbuf.Reset()
			for _, f := range fs {
				_ = enc.WriteField(f)
			}
			return bytes.Clone(hbuf.Bytes())
		}
		write(fr, block)
		out = append(out, buf.Bytes())
	}
	req := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "fuzz"}, {Name: ":path", Value: "/echo"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}}
	build(func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(req...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(hpack.HeaderField{Name: "x-trailer", Value: "1"}), EndHeaders: true, EndStream: true})
	})
	build(func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		b := block(req...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], PadLength: 4, Priority: http2.PriorityParam{StreamDep: 0, Weight: 7}})
		_ = fr.WriteContinuation(1, false, b[3:6])
		_ = fr.WriteContinuation(1, true, b[6:])
		_ = fr.WriteDataPadded(1, true, []byte("body"), []byte{0, 0, 0})
		_ = fr.WritePing(false, [8]byte{1, 2})
		_ = fr.WriteWindowUpdate(0, 1000)
	})
	build(func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		for id := uint32(1); id < 20; id += 2 {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(req...), EndHeaders: true})
			_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
		_ = fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(req...), EndHeaders: true, EndStream: true})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3})
		_ = fr.WriteWindowUpdate(1, 1<<31-1)
		_ = fr.WriteRawFrame(0x42, 0, 0, []byte("unknown"))
		_ = fr.WriteSettingsAck()
	})
	return out
}

// Arbitrary bytes after a valid preface and SETTINGS, against an echo
// handler: ServeConn never panics, never hangs (it returns once the
// client closes), and its goroutines end with it.
func FuzzServeConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{Handler: echo, MaxConcurrentStreams: 8, InitialWindowSize: 1 << 16, ConnWindowSize: 1 << 17}
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server, ConnOptions{}) }()
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		var pre bytes.Buffer
		pre.WriteString(http2.ClientPreface)
		_ = http2.NewFramer(&pre, nil).WriteSettings()
		if _, err := client.Write(pre.Bytes()); err == nil {
			_, _ = client.Write(in)
		}
		_ = client.Close()
		select {
		case err := <-done:
			_ = err // any end is fine; hanging is not
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the client closed")
		}
		<-drained
	})
}
