package testredis

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// WaitFor polls cond every 20ms until it returns nil, failing t with cond's
// last error after d: it waits on a state of Redis (a cluster that is ok, a
// promoted replica), never for a fixed time.
func WaitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of three masters (no replicas) on loopback,
// owned by one test.
type Cluster struct {
	Nodes []*Server
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return a
}

// StartCluster starts three redis-servers in cluster mode, joins them with
// `redis-cli --cluster create` (the 16384 slots split in three) and waits
// until every node reports cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range 3 {
		c.Nodes = append(c.Nodes, launch(t, func(dir, port string) ([]string, []string) {
			return nil, []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf"),
				"--cluster-node-timeout", "2000"}
		}))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	WaitFor(t, 20*time.Second, func() error {
		for _, n := range c.Nodes {
			if info := n.CLI("cluster", "info"); !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %s: not ok yet:\n%s", n.Addr, info)
			}
		}
		return nil
	})
	return c
}

// Sentinel is a Redis master with one replica, watched by one Redis
// Sentinel (quorum 1) that declares the master down after 500ms without an
// answer and then promotes the replica. It is owned by one test.
type Sentinel struct {
	t          testing.TB
	MasterName string  // "edgegate"
	Master     *Server // the master at start
	Replica    *Server // its replica at start
	Sentinel   *Server // the sentinel
}

// StartSentinel starts the master, the replica and the sentinel, and waits
// until the replica is in sync and the sentinel knows it (so that a
// failover can promote it).
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t, MasterName: "edgegate", Master: Start(t)}
	s.Replica = launch(t, func(string, string) ([]string, []string) {
		return nil, []string{"--replicaof", "127.0.0.1", s.Master.Port()}
	})
	s.Sentinel = launch(t, func(dir, _ string) ([]string, []string) {
		conf := filepath.Join(dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // a restart keeps what the sentinel rewrote
			body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]s 1\n"+
				"sentinel down-after-milliseconds %[1]s 500\n"+
				"sentinel failover-timeout %[1]s 5000\n"+
				"sentinel parallel-syncs %[1]s 1\n", s.MasterName, s.Master.Port())
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// redis-server CONF --sentinel: the config file comes first.
		return []string{conf}, []string{"--sentinel"}
	})
	WaitFor(t, 20*time.Second, func() error {
		if info := s.Replica.CLI("info", "replication"); !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica %s not in sync:\n%s", s.Replica.Addr, info)
		}
		if out := s.Sentinel.CLI("sentinel", "replicas", s.MasterName); !strings.Contains(out, s.Replica.Port()) {
			return fmt.Errorf("sentinel does not know the replica yet:\n%s", out)
		}
		return nil
	})
	return s
}

// MasterAddr is the master's address as the sentinel tells it now.
func (s *Sentinel) MasterAddr() string {
	s.t.Helper()
	out := strings.Fields(s.Sentinel.CLI("sentinel", "get-master-addr-by-name", s.MasterName))
	if len(out) != 2 {
		s.t.Fatalf("sentinel get-master-addr-by-name: %q", out)
	}
	return out[0] + ":" + out[1]
}

// Failover kills the master (SIGKILL, like a crash) and waits until the
// sentinel has promoted the replica: it names the replica as master and the
// replica reports role:master.
func (s *Sentinel) Failover() {
	s.t.Helper()
	s.Master.Kill()
	WaitFor(s.t, 30*time.Second, func() error {
		if got := s.MasterAddr(); got != s.Replica.Addr {
			return fmt.Errorf("sentinel names master %s, want the replica %s", got, s.Replica.Addr)
		}
		if info := s.Replica.CLI("info", "replication"); !strings.Contains(info, "role:master") {
			return fmt.Errorf("replica not promoted yet:\n%s", info)
		}
		return nil
	})
}
