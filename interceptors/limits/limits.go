// Package limits holds the per-call edge limits the transports cannot
// answer per call themselves: a request's header list over
// limits.max_header_list_bytes gets RESOURCE_EXHAUSTED on its own stream
// (the transports accept header lists up to limits.max_header_block_bytes,
// so that such a call is refused with a status rather than its connection
// reset).
package limits

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// HeaderListSize is the size of md as HTTP/2 counts a header list (RFC
// 9113 §6.5.2): each field's name and value and 32 bytes.
func HeaderListSize(md metadata.MD) int {
	n := 0
	for k, vs := range md {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// check refuses a call whose incoming header list is over max.
func check(ctx context.Context, max int) error {
	if max <= 0 {
		return nil
	}
	if n := HeaderListSize(callinfo.Incoming(ctx)); n > max {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("edgegate: request header list is %d bytes, over the limit of %d (limits.max_header_list_bytes)", n, max))
	}
	return nil
}

// StreamServerInterceptor refuses calls whose header list is over max
// bytes with RESOURCE_EXHAUSTED; it calls the handler for the others.
func StreamServerInterceptor(max int) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := check(ss.Context(), max); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// UnaryServerInterceptor is StreamServerInterceptor for unary methods.
func UnaryServerInterceptor(max int) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := check(ctx, max); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}
