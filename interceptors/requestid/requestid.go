// Package requestid gives every call a request id: the client's
// x-request-id when it sends a usable one, else a new one. The id is put in
// the call's record (package callinfo), forwarded upstream and returned to
// the client in the response header x-request-id.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/callmeta"
)

// Key is the metadata key (and HTTP header) of the request id.
const Key = "x-request-id"

// MaxLen is the longest client-sent id accepted; a longer one is replaced.
const MaxLen = 128

var (
	prefix  = newPrefix()
	counter atomic.Uint64
)

func newPrefix() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("requestid: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:]) + "-"
}

// New returns a new id, unique within the process and, with a random
// per-process prefix, across processes.
func New() string {
	var n [13]byte // a uint64 in base 36
	var b strings.Builder
	b.Grow(len(prefix) + len(n))
	b.WriteString(prefix)
	b.Write(strconv.AppendUint(n[:0], counter.Add(1), 36))
	return b.String()
}

// Valid reports whether a client-sent id is usable: 1 to MaxLen printable
// ASCII characters without spaces.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// FromIncoming returns the id for a call with incoming metadata md: the
// client's own when Valid, else a new one.
func FromIncoming(md metadata.MD) string {
	if v := md.Get(Key); len(v) == 1 && Valid(v[0]) {
		return v[0]
	}
	return New()
}

// assign returns the call's request id, recorded in its record when it
// has one (made by the chain's first step, callinfo.Begin).
func assign(ctx context.Context) string {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return FromIncoming(callinfo.Incoming(ctx))
	}
	if info.RequestID == "" {
		info.SetRequestID(FromIncoming(callinfo.Incoming(ctx)))
	}
	return info.RequestID
}

// UnaryServerInterceptor assigns the call's request id and sets the response
// header. It always calls the handler.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs(Key, assign(ctx)))
		return handler(ctx, req)
	}
}

// StreamServerInterceptor assigns the call's request id and sets the
// response header. It always calls the handler.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		_ = callmeta.AddHeaders(ss, Key, assign(ss.Context()))
		return handler(srv, ss)
	}
}
