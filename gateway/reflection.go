package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/edgegate/edgegate/router"
)

// reflectionServices lists, for server reflection, the gateway's own
// services and every service of the schema in force (compiled in, from a
// descriptor set, or discovered from a cluster's reflection) with its
// routed methods. A service the gateway has no descriptor for is proxied,
// but not listed.
type reflectionServices struct {
	server *grpc.Server
	proxy  *router.Proxy
}

func (r *reflectionServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := r.server.GetServiceInfo()
	for _, s := range r.proxy.Snapshot().Schema.Services() {
		name := string(s.Desc.FullName())
		if _, own := out[name]; own {
			continue
		}
		var methods []grpc.MethodInfo
		for _, m := range s.Methods {
			if m.Routed {
				methods = append(methods, grpc.MethodInfo{
					Name:           string(m.Desc.Name()),
					IsClientStream: m.Desc.IsStreamingClient(),
					IsServerStream: m.Desc.IsStreamingServer(),
				})
			}
		}
		out[name] = grpc.ServiceInfo{Methods: methods, Metadata: s.Desc.ParentFile().Path()}
	}
	return out
}

// schemaResolver finds descriptors for the reflection service in the
// schema in force, then among the files compiled into the gateway (its
// own services: health, reflection).
type schemaResolver struct{ proxy *router.Proxy }

func (r schemaResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.proxy.Snapshot().Schema.Files().FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r schemaResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.proxy.Snapshot().Schema.Files().FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
