package router

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Once an in-process call has ended, its header and trailer were handed
// to the caller: a header or trailer set later (by a goroutine that
// outlived the handler) is refused or ignored, as grpc-go does, and the
// caller's maps do not change.
func TestMetadataAfterEnd(t *testing.T) {
	var saved grpc.ServerStream
	ip := NewInProcess(nil, func(_ any, ss grpc.ServerStream) error {
		saved = ss
		if err := ss.SetHeader(metadata.Pairs("x-h", "1")); err != nil {
			return err
		}
		ss.SetTrailer(metadata.Pairs("x-t", "1"))
		return status.Error(codes.NotFound, "no")
	})
	var hdr, tlr metadata.MD
	err := ip.Invoke(context.Background(), "/pkg.Svc/Method", &Frame{}, &Frame{}, grpc.Header(&hdr), grpc.Trailer(&tlr))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Invoke: %v, want NOT_FOUND", err)
	}
	if err := saved.SetHeader(metadata.Pairs("x-late", "1")); err == nil {
		t.Error("SetHeader after the call ended: no error")
	}
	saved.SetTrailer(metadata.Pairs("x-late", "1"))
	if len(hdr) != 1 || hdr.Get("x-h")[0] != "1" || len(tlr) != 1 || tlr.Get("x-t")[0] != "1" {
		t.Errorf("after the call: header %v, trailer %v; want x-h and x-t only", hdr, tlr)
	}
}
