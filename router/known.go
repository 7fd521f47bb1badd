package router

import (
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// KnownUnary reports whether method ("/pkg.Service/Method") is one whose
// descriptor the gateway has (compiled in) and which takes one request and
// answers with one message. The proxy forwards such a call as a unary
// call, and the gRPC-Web door sends its answer whole when the call ends.
func KnownUnary(method string) bool {
	return unaryMethods()[method]
}

// unaryMethods is the set of compiled-in unary methods, by path, built on
// first use (after every package's init has registered its files).
var unaryMethods = sync.OnceValue(func() map[string]bool {
	out := make(map[string]bool)
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				if !m.IsStreamingClient() && !m.IsStreamingServer() {
					out["/"+string(s.FullName())+"/"+string(m.Name())] = true
				}
			}
		}
		return true
	})
	return out
})
