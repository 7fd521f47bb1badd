package test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/internal/testredis"
)

// limitedConfig routes the echo service through one rate limit policy.
func limitedConfig(upstream, policy string) string {
	cfg := strings.Replace(doorsConfig(upstream), "    cluster: echo\n", "    cluster: echo\n    rate_limits: [api]\n", 1)
	cfg = strings.Replace(cfg, "forward_request_headers: [x-custom]", "forward_request_headers: [x-custom, x-tenant]", 1)
	cfg = strings.Replace(cfg, "forward_request_headers: [x-custom, x-test-marker]", "forward_request_headers: [x-custom, x-test-marker, x-tenant]", 1)
	return cfg + "rate_limits:\n" + policy
}

func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

func TestRateLimitOnEveryDoor(t *testing.T) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, limitedConfig(up.Addr, `
  - name: api
    key: [{header: x-tenant}]
    limits: [{requests: 2, period: 1s}]
`))
	base := "http://" + gw.Addr
	doors := []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}}
	for i, d := range doors {
		t.Run(d.name(), func(t *testing.T) {
			tenant := map[string]string{"x-tenant": "t" + strconv.Itoa(i)}
			for n := range 2 {
				r := d.unary(t, &testingv1.EchoRequest{}, tenant, 0)
				if r.st.Code() != codes.OK {
					t.Fatalf("call %d: %v", n+1, r.st)
				}
				if d.name() != "grpc" && (r.header["ratelimit-policy"] != `"api";q=2;w=1` || !strings.HasPrefix(r.header["ratelimit"], `"api";r=`)) {
					t.Errorf("allowed call %d headers: policy %q state %q", n+1, r.header["ratelimit-policy"], r.header["ratelimit"])
				}
			}
			r := d.unary(t, &testingv1.EchoRequest{}, tenant, 0)
			if r.st.Code() != codes.ResourceExhausted || !strings.Contains(r.st.Message(), `rate limit "api" exceeded`) {
				t.Fatalf("call 3: %v, want RESOURCE_EXHAUSTED", r.st)
			}
			wait := retryDelay(r.st)
			if wait <= 0 || wait > time.Second {
				t.Fatalf("RetryInfo delay %v", wait)
			}
			var quota *errdetails.QuotaFailure
			for _, det := range r.st.Details() {
				if q, ok := det.(*errdetails.QuotaFailure); ok {
					quota = q
				}
			}
			if quota == nil || len(quota.GetViolations()) != 1 || quota.GetViolations()[0].GetSubject() != "policy:api" {
				t.Fatalf("QuotaFailure %v", quota)
			}
			ra, err := strconv.Atoi(r.header["retry-after"])
			if err != nil || time.Duration(ra)*time.Second < wait {
				t.Fatalf("retry-after %q, want at least the real wait %v", r.header["retry-after"], wait)
			}
			if r.header["ratelimit"] != `"api";r=0;t=1` {
				t.Errorf("ratelimit %q", r.header["ratelimit"])
			}
			if d.name() == "rest" && r.http != 429 {
				t.Errorf("HTTP %d, want 429", r.http)
			}
			// Another key is not limited.
			if r := d.unary(t, &testingv1.EchoRequest{}, map[string]string{"x-tenant": "other-" + d.name()}, 0); r.st.Code() != codes.OK {
				t.Fatalf("another tenant: %v", r.st)
			}
			// Waiting exactly the RetryInfo delay is enough.
			time.Sleep(wait) // the subject: time passing, exactly as long as the limiter said, frees the window
			if r := d.unary(t, &testingv1.EchoRequest{}, tenant, 0); r.st.Code() != codes.OK {
				t.Fatalf("after waiting %v: %v", wait, r.st)
			}
		})
	}
	mfs := scrape(t, gw)
	for _, door := range []string{"grpc", "grpc-web", "rest"} {
		if got := counter(t, mfs, "edgegate_policy_rejections_total", map[string]string{"kind": "ratelimit", "policy": "api", "door": door}); got != 1 {
			t.Errorf("rejections{door=%s} = %v, want 1", door, got)
		}
	}
}

// TestGlobalRateLimitThreeReplicas runs three gateways sharing one Redis:
// the total they admit stays within the limit, exactly (one atomic script
// per check, Redis time).
func TestGlobalRateLimitThreeReplicas(t *testing.T) {
	rs := testredis.Start(t)
	up := StartEcho(t, "up")
	policy := `
  - name: api
    key: [{client_ip: true}]
    limits: [{requests: 30, period: 1h}]
    backend: RATE_LIMIT_BACKEND_REDIS
redis: {address: %q, timeout: 200ms}
`
	var clients []testingv1.EchoServiceClient
	for range 3 {
		gw := StartGateway(t, limitedConfig(up.Addr, fmt.Sprintf(policy, rs.Addr)))
		clients = append(clients, testingv1.NewEchoServiceClient(Dial(t, gw.Addr)))
	}
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		c := clients[i%3]
		wg.Go(func() {
			for range 10 {
				_, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.ResourceExhausted:
					limited.Add(1)
				default:
					other.Add(1)
					t.Errorf("unexpected: %v", err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("3 replicas, 120 calls, limit 30: %d admitted, %d limited", ok.Load(), limited.Load())
	if ok.Load() != 30 || limited.Load() != 90 || other.Load() != 0 {
		t.Fatalf("admitted %d, limited %d, other %d: want exactly 30 admitted (tolerance 0)", ok.Load(), limited.Load(), other.Load())
	}
}

func TestRedisOutageFailModes(t *testing.T) {
	rs := testredis.Start(t)
	up := StartEcho(t, "up")
	cfg := strings.Replace(doorsConfig(up.Addr), "routes:\n", `routes:
  - {name: closed, match: {method: edgegate.testing.v1.EchoService/ServerStream}, cluster: echo, rate_limits: [closed]}
`, 1)
	cfg = strings.Replace(cfg, "    cluster: echo\n", "    cluster: echo\n    rate_limits: [open]\n", 1) + fmt.Sprintf(`
rate_limits:
  - {name: open, key: [{client_ip: true}], limits: [{requests: 1000, period: 1h}], backend: RATE_LIMIT_BACKEND_REDIS}
  - {name: closed, key: [{client_ip: true}], limits: [{requests: 1000, period: 1h}], backend: RATE_LIMIT_BACKEND_REDIS, fail_closed: true}
redis: {address: %q, timeout: 100ms}
`, rs.Addr)
	gw := StartGateway(t, cfg)
	c := testingv1.NewEchoServiceClient(Dial(t, gw.Addr))
	unary := func() error {
		_, err := c.Unary(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
		return err
	}
	stream := func() error {
		st, err := c.ServerStream(Ctx(t, 5*time.Second), &testingv1.EchoRequest{})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	if err := unary(); err != nil {
		t.Fatal(err)
	}
	if err := stream(); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	for range 3 {
		if err := unary(); err != nil {
			t.Fatalf("fail-open policy with Redis down: %v", err)
		}
		err := stream()
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), `rate limit "closed" cannot be checked`) {
			t.Fatalf("fail-closed policy with Redis down: %v", err)
		}
	}
	if got := counter(t, scrape(t, gw), "edgegate_ratelimit_store_failures_total", map[string]string{"policy": "closed"}); got < 3 {
		t.Errorf("store failures{closed} = %v, want >= 3", got)
	}
	if !strings.Contains(gw.Logs.String(), "rate limit store cannot decide") {
		t.Error("the outage was not logged")
	}
	rs.Restart()
	Eventually(t, Patience, func() error {
		if err := stream(); err != nil {
			return fmt.Errorf("the fail-closed policy did not recover after Redis came back: %w", err)
		}
		return nil
	})
}
