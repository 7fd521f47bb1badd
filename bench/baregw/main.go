// Command baregw is the baseline the REST door is measured against: the
// grpc-gateway v2 REST proxy a user would write by hand for the echo
// service, generated from the same protos, forwarding over one client
// connection. No policies, no logging.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve REST on")
	upstream := flag.String("upstream", "127.0.0.1:9104", "the echo upstream")
	flag.Parse()
	mux := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if err := testingv1.RegisterEchoServiceHandlerFromEndpoint(context.Background(), mux, *upstream, opts); err != nil {
		log.Fatal(err)
	}
	p := &http.Protocols{}
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	// ReadHeaderTimeout as the gateway's default (http.read_header_timeout).
	srv := &http.Server{Addr: *listen, Handler: mux, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
