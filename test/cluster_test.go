package test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/examples/localcluster"
)

// TestLocalCluster is `make cluster-check`, shortened: three replicas of
// the built binary behind HAProxy (TCP mode, /readyz checks), one Redis.
// Calls from nine connections (three per door) spend one tenant's global
// limit: the replicas' metrics add up to the limit within 2 % (the Redis
// store is exact: 0 %). Then each replica is SIGTERMed and restarted in
// turn while every connection keeps calling: no call fails.
func TestLocalCluster(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatalf("haproxy is not on PATH (%v): run `make test-deps` to install it", err)
	}
	bin := binaries(t)
	shopd := filepath.Join(t.TempDir(), "shopd")
	if out, err := exec.Command("go", "build", "-o", shopd, "github.com/edgegate/edgegate/cmd/shopd").CombinedOutput(); err != nil {
		t.Fatalf("go build shopd: %v\n%s", err, out)
	}
	// The cluster's ports are picked free and then handed to its
	// processes: another test's listener can take one in between. A start
	// that lost a port that way is made again, on new ports.
	var c *localcluster.Cluster
	var err error
	for attempt := 1; ; attempt++ {
		c, err = localcluster.Start(Ctx(t, time.Minute), localcluster.Options{
			Dir: t.TempDir(), Edgegate: filepath.Join(bin, "edgegate"), Shopd: shopd, Limit: 90, Log: testLog{t},
		})
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("start %d lost a port: %v", attempt, err)
	}
	t.Cleanup(c.Stop)
	rep, err := c.Check(Ctx(t, 3*time.Minute), localcluster.CheckOptions{LimitCalls: 180})
	t.Log(rep.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Within(2) {
		t.Errorf("admitted %d, want within 2 %% of the limit %d", rep.Admitted, rep.Limit)
	}
	spread := 0
	for _, n := range rep.PerReplica {
		if n > 0 {
			spread++
		}
	}
	if spread != 3 {
		t.Errorf("admitted per replica %v: the load did not reach all three", rep.PerReplica)
	}
	if rep.CacheAsked != 2 || rep.CacheHits != 2 {
		t.Errorf("shared cache: %d of %d other replicas answered from the cache, want 2 of 2", rep.CacheHits, rep.CacheAsked)
	}
	if rep.RollingCalls == 0 || rep.Failed() != 0 {
		t.Errorf("rolling restart: %d calls, %d failed %v; want calls and none failed", rep.RollingCalls, rep.Failed(), rep.FirstFailures)
	}
}

// testLog writes the cluster's steps to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
