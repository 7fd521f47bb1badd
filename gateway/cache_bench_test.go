package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// BenchmarkCacheHit compares, per door, a unary call answered from the
// response cache with the same call forwarded to the upstream (a gateway
// whose route has no cache), over loopback sockets: client, gateway and
// upstream in this process.
func BenchmarkCacheHit(b *testing.B) {
	for _, mode := range []struct{ name, route string }{
		{"forwarded", ""},
		{"hit", "cache: {ttl: 1h, methods: [/edgegate.testing.v1.EchoService/Unary]}"},
	} {
		g := benchGatewayRoute(b, mode.route)
		addr := g.Addrs()[0].String()
		b.Run("grpc/"+mode.name, func(b *testing.B) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			c := testingv1.NewEchoServiceClient(conn)
			req := &testingv1.EchoRequest{Payload: make([]byte, 100)}
			benchLoop(b, func() error { _, err := c.Unary(context.Background(), req); return err })
		})
		frame, err := proto.Marshal(&testingv1.EchoRequest{Payload: make([]byte, 100)})
		if err != nil {
			b.Fatal(err)
		}
		web := append([]byte{0, 0, 0, 0, byte(len(frame))}, frame...)
		rest := `{"message":"` + strings.Repeat("x", 100) + `"}`
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		defer client.CloseIdleConnections()
		for _, d := range []struct{ name, path, ct, body string }{
			{"grpc-web", "/edgegate.testing.v1.EchoService/Unary", "application/grpc-web+proto", string(web)},
			{"rest", "/v1/echo:unary", "application/json", rest},
		} {
			b.Run(d.name+"/"+mode.name, func(b *testing.B) {
				benchLoop(b, func() error {
					resp, err := client.Post("http://"+addr+d.path, d.ct, strings.NewReader(d.body))
					if err != nil {
						return err
					}
					var buf bytes.Buffer
					_, _ = buf.ReadFrom(resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("%d %s", resp.StatusCode, buf.Bytes())
					}
					return nil
				})
			})
		}
	}
}

func benchLoop(b *testing.B, call func() error) {
	b.Helper()
	if err := call(); err != nil { // the miss, for the hit rows
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
}
