package h2client

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzConn plays a server that answers a client's stream with arbitrary
// bytes after its SETTINGS: the client must neither panic nor hang, and
// its stream must end (answered, reset, or with the connection).
func FuzzConn(f *testing.F) {
	frame := func(t http2.FrameType, flags http2.Flags, id uint32, payload ...byte) []byte {
		b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), byte(t), byte(flags), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
		return append(b, payload...)
	}
	hdr := func(end bool, fields ...hpack.HeaderField) []byte {
		var b headerBytes
		e := hpack.NewEncoder(&b)
		for _, f := range fields {
			_ = e.WriteField(f)
		}
		fl := http2.FlagHeadersEndHeaders
		if end {
			fl |= http2.FlagHeadersEndStream
		}
		return frame(http2.FrameHeaders, fl, 1, b...)
	}
	ok := hpack.HeaderField{Name: ":status", Value: "200"}
	f.Add(hdr(true, ok, hpack.HeaderField{Name: "grpc-status", Value: "0"}))
	f.Add(append(append(hdr(false, ok), frame(http2.FrameData, 0, 1, 0, 0, 0, 0, 1, 'x')...), hdr(true, hpack.HeaderField{Name: "grpc-status", Value: "0"})...))
	f.Add(frame(http2.FrameRSTStream, 0, 1, 0, 0, 0, 7))
	f.Add(frame(http2.FrameGoAway, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(frame(http2.FrameWindowUpdate, 0, 1, 0x7f, 0xff, 0xff, 0xff))
	f.Add(frame(http2.FrameData, 0, 1, make([]byte, 100)...))
	f.Add(frame(http2.FramePushPromise, http2.FlagPushPromiseEndHeaders, 1, 0, 0, 0, 2))
	f.Add(frame(http2.FrameSettings, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff))
	f.Add(frame(http2.FrameContinuation, 0, 1, 1, 2, 3))
	f.Fuzz(func(t *testing.T, answer []byte) {
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { _ = srv.Close() }()
			go func() { _, _ = io.Copy(io.Discard, srv) }() // the client's frames
			fr := http2.NewFramer(srv, nil)
			if fr.WriteSettings() != nil {
				return
			}
			_, _ = srv.Write(answer)
		}()
		c := NewConn(cli, Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.NewStream(ctx, request("/fuzz"), true, false)
		if err == nil {
			if _, _, err = st.Header(); err == nil {
				_, _ = io.Copy(io.Discard, st)
			}
			st.Close()
		}
		_ = c.Close()
		<-c.Done()
		<-done
	})
}

type headerBytes []byte

func (b *headerBytes) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
