// Package callmeta is the header and trailer metadata of a call that the
// gateway serves in-process (the REST door's in-process connection, the
// gRPC-Web door): what the chain and the proxy set with SetHeader,
// SendHeader and SetTrailer, kept until the door writes it.
package callmeta

import (
	"sync"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Meta is one call's header and trailer metadata. Its exported fields are
// guarded by Mu; the methods lock it themselves, the ...Locked ones expect
// it held.
type Meta struct {
	Mu         sync.Mutex
	Header     metadata.MD
	Trailer    metadata.MD
	HeaderSent bool
	Ended      bool // the handler returned: the trailer is taken
}

// SetHeader adds md to the header; an error once the header was sent.
func (m *Meta) SetHeader(md metadata.MD) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	return m.AddHeaderLocked(md)
}

// AddHeaderLocked adds md to the header unless it was sent; Mu is held.
func (m *Meta) AddHeaderLocked(md metadata.MD) error {
	if m.HeaderSent || m.Ended {
		// After the end too: the header was handed on, and Merge would
		// change it in place (grpc-go refuses it as well).
		return errHeaderSent
	}
	m.Header = Merge(m.Header, md)
	return nil
}

// AddHeaders adds to the header the values of kv, pairs of a key (lower
// case) and a value, without the metadata map SetHeader takes; an error
// once the header was sent.
func (m *Meta) AddHeaders(kv ...string) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	if m.HeaderSent || m.Ended {
		return errHeaderSent
	}
	if m.Header == nil {
		m.Header = make(metadata.MD, 4)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		old := m.Header[kv[i]]
		m.Header[kv[i]] = append(old[:len(old):len(old)], kv[i+1])
	}
	return nil
}

// AddHeaders adds to the header of ss's call the values of kv, pairs of a
// key (lower case) and a value: by Meta.AddHeaders when ss is a door's
// stream (or one that only wraps its context), else by one ss.SetHeader.
func AddHeaders(ss grpc.ServerStream, kv ...string) error {
	for {
		w, ok := ss.(*middleware.WrappedServerStream)
		if !ok {
			break
		}
		ss = w.ServerStream
	}
	if a, ok := ss.(interface{ AddHeaders(kv ...string) error }); ok {
		return a.AddHeaders(kv...)
	}
	return ss.SetHeader(metadata.Pairs(kv...))
}

var errHeaderSent = status.Error(codes.Internal, "edgegate: header already sent")

// SetTrailer adds md to the trailer, until the call ended (as grpc-go
// ignores a trailer set after the call's end).
func (m *Meta) SetTrailer(md metadata.MD) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	if !m.Ended {
		m.Trailer = Merge(m.Trailer, md)
	}
}

// End returns the call's header and trailer when its handler has
// returned; neither is changed after (Merge changes them in place).
func (m *Meta) End() (header, trailer metadata.MD) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	m.Ended = true
	return m.Header, m.Trailer
}

// Merge adds md's values to dst, which it makes when nil, and returns dst:
// metadata.Join, without a new map on every call (the chain sets headers
// two or three times a call). A key new to dst takes md's value slice
// itself (capped, so that a later value for the key is appended to a
// copy): the caller must not change md's values after.
func Merge(dst, md metadata.MD) metadata.MD {
	if len(md) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(metadata.MD, len(md)+2)
	}
	for k, vs := range md {
		if old := dst[k]; len(old) > 0 {
			dst[k] = append(old[:len(old):len(old)], vs...)
		} else {
			dst[k] = vs[:len(vs):len(vs)]
		}
	}
	return dst
}

// Stream is what a call served in-process offers grpc.SetHeader and
// friends.
type Stream interface {
	Method() string
	SetHeader(metadata.MD) error
	SendHeader(metadata.MD) error
	SetTrailer(metadata.MD)
}

// TransportStream is s as the grpc.ServerTransportStream of its call's
// context (grpc.NewContextWithServerTransportStream).
type TransportStream struct{ S Stream }

func (t TransportStream) Method() string                  { return t.S.Method() }
func (t TransportStream) SetHeader(md metadata.MD) error  { return t.S.SetHeader(md) }
func (t TransportStream) SendHeader(md metadata.MD) error { return t.S.SendHeader(md) }
func (t TransportStream) SetTrailer(md metadata.MD) error {
	t.S.SetTrailer(md)
	return nil
}
