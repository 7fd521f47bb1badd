package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/edgegate/edgegate/internal/testredis"
)

// TestRedisCluster checks the store on a real three-master Redis Cluster:
// a key with two limits (two Redis keys, one script) is decided without a
// CROSSSLOT error, its limits hold exactly, and different client keys are
// spread over the nodes. A key holding '}' is tagged with its hash.
func TestRedisCluster(t *testing.T) {
	cluster := testredis.StartCluster(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 cluster.Addrs(),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	t.Cleanup(func() { _ = client.Close() })
	store := NewRedis(client, WithTimeout(5*time.Second))
	limits := []Limit{{Requests: 3, Period: time.Hour}, {Requests: 100, Period: 24 * time.Hour}}
	for i := range 30 {
		key := fmt.Sprintf("tenant:%d", i)
		if i == 29 {
			key = "}odd{key}"
		}
		for n := range 4 {
			d, err := store.Allow(context.Background(), key, limits)
			if err != nil {
				t.Fatalf("key %q call %d: %v", key, n+1, err)
			}
			if d.Allowed != (n < 3) {
				t.Fatalf("key %q call %d: allowed=%v, want %v", key, n+1, d.Allowed, n < 3)
			}
		}
	}
	for _, n := range cluster.Nodes {
		keys := n.CLI("--scan", "--pattern", "edgegate:rl:*")
		if keys == "" {
			t.Errorf("node %s holds no limit key: keys are not spread over the slots", n.Addr)
		}
		for _, k := range strings.Fields(keys) {
			if !strings.HasPrefix(k, "edgegate:rl:{") {
				t.Errorf("key %q has no hash tag", k)
			}
		}
	}
}
