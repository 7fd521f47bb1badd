package discover

import (
	"fmt"

	refv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	refv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
)

// v1alphaStream is a grpc.reflection.v1alpha stream in v1 messages. The
// two versions' messages are the same but for their package, so a message
// of one is the other's encoding decoded.
type v1alphaStream struct {
	s refv1alpha.ServerReflection_ServerReflectionInfoClient
}

func (a v1alphaStream) CloseSend() error { return a.s.CloseSend() }

func (a v1alphaStream) Send(req *refv1.ServerReflectionRequest) error {
	out := &refv1alpha.ServerReflectionRequest{} //nolint:staticcheck // SA1019: v1alpha is deprecated, and spoken only to servers that serve nothing newer
	if err := convert(req, out); err != nil {
		return err
	}
	return a.s.Send(out)
}

func (a v1alphaStream) Recv() (*refv1.ServerReflectionResponse, error) {
	in, err := a.s.Recv()
	if err != nil {
		return nil, err
	}
	out := &refv1.ServerReflectionResponse{}
	if err := convert(in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func convert(from, to proto.Message) error {
	b, err := proto.Marshal(from)
	if err == nil {
		err = proto.Unmarshal(b, to)
	}
	if err != nil {
		return fmt.Errorf("convert %s to %s: %w", from.ProtoReflect().Descriptor().FullName(), to.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}
