package test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/internal/testredis"
)

// replicaDoors starts n gateways on cfg and returns every door of each,
// replica by replica.
func replicaDoors(t *testing.T, n int, cfg string) [][]door {
	t.Helper()
	var all [][]door
	for range n {
		gw := StartGateway(t, cfg)
		base := "http://" + gw.Addr
		all = append(all, []door{grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))}, webDoor{base: base}, restDoor{base: base}})
	}
	return all
}

// TestGlobalRateLimitRedisCluster runs three gateways on a real
// three-master Redis Cluster, a policy of two limits (two Redis keys per
// check, which a Cluster takes in one script only when they share a hash
// slot): for each door, tenants whose calls go round the three replicas get
// exactly their limit, and no check fails.
func TestGlobalRateLimitRedisCluster(t *testing.T) {
	cluster := testredis.StartCluster(t)
	up := StartEcho(t, "up")
	cfg := limitedConfig(up.Addr, fmt.Sprintf(`
  - name: api
    key: [{header: x-tenant}]
    limits: [{requests: 4, period: 1h}, {requests: 1000, period: 24h}]
    backend: RATE_LIMIT_BACKEND_REDIS
    fail_closed: true
redis: {cluster: {addresses: [%q]}, timeout: 500ms}
`, cluster.Nodes[0].Addr))
	replicas := replicaDoors(t, 3, cfg)
	for di, name := range []string{"grpc", "grpc-web", "rest"} {
		t.Run(name, func(t *testing.T) {
			for tenant := range 6 { // six tenants: keys on more than one node
				md := map[string]string{"x-tenant": fmt.Sprintf("%s-%d", name, tenant)}
				var ok, limited int
				for call := range 7 {
					r := replicas[call%3][di].unary(t, &testingv1.EchoRequest{}, md, 5*time.Second)
					switch r.st.Code() {
					case codes.OK:
						ok++
					case codes.ResourceExhausted:
						limited++
					default:
						t.Fatalf("tenant %d call %d: %v", tenant, call+1, r.st)
					}
				}
				if ok != 4 || limited != 3 {
					t.Errorf("tenant %d: %d admitted, %d limited over three replicas; want exactly 4 and 3", tenant, ok, limited)
				}
			}
		})
	}
	spread := 0
	for _, n := range cluster.Nodes {
		if n.CLI("--scan", "--pattern", "edgegate:rl:*") != "" {
			spread++
		}
	}
	if spread < 2 {
		t.Errorf("limit keys on %d node(s) of 3: the tenants were not spread over the Cluster", spread)
	}
}

// TestGlobalRateLimitSentinelFailover runs three gateways on a Redis master
// watched by Sentinel. Half the limit is spent, replicated (WAIT), then the
// master is killed; once the sentinel has promoted the replica, calls go
// on and the limit keeps counting from where it was: over the whole run,
// on every door, exactly the limit is admitted. While the failover runs, a
// fail-closed policy refuses calls with UNAVAILABLE (never admits one
// uncounted).
func TestGlobalRateLimitSentinelFailover(t *testing.T) {
	s := testredis.StartSentinel(t)
	up := StartEcho(t, "up")
	cfg := limitedConfig(up.Addr, fmt.Sprintf(`
  - name: api
    key: [{header: x-tenant}]
    limits: [{requests: 10, period: 1h}]
    backend: RATE_LIMIT_BACKEND_REDIS
    fail_closed: true
redis: {sentinel: {master_name: %q, addresses: [%q]}, timeout: 300ms}
`, s.MasterName, s.Sentinel.Addr))
	replicas := replicaDoors(t, 3, cfg)
	doorNames := []string{"grpc", "grpc-web", "rest"}
	admitted := map[string]int{}
	call := func(di, n int) codes.Code {
		md := map[string]string{"x-tenant": doorNames[di]}
		r := replicas[n%3][di].unary(t, &testingv1.EchoRequest{}, md, 5*time.Second)
		switch r.st.Code() {
		case codes.OK:
			admitted[doorNames[di]]++
		case codes.ResourceExhausted, codes.Unavailable:
		default:
			t.Fatalf("%s: %v", doorNames[di], r.st)
		}
		return r.st.Code()
	}
	for di := range doorNames {
		for n := range 5 {
			if c := call(di, n); c != codes.OK {
				t.Fatalf("%s call %d before the failover: %v", doorNames[di], n+1, c)
			}
		}
	}
	if got := s.Master.CLI("wait", "1", "5000"); got != "1" {
		t.Fatalf("WAIT 1: %s replicas acknowledged the writes", got)
	}
	s.Failover()
	for di, name := range doorNames {
		// Calls until the limit refuses one: UNAVAILABLE while the
		// gateways find the new master, then OK, then RESOURCE_EXHAUSTED.
		unavailable := 0
		for n := 0; ; n++ {
			c := call(di, n)
			if c == codes.ResourceExhausted {
				break
			}
			if c == codes.Unavailable {
				unavailable++
			}
			if n >= 300 {
				t.Fatalf("%s: no RESOURCE_EXHAUSTED in 300 calls after the failover (%d admitted, %d unavailable)", name, admitted[name], unavailable)
			}
		}
		t.Logf("%s: %d admitted in all, %d refused as UNAVAILABLE during the failover", name, admitted[name], unavailable)
		if admitted[name] != 10 {
			t.Errorf("%s: %d admitted across the failover, want exactly the limit, 10", name, admitted[name])
		}
	}
}
