package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/edgegate/edgegate/internal/h2srv"
)

// BenchmarkRoundTrip measures a unary-shaped call on one connection, a
// call at a time: request headers, a 100-byte body with END_STREAM, the
// response's headers, body and trailers. The server is this module's
// engine (internal/h2srv) or net/http's HTTP/2 server; allocs/op count
// both ends of the call.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("h2srv", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &h2srv.Server{Handler: h2srv.HandlerFunc(unaryAnswer)}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { _ = srv.ServeConn(context.Background(), nc, h2srv.ConnOptions{}) })
			}
		})
		defer func() { _ = ln.Close(); _ = srv.Close(); wg.Wait() }()
		roundTrips(b, ln.Addr().String())
	})
	b.Run("net-http", func(b *testing.B) {
		roundTrips(b, startHTTP2(b, http.HandlerFunc(echo)))
	})
}

var (
	benchOK      = []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}
	benchTrailer = []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}
)

// unaryAnswer answers as a unary gRPC call does: headers, the request's
// body back, trailers, in one flush.
func unaryAnswer(st *h2srv.Stream) {
	var buf [512]byte
	n, err := io.ReadFull(st, buf[:])
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return
	}
	st.Cork()
	defer st.Uncork()
	if st.WriteHeaders(benchOK, false) != nil {
		return
	}
	if _, err := st.Write(buf[:n]); err != nil {
		return
	}
	_ = st.WriteTrailers(benchTrailer)
}

func roundTrips(b *testing.B, addr string) {
	c := dial(b, addr, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := request("/bench.Echo/Unary", "content-type", "application/grpc")
	prefix := []byte{0, 0, 0, 0, 95}
	body := bytes.Repeat([]byte{'m'}, 95)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		st, err := c.NewStream(ctx, h, false, true)
		if err != nil {
			b.Fatal(err)
		}
		err = st.Write(prefix, body, true)
		st.Uncork()
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.Header(); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			k, err := st.Read(buf[n:])
			n += k
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if n != 100 || len(st.Trailer()) == 0 {
			b.Fatalf("answer of %d bytes, trailer %v", n, st.Trailer())
		}
		st.Close()
	}
}
