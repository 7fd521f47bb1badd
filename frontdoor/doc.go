// Package frontdoor is the HTTP side of edgegate: one port that serves
// native gRPC, gRPC-Web and REST/JSON (the listener's server, sniff.go and
// listener.go), the HTTP handler in front of the doors (CORS, the
// in-flight limit, the body limit, the access log line of HTTP calls), the
// REST door (grpc-gateway over the in-process connection to the core), and
// the gRPC → HTTP error mapping. The gRPC-Web protocol is package
// frontdoor/grpcweb.
//
// A connection is told apart once, when it opens (sniff.go): HTTP/2 whose
// first request has content-type application/grpc goes to grpc.Server's
// own transport, untouched, so native gRPC costs the same as on a
// dedicated port; everything else goes to net/http, where each request is
// gRPC-Web (by content type) or REST (by path).
package frontdoor
