// Package frontdoor is the HTTP side of edgegate: one port that serves
// native gRPC, gRPC-Web and REST/JSON, the REST door (grpc-gateway over the
// in-process connection to the core), the gRPC-Web door (a wrapper around
// the core grpc.Server), CORS, and the gRPC → HTTP error mapping.
//
// A connection is told apart once, when it opens (sniff.go): HTTP/2 whose
// first request has content-type application/grpc goes to grpc.Server's
// own transport, untouched, so native gRPC costs the same as on a
// dedicated port; everything else goes to net/http, where each request is
// gRPC-Web (by content type) or REST (by path).
package frontdoor
