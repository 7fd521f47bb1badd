package discover

import (
	refv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	refv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// v1alphaStream is a grpc.reflection.v1alpha stream in v1 messages. It
// carries the requests Fetch sends and the responses they get; the two
// versions' messages are the same but for their package.
type v1alphaStream struct {
	s refv1alpha.ServerReflection_ServerReflectionInfoClient
}

func (a v1alphaStream) CloseSend() error { return a.s.CloseSend() }

func (a v1alphaStream) Send(req *refv1.ServerReflectionRequest) error {
	out := &refv1alpha.ServerReflectionRequest{Host: req.GetHost()}
	switch r := req.GetMessageRequest().(type) {
	case *refv1.ServerReflectionRequest_ListServices:
		out.MessageRequest = &refv1alpha.ServerReflectionRequest_ListServices{ListServices: r.ListServices}
	case *refv1.ServerReflectionRequest_FileByFilename:
		out.MessageRequest = &refv1alpha.ServerReflectionRequest_FileByFilename{FileByFilename: r.FileByFilename}
	case *refv1.ServerReflectionRequest_FileContainingSymbol:
		out.MessageRequest = &refv1alpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: r.FileContainingSymbol}
	}
	return a.s.Send(out)
}

// Recv converts the responses Fetch reads (files, the service list, an
// error); another kind arrives as an empty response.
func (a v1alphaStream) Recv() (*refv1.ServerReflectionResponse, error) {
	in, err := a.s.Recv()
	if err != nil {
		return nil, err
	}
	out := &refv1.ServerReflectionResponse{ValidHost: in.GetValidHost()}
	switch r := in.GetMessageResponse().(type) {
	case *refv1alpha.ServerReflectionResponse_FileDescriptorResponse:
		out.MessageResponse = &refv1.ServerReflectionResponse_FileDescriptorResponse{
			FileDescriptorResponse: &refv1.FileDescriptorResponse{FileDescriptorProto: r.FileDescriptorResponse.GetFileDescriptorProto()},
		}
	case *refv1alpha.ServerReflectionResponse_ListServicesResponse:
		var services []*refv1.ServiceResponse
		for _, s := range r.ListServicesResponse.GetService() {
			services = append(services, &refv1.ServiceResponse{Name: s.GetName()})
		}
		out.MessageResponse = &refv1.ServerReflectionResponse_ListServicesResponse{
			ListServicesResponse: &refv1.ListServiceResponse{Service: services},
		}
	case *refv1alpha.ServerReflectionResponse_ErrorResponse:
		out.MessageResponse = &refv1.ServerReflectionResponse_ErrorResponse{
			ErrorResponse: &refv1.ErrorResponse{
				ErrorCode:    r.ErrorResponse.GetErrorCode(),
				ErrorMessage: r.ErrorResponse.GetErrorMessage(),
			},
		}
	}
	return out, nil
}
