package redisclient_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/redisclient"
	"github.com/edgegate/edgegate/internal/testredis"
	"github.com/edgegate/edgegate/tlsconf"
)

func newClient(t *testing.T, cfg *configv1.Redis) redis.UniversalClient {
	t.Helper()
	if cfg.Timeout == nil {
		cfg.Timeout = durationpb.New(2 * time.Second)
	}
	c, err := redisclient.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestKinds reaches a single server, a Sentinel's master and a Cluster
// through the one constructor, and checks the client type of each.
func TestKinds(t *testing.T) {
	single := testredis.Start(t)
	sentinel := testredis.StartSentinel(t)
	cluster := testredis.StartCluster(t)
	for _, tc := range []struct {
		name string
		cfg  *configv1.Redis
		want string
	}{
		{"single", &configv1.Redis{Address: single.Addr}, "*redis.Client"},
		{"sentinel", &configv1.Redis{Sentinel: &configv1.RedisSentinel{MasterName: sentinel.MasterName, Addresses: []string{sentinel.Sentinel.Addr}}}, "*redis.Client"},
		{"cluster", &configv1.Redis{Cluster: &configv1.RedisCluster{Addresses: cluster.Addrs()[:1]}}, "*redis.ClusterClient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redisclient.Kind(tc.cfg); got != tc.name {
				t.Errorf("Kind = %q, want %q", got, tc.name)
			}
			c := newClient(t, tc.cfg)
			if got := typeName(c); got != tc.want {
				t.Errorf("client %s, want %s", got, tc.want)
			}
			// Keys on every slot range: a Cluster client learnt the slots
			// from one node and reaches all three.
			for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
				if err := c.Set(ctx(t), k, "v", time.Minute).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
			}
			if tc.name == "sentinel" {
				if got := sentinel.Master.CLI("get", "a"); got != "v" {
					t.Errorf("the master has a=%q: the client did not write to the sentinel's master", got)
				}
			}
			if tc.name == "cluster" {
				for _, n := range cluster.Nodes {
					if n.CLI("dbsize") == "0" {
						t.Errorf("node %s holds no key: the client did not follow the slots", n.Addr)
					}
				}
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	default:
		return "other"
	}
}

// TestACLUser authenticates as an ACL user with the password of an
// environment variable; a wrong password is refused by Redis.
func TestACLUser(t *testing.T) {
	srv := testredis.StartWith(t, "--user", "gateway", "on", ">s3cret", "~edgegate:*", "+@all", "--user", "default", "off")
	t.Setenv("EDGEGATE_TEST_REDIS_PASSWORD", "s3cret")
	c := newClient(t, &configv1.Redis{Address: srv.Addr, Username: "gateway", PasswordEnv: "EDGEGATE_TEST_REDIS_PASSWORD"}) //nolint:gosec // G101: the name of a variable, not a password
	if err := c.Set(ctx(t), "edgegate:k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("as the ACL user: %v", err)
	}
	if err := c.Set(ctx(t), "other:k", "v", time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("a key outside the user's pattern: %v, want NOPERM", err)
	}
	t.Setenv("EDGEGATE_TEST_REDIS_PASSWORD", "wrong")
	bad := newClient(t, &configv1.Redis{Address: srv.Addr, Username: "gateway", PasswordEnv: "EDGEGATE_TEST_REDIS_PASSWORD"}) //nolint:gosec // G101: the name of a variable, not a password
	if err := bad.Ping(ctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("wrong password: %v, want WRONGPASS", err)
	}
}

// TestTLS reaches a TLS-only Redis that requires a client certificate,
// verified against the CA file; without the client certificate Redis
// drops the handshake, and with another CA the client refuses the server.
func TestTLS(t *testing.T) {
	pki, err := tlsconf.WriteDevCerts(t.TempDir(), []string{"127.0.0.1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsconf.WriteDevCerts(t.TempDir(), []string{"127.0.0.1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := testredis.StartWith(t, "--tls-port", "{port}", "--port", "0",
		"--tls-cert-file", pki.ServerCert, "--tls-key-file", pki.ServerKey, "--tls-ca-cert-file", pki.CACert,
		"--tls-auth-clients", "yes")
	good := newClient(t, &configv1.Redis{Address: srv.Addr, Tls: &configv1.RedisTLS{CaFile: pki.CACert, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}})
	if err := good.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("TLS with a client certificate: %v", err)
	}
	noCert := newClient(t, &configv1.Redis{Address: srv.Addr, Tls: &configv1.RedisTLS{CaFile: pki.CACert}})
	if err := noCert.Ping(ctx(t)).Err(); err == nil {
		t.Error("TLS without a client certificate: the server answered")
	}
	wrongCA := newClient(t, &configv1.Redis{Address: srv.Addr, Tls: &configv1.RedisTLS{CaFile: other.CACert, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}})
	if err := wrongCA.Ping(ctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server of another CA: %v, want a certificate error", err)
	}
	plain := newClient(t, &configv1.Redis{Address: srv.Addr})
	if err := plain.Ping(ctx(t)).Err(); err == nil {
		t.Error("plain TCP to a TLS port: the server answered")
	}
	if _, err := redisclient.New(&configv1.Redis{Address: srv.Addr, Tls: &configv1.RedisTLS{CaFile: "/nonexistent/ca.crt"}}, nil); err == nil || !strings.Contains(err.Error(), "redis.tls") {
		t.Errorf("a missing CA file: %v, want an error naming redis.tls", err)
	}
}
