package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/edgegate/edgegate/router"

	// The descriptors of the compiled-in API, for server reflection.
	_ "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	_ "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	_ "github.com/edgegate/edgegate/gen/shop/orders/v1"
	_ "github.com/edgegate/edgegate/gen/shop/users/v1"
)

// reflectionServices lists, for server reflection, the gateway's own
// services and every compiled-in service with at least one routed method
// (with only those methods). Services the gateway has no descriptor for are
// proxied, but not listed.
type reflectionServices struct {
	server *grpc.Server
	proxy  *router.Proxy
}

func (r *reflectionServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := r.server.GetServiceInfo()
	table := r.proxy.Snapshot().Table
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := range svcs.Len() {
			sd := svcs.Get(i)
			name := string(sd.FullName())
			if _, own := out[name]; own {
				continue
			}
			var methods []grpc.MethodInfo
			ms := sd.Methods()
			for j := range ms.Len() {
				md := ms.Get(j)
				if table.Lookup("/"+name+"/"+string(md.Name())) != nil {
					methods = append(methods, grpc.MethodInfo{
						Name:           string(md.Name()),
						IsClientStream: md.IsStreamingClient(),
						IsServerStream: md.IsStreamingServer(),
					})
				}
			}
			if len(methods) > 0 {
				out[name] = grpc.ServiceInfo{Methods: methods, Metadata: fd.Path()}
			}
		}
		return true
	})
	return out
}
