package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/test/attack"
)

// transcript is what a client saw of a call: enough to tell two servers
// apart.
type transcript struct {
	Code     codes.Code
	Message  string
	Details  int
	Header   map[string][]string
	Trailer  map[string][]string
	Messages []string
}

// comparedMD keeps the metadata a test compares: the echo- keys and the
// gateway's own (of the request id and the forwarded host, whose values
// differ per call or per listener, only their presence).
func comparedMD(md metadata.MD) map[string][]string {
	out := map[string][]string{}
	for k, v := range md {
		switch {
		case strings.HasSuffix(k, "x-request-id"), strings.HasSuffix(k, "x-forwarded-host"):
			out[k] = []string{"(set)"} // a value per call, or per listener
		case strings.HasPrefix(k, "echo-"), strings.HasPrefix(k, "ratelimit"), k == "retry-after":
			out[k] = v
		}
	}
	return out
}

func record(hdr, tlr metadata.MD, msgs []*testingv1.EchoResponse, err error) transcript {
	st := status.Convert(err)
	tr := transcript{Code: st.Code(), Message: st.Message(), Details: len(st.Details()), Header: comparedMD(hdr), Trailer: comparedMD(tlr)}
	for _, m := range msgs {
		tr.Messages = append(tr.Messages, fmt.Sprintf("%d:%s:%d", m.GetIndex(), m.GetMessage(), len(m.GetPayload())))
	}
	return tr
}

// The relay and grpc-go's server answer the same calls the same way:
// status, message and details, header and trailer metadata (-bin values
// included), messages, on unary and streaming calls, errors the gateway
// makes (deadline, no route, message and header list limits, rate limit
// with its headers), compressed requests, and the gateway's own services
// (health, reflection). Each case also says what it expects, so that two
// engines wrong the same way fail too.
func TestRelayAndGRPCGoAgree(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - {name: grpc-go, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_GRPC_GO}
  - {name: relay, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_RELAY}
  - {name: relay-dedicated, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_RELAY, protocols: [PROTOCOL_GRPC]}
clusters: [{name: echo, endpoints: [%q]}]
routes:
  - {name: limited, match: {method: edgegate.testing.v1.EchoService/ClientStream}, cluster: echo, rate_limits: [two]}
  - {match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
rate_limits: [{name: two, key: [{header: x-tenant}], limits: [{requests: 2, period: 1m}]}]
limits: {max_message_bytes: 65536, max_header_list_bytes: 4096}
logging: {disable_access_log: true}
`, up.Addr))
	type call func(t *testing.T, cc *grpc.ClientConn) transcript
	unary := func(req *testingv1.EchoRequest, md metadata.MD, timeout time.Duration, opts ...grpc.CallOption) call {
		return func(t *testing.T, cc *grpc.ClientConn) transcript {
			ctx := metadata.NewOutgoingContext(Ctx(t, Patience), md)
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			var hdr, tlr metadata.MD
			resp, err := testingv1.NewEchoServiceClient(cc).Unary(ctx, req, append(opts, grpc.Header(&hdr), grpc.Trailer(&tlr))...)
			var msgs []*testingv1.EchoResponse
			if err == nil {
				msgs = append(msgs, resp)
			}
			return record(hdr, tlr, msgs, err)
		}
	}
	bin := metadata.Pairs("x-note", "plain", "x-blob-bin", "\x00\xff binary", "x-twice", "a", "x-twice", "b")
	details, _ := status.New(codes.FailedPrecondition, "not now: 100% ünïcode").WithDetails(&spb.Status{Code: 1})
	cases := []struct {
		name string
		call call
		want func(tr transcript) error
	}{
		{"unary with metadata", unary(&testingv1.EchoRequest{Message: "hi", EchoMetadata: true}, bin, 0), func(tr transcript) error {
			if tr.Code != codes.OK || len(tr.Messages) != 1 || tr.Header["echo-x-blob-bin"] == nil || !slices.Equal(tr.Trailer["echo-trailer-x-twice"], []string{"a", "b"}) || tr.Header["x-request-id"] == nil {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"unary error with details", unary(&testingv1.EchoRequest{FailWith: details.Proto()}, nil, 0), func(tr transcript) error {
			if tr.Code != codes.FailedPrecondition || tr.Message != "not now: 100% ünïcode" || tr.Details != 1 {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"deadline", func(t *testing.T, cc *grpc.ClientConn) transcript {
			// The client's deadline and the gateway's end the call at the
			// same moment: what reaches the client first is a race, so
			// only the code is compared. The message is grpc-go's client's
			// "context deadline exceeded" when its own timer wins, the
			// gateway's status when its answer does, and on grpc-go's
			// server, which resets a stream whose deadline passed,
			// "stream terminated by RST_STREAM with error code: CANCEL".
			tr := unary(&testingv1.EchoRequest{Delay: durationpb.New(5 * time.Second)}, nil, 200*time.Millisecond)(t, cc)
			return transcript{Code: tr.Code}
		}, func(tr transcript) error {
			if tr.Code != codes.DeadlineExceeded {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"message over the limit", unary(&testingv1.EchoRequest{Payload: make([]byte, 100<<10)}, nil, 0), func(tr transcript) error {
			if tr.Code != codes.ResourceExhausted {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"header list over the limit", unary(&testingv1.EchoRequest{}, metadata.Pairs("x-big", strings.Repeat("x", 8000)), 0), func(tr transcript) error {
			if tr.Code != codes.ResourceExhausted || !strings.Contains(tr.Message, "max_header_list_bytes") {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"gzip request", unary(&testingv1.EchoRequest{Message: "zipped", Payload: make([]byte, 4000)}, nil, 0, grpc.UseCompressor(gzip.Name)), func(tr transcript) error {
			if tr.Code != codes.OK || len(tr.Messages) != 1 || tr.Messages[0] != "0:zipped:4000" {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"no route", func(t *testing.T, cc *grpc.ClientConn) transcript {
			err := cc.Invoke(Ctx(t, Patience), "/no.such.v1.Service/Method", &testingv1.EchoRequest{}, &testingv1.EchoResponse{})
			return record(nil, nil, nil, err)
		}, func(tr transcript) error {
			if tr.Code != codes.Unimplemented {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"server stream", func(t *testing.T, cc *grpc.ClientConn) transcript {
			s, err := testingv1.NewEchoServiceClient(cc).ServerStream(metadata.NewOutgoingContext(Ctx(t, Patience), bin), &testingv1.EchoRequest{Message: "s", Repeat: 5, EchoMetadata: true})
			if err != nil {
				return record(nil, nil, nil, err)
			}
			var msgs []*testingv1.EchoResponse
			for {
				m, err := s.Recv()
				if err != nil {
					if errors.Is(err, io.EOF) {
						err = nil
					}
					hdr, _ := s.Header()
					return record(hdr, s.Trailer(), msgs, err)
				}
				msgs = append(msgs, m)
			}
		}, func(tr transcript) error {
			if tr.Code != codes.OK || len(tr.Messages) != 5 || tr.Header["echo-x-note"] == nil {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"bidi", func(t *testing.T, cc *grpc.ClientConn) transcript {
			s, err := testingv1.NewEchoServiceClient(cc).Bidi(Ctx(t, Patience))
			if err != nil {
				return record(nil, nil, nil, err)
			}
			var msgs []*testingv1.EchoResponse
			for i := range 3 {
				if err := s.Send(&testingv1.EchoRequest{Message: fmt.Sprint("b", i)}); err != nil {
					break
				}
				m, err := s.Recv()
				if err != nil {
					break
				}
				msgs = append(msgs, m)
			}
			_ = s.CloseSend()
			_, err = s.Recv()
			if errors.Is(err, io.EOF) {
				err = nil
			}
			hdr, _ := s.Header()
			return record(hdr, s.Trailer(), msgs, err)
		}, func(tr transcript) error {
			if tr.Code != codes.OK || len(tr.Messages) != 3 {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"client stream, rate limited on the third", func(t *testing.T, cc *grpc.ClientConn) transcript {
			// x-tenant differs per engine (the test's name), so each
			// engine gets its own two calls.
			tenant := metadata.Pairs("x-tenant", t.Name())
			var last transcript
			for range 3 {
				var hdr metadata.MD
				s, err := testingv1.NewEchoServiceClient(cc).ClientStream(metadata.NewOutgoingContext(Ctx(t, Patience), tenant), grpc.Header(&hdr))
				if err != nil {
					return record(nil, nil, nil, err)
				}
				for i := range 3 {
					if s.Send(&testingv1.EchoRequest{Message: fmt.Sprint("c", i)}) != nil {
						break
					}
				}
				resp, err := s.CloseAndRecv()
				var msgs []*testingv1.EchoResponse
				if err == nil {
					msgs = append(msgs, resp)
				}
				last = record(hdr, s.Trailer(), msgs, err)
				// The remaining time differs between the engines' calls.
				last.Message, _, _ = strings.Cut(last.Message, ";")
				delete(last.Header, "ratelimit")
				delete(last.Header, "retry-after")
				if hdr.Get("retry-after") != nil {
					last.Header["retry-after"] = []string{"(set)"}
				}
			}
			return last
		}, func(tr transcript) error {
			if tr.Code != codes.ResourceExhausted || tr.Header["retry-after"] == nil || tr.Header["ratelimit-policy"] == nil {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"health", func(t *testing.T, cc *grpc.ClientConn) transcript {
			r, err := healthpb.NewHealthClient(cc).Check(Ctx(t, Patience), &healthpb.HealthCheckRequest{})
			return transcript{Code: status.Code(err), Message: r.GetStatus().String()}
		}, func(tr transcript) error {
			if tr.Code != codes.OK || tr.Message != "SERVING" {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
		{"reflection", func(t *testing.T, cc *grpc.ClientConn) transcript {
			s, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(Ctx(t, Patience))
			if err != nil {
				return record(nil, nil, nil, err)
			}
			if err := s.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
				return record(nil, nil, nil, err)
			}
			r, err := s.Recv()
			tr := record(nil, nil, nil, err)
			for _, svc := range r.GetListServicesResponse().GetService() {
				tr.Messages = append(tr.Messages, svc.GetName())
			}
			slices.Sort(tr.Messages)
			return tr
		}, func(tr transcript) error {
			if tr.Code != codes.OK || !slices.Contains(tr.Messages, "edgegate.testing.v1.EchoService") || !slices.Contains(tr.Messages, "grpc.health.v1.Health") {
				return fmt.Errorf("%+v", tr)
			}
			return nil
		}},
	}
	addrs := gw.Addrs()
	engines := []string{"grpc-go", "relay", "relay-dedicated"}
	conns := make([]*grpc.ClientConn, len(engines))
	for i := range engines {
		conns[i] = Dial(t, addrs[i].String())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := make([]transcript, len(engines))
			for i, e := range engines {
				t.Run(e, func(t *testing.T) {
					got[i] = c.call(t, conns[i])
					if err := c.want(got[i]); err != nil {
						t.Errorf("%s: %v", e, err)
					}
				})
			}
			for i := 1; i < len(engines); i++ {
				if a, b := fmt.Sprintf("%+v", got[0]), fmt.Sprintf("%+v", got[i]); a != b {
					t.Errorf("grpc-go and %s differ:\n%s\n%s", engines[i], a, b)
				}
			}
		})
	}
}

// The listener's keepalive limits (limits.keepalive) hold on both engines
// and both kinds of port: a quiet connection is pinged after
// keepalive.time and closed when the PING goes unanswered for
// keepalive.timeout; a client pinging more often than
// min_ping_interval is sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings" on
// its fourth PING after its call (grpc-go's server's policy, which the
// relay keeps); a connection max_connection_age old is sent GOAWAY
// NO_ERROR and, after max_connection_age_grace, closed, while a grpc-go
// client's calls on the same listener go on through its reconnections.
func TestKeepaliveLimitsBothEngines(t *testing.T) {
	up := StartEcho(t, "up")
	listeners := `
listeners:
  - {name: relay, address: 127.0.0.1:0}
  - {name: relay-dedicated, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}
  - {name: grpc-go, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_GRPC_GO}
  - {name: grpc-go-dedicated, address: 127.0.0.1:0, native_engine: NATIVE_ENGINE_GRPC_GO, protocols: [PROTOCOL_GRPC]}
clusters: [{name: echo, endpoints: [%q]}]
routes: [{match: {service: edgegate.testing.v1.EchoService}, cluster: echo}]
logging: {disable_access_log: true}
limits: {keepalive: %s}
`
	names := []string{"relay", "relay-dedicated", "grpc-go", "grpc-go-dedicated"}
	// eachListener runs f on every listener of a gateway with these
	// keepalive limits, the listeners in parallel.
	eachListener := func(t *testing.T, keepalive string, f func(t *testing.T, addr string)) {
		gw := StartGateway(t, fmt.Sprintf(listeners, up.Addr, keepalive))
		for i, addr := range gw.Addrs() {
			t.Run(names[i], func(t *testing.T) {
				t.Parallel()
				f(t, addr.String())
			})
		}
	}

	t.Run("too_many_pings", func(t *testing.T) {
		eachListener(t, "{min_ping_interval: 1h}", func(t *testing.T, addr string) {
			h, _ := firstRequest(t, addr)
			defer func() { _ = h.Close() }()
			for n := range 4 { // the first after the answer is free; two strikes; the third ends it
				if err := h.Fr.WritePing(false, [8]byte{byte(n)}); err != nil {
					t.Fatal(err)
				}
			}
			if ga := expectGoAway(t, h, http2.ErrCodeEnhanceYourCalm); string(ga.DebugData()) != "too_many_pings" {
				t.Errorf("GOAWAY debug data %q, want too_many_pings", ga.DebugData())
			}
		})
	})

	t.Run("keepalive_ping", func(t *testing.T) {
		eachListener(t, "{time: 1s, timeout: 1s}", func(t *testing.T, addr string) {
			h, _ := firstRequest(t, addr)
			defer func() { _ = h.Close() }()
			// Quiet for keepalive.time: the gateway pings; unanswered
			// for keepalive.timeout, the connection is closed.
			if _, err := h.Frames(Patience, func(f http2.Frame) bool {
				p, ok := f.(*http2.PingFrame)
				return ok && !p.IsAck()
			}); err != nil {
				t.Fatalf("no keepalive PING: %v", err)
			}
			if !attack.Closed(h.Conn, Patience) {
				t.Fatal("the connection stayed open with its keepalive PING unanswered")
			}
		})
	})

	t.Run("max_connection_age", func(t *testing.T) {
		eachListener(t, "{max_connection_age: 300ms, max_connection_age_grace: 200ms}", func(t *testing.T, addr string) {
			h, err := attack.Dial(addr, nil, []http2.Setting{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			// A call left open: the grace ends it with the connection.
			if _, err := h.Open(attack.GRPC(addr, "/edgegate.testing.v1.EchoService/ClientStream"), false); err != nil {
				t.Fatal(err)
			}
			ga, err := h.GoAway(Patience)
			if err != nil || ga.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAY %v (%v), want NO_ERROR", ga, err)
			}
			if !attack.Closed(h.Conn, Patience) {
				t.Fatal("the connection stayed open past max_connection_age_grace")
			}
			// A grpc-go client's calls for a second, across three ages
			// or so, all succeed.
			c := testingv1.NewEchoServiceClient(Dial(t, addr))
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				ctx, cancel := context.WithTimeout(Ctx(t, Patience), 5*time.Second)
				_, err := c.Unary(ctx, &testingv1.EchoRequest{Message: "aging"}, grpc.WaitForReady(true))
				cancel()
				if err != nil {
					t.Fatalf("a call while connections age: %v", err)
				}
			}
		})
	})
}
