// Package echo implements edgegate.testing.v1.EchoService, the upstream that
// edgegate's end-to-end tests and benchmarks run: every call type, with
// controls in the request for delays, failures and metadata echo.
package echo

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// Server is the echo service. Its methods are safe for concurrent use.
type Server struct {
	testingv1.UnimplementedEchoServiceServer
	// Name is returned in every response's server field.
	Name string
	// Start, when set, is called as every call starts, when its handler is
	// entered (for Unary and ServerStream, with the request read; for
	// ClientStream and Bidi, before any), with the call's context and the
	// method name; the handler goes on when it returns.
	Start func(ctx context.Context, method string)
	// Receive, when set, is called for every request message a call has
	// read, before the server acts on it (its delay, its fail_with).
	Receive func(ctx context.Context, method string, req *testingv1.EchoRequest)
	// Observe, when set, is called as every call ends, with the call's
	// context (its metadata, deadline, and error: non-nil when the client
	// cancelled or its deadline passed) and the method name ("Unary", …).
	Observe func(ctx context.Context, method string)
}

func (s *Server) start(ctx context.Context, method string) {
	if s.Start != nil {
		s.Start(ctx, method)
	}
}

func (s *Server) receive(ctx context.Context, method string, req *testingv1.EchoRequest) {
	if s.Receive != nil {
		s.Receive(ctx, method, req)
	}
}

func (s *Server) observe(ctx context.Context, method string) {
	if s.Observe != nil {
		s.Observe(ctx, method)
	}
}

// Unary answers one request.
func (s *Server) Unary(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	defer s.observe(ctx, "Unary")
	s.start(ctx, "Unary")
	s.receive(ctx, "Unary", req)
	if err := s.prepare(ctx, req, grpc.SetHeader, grpc.SetTrailer); err != nil {
		return nil, err
	}
	if err := wait(ctx, req); err != nil {
		return nil, err
	}
	if req.GetFailWith() != nil {
		return nil, status.FromProto(req.GetFailWith()).Err()
	}
	return s.response(req, 0), nil
}

// ServerStream sends max(repeat, 1) responses, waiting delay before each,
// then ends with fail_with when it is set.
func (s *Server) ServerStream(req *testingv1.EchoRequest, stream grpc.ServerStreamingServer[testingv1.EchoResponse]) error {
	ctx := stream.Context()
	defer s.observe(ctx, "ServerStream")
	s.start(ctx, "ServerStream")
	s.receive(ctx, "ServerStream", req)
	if err := s.prepareStream(ctx, req, stream); err != nil {
		return err
	}
	n := max(int(req.GetRepeat()), 1)
	for i := range n {
		if err := wait(ctx, req); err != nil {
			return err
		}
		if err := stream.Send(s.response(req, i)); err != nil {
			return err
		}
	}
	if req.GetFailWith() != nil {
		return status.FromProto(req.GetFailWith()).Err()
	}
	return nil
}

// ClientStream reads every request and answers once: messages joined by
// ",", payloads concatenated. The first request's controls apply.
func (s *Server) ClientStream(stream grpc.ClientStreamingServer[testingv1.EchoRequest, testingv1.EchoResponse]) error {
	ctx := stream.Context()
	defer s.observe(ctx, "ClientStream")
	s.start(ctx, "ClientStream")
	var (
		first    *testingv1.EchoRequest
		messages []string
		payload  []byte
	)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s.receive(ctx, "ClientStream", req)
		if first == nil {
			first = req
			if err := s.prepareStream(ctx, req, stream); err != nil {
				return err
			}
		}
		messages = append(messages, req.GetMessage())
		payload = append(payload, req.GetPayload()...)
	}
	if first == nil {
		first = &testingv1.EchoRequest{}
	}
	if err := wait(ctx, first); err != nil {
		return err
	}
	if first.GetFailWith() != nil {
		return status.FromProto(first.GetFailWith()).Err()
	}
	return stream.SendAndClose(&testingv1.EchoResponse{
		Message: strings.Join(messages, ","),
		Payload: payload,
		Index:   int32(len(messages)),
		Server:  s.Name,
	})
}

// Bidi answers every request with one response; a request with fail_with
// ends the call with that status.
func (s *Server) Bidi(stream grpc.BidiStreamingServer[testingv1.EchoRequest, testingv1.EchoResponse]) error {
	ctx := stream.Context()
	defer s.observe(ctx, "Bidi")
	s.start(ctx, "Bidi")
	for i := 0; ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.receive(ctx, "Bidi", req)
		if i == 0 {
			if err := s.prepareStream(ctx, req, stream); err != nil {
				return err
			}
		}
		if err := wait(ctx, req); err != nil {
			return err
		}
		if req.GetFailWith() != nil {
			return status.FromProto(req.GetFailWith()).Err()
		}
		if err := stream.Send(s.response(req, i)); err != nil {
			return err
		}
	}
}

func (s *Server) response(req *testingv1.EchoRequest, i int) *testingv1.EchoResponse {
	return &testingv1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Index: int32(i), Server: s.Name}
}

type headerSetter interface {
	SetHeader(metadata.MD) error
	SetTrailer(metadata.MD)
}

func (s *Server) prepareStream(ctx context.Context, req *testingv1.EchoRequest, st headerSetter) error {
	return s.prepare(ctx, req,
		func(_ context.Context, md metadata.MD) error { return st.SetHeader(md) },
		func(_ context.Context, md metadata.MD) error { st.SetTrailer(md); return nil })
}

// prepare sets the echoed metadata as header and trailer when asked to.
func (s *Server) prepare(ctx context.Context, req *testingv1.EchoRequest, setHeader, setTrailer func(context.Context, metadata.MD) error) error {
	if !req.GetEchoMetadata() {
		return nil
	}
	in, _ := metadata.FromIncomingContext(ctx)
	hdr, tlr := metadata.MD{}, metadata.MD{}
	for k, v := range in {
		if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" || k == "grpc-accept-encoding" {
			continue
		}
		hdr["echo-"+k] = v
		tlr["echo-trailer-"+k] = v
	}
	if err := setHeader(ctx, hdr); err != nil {
		return status.Errorf(codes.Internal, "set header: %v", err)
	}
	return setTrailer(ctx, tlr)
}

// wait sleeps for the request's delay, or until ctx ends.
func wait(ctx context.Context, req *testingv1.EchoRequest) error {
	d := req.GetDelay().AsDuration()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
