package router

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/upstream"
)

func TestUpstreamError(t *testing.T) {
	pool, err := upstream.New([]upstream.Spec{{Config: &configv1.Cluster{Name: "users", Endpoints: []string{"127.0.0.1:1"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	cl := pool.Get("users")

	withDetails, err := status.New(codes.NotFound, "no such user").WithDetails(&errdetails.ResourceInfo{ResourceName: "users/7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		err     error
		want    *status.Status
		logged  bool
		private string // must not reach the client
	}{
		{
			name:    "transport failure",
			err:     status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""),
			want:    status.New(codes.Unavailable, `edgegate: upstream cluster "users" is unavailable`),
			logged:  true,
			private: "127.0.0.1:1",
		},
		{
			// grpc-go passes a socket error on as it is (a TLS 1.3 upstream
			// that refused the client certificate after the handshake).
			name:    "socket error",
			err:     status.Error(codes.Unavailable, "write tcp 127.0.0.1:49532->127.0.0.1:45335: write: broken pipe"),
			want:    status.New(codes.Unavailable, `edgegate: upstream cluster "users" is unavailable`),
			logged:  true,
			private: "127.0.0.1:45335",
		},
		{
			name:    "connection reset",
			err:     status.Error(codes.Unavailable, "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"),
			want:    status.New(codes.Unavailable, `edgegate: upstream cluster "users" is unavailable`),
			logged:  true,
			private: "127.0.0.1:2",
		},
		{
			name:   "no addresses",
			err:    status.Error(codes.Unavailable, "produced zero addresses"),
			want:   status.New(codes.Unavailable, `edgegate: upstream cluster "users" is unavailable`),
			logged: true,
		},
		{
			name: "upstream's own unavailable",
			err:  status.Error(codes.Unavailable, "shard 3 is rebalancing"),
			want: status.New(codes.Unavailable, "shard 3 is rebalancing"),
		},
		{
			name: "upstream status with details",
			err:  withDetails.Err(),
			want: withDetails,
		},
		{
			name: "not a status",
			err:  errors.New("boom"),
			want: status.New(codes.Unknown, "boom"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := NewProxy(nil, ProxyOptions{Log: slog.New(slog.NewJSONHandler(&logs, nil))})
			got := status.Convert(p.upstreamError(context.Background(), tc.err, cl, "/users.v1.S/Get"))
			if !proto.Equal(got.Proto(), tc.want.Proto()) {
				t.Errorf("upstreamError = %v, want %v", got.Proto(), tc.want.Proto())
			}
			if tc.private != "" && strings.Contains(got.Message(), tc.private) {
				t.Errorf("client message %q reveals %q", got.Message(), tc.private)
			}
			if logged := logs.Len() > 0; logged != tc.logged {
				t.Errorf("logged = %v, want %v: %s", logged, tc.logged, logs.String())
			}
			if tc.logged {
				for _, s := range []string{`"cluster":"users"`, `"method":"/users.v1.S/Get"`, "upstream unavailable"} {
					if !strings.Contains(logs.String(), s) {
						t.Errorf("log %s lacks %s", logs.String(), s)
					}
				}
			}
		})
	}
}

// Once the header is sent, it stays sent: a second SendHeader and a later
// SetHeader fail, on the in-process stream (the gRPC-Web door's stream has
// the same test, frontdoor/grpcweb).
func TestHeaderSentOnce(t *testing.T) {
	for name, ss := range map[string]interface {
		SetHeader(metadata.MD) error
		SendHeader(metadata.MD) error
	}{
		"unary or pipe": &serverSide{},
	} {
		if err := ss.SendHeader(metadata.Pairs("a", "1")); err != nil {
			t.Fatalf("%s: first SendHeader: %v", name, err)
		}
		if err := ss.SendHeader(metadata.Pairs("b", "2")); status.Code(err) != codes.Internal {
			t.Errorf("%s: second SendHeader: %v, want INTERNAL", name, err)
		}
		if err := ss.SetHeader(metadata.Pairs("c", "3")); status.Code(err) != codes.Internal {
			t.Errorf("%s: SetHeader after sending: %v, want INTERNAL", name, err)
		}
	}
}
