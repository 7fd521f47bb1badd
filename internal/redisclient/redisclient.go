// Package redisclient builds the gateway's client of the Redis named by the
// configuration's redis section: one server, a master behind Redis
// Sentinel, or a Redis Cluster, with TLS and an ACL user when configured.
// Every Redis user of the gateway (global rate limits; a shared cache)
// builds its client here, so that they all reach Redis the same way.
package redisclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/tlsconf"
)

// Option changes the go-redis options that New derives from the
// configuration, before the client is made: a caller's own timeouts, pool
// size or retries. An Option must not change Addrs, MasterName,
// IsClusterMode or Dialer.
type Option func(*redis.UniversalOptions)

// Kind names the kind of Redis a configuration describes: "single",
// "sentinel" or "cluster" (the label of New's log line and of the docs).
func Kind(cfg *configv1.Redis) string {
	switch {
	case cfg.GetSentinel() != nil:
		return "sentinel"
	case cfg.GetCluster() != nil:
		return "cluster"
	default:
		return "single"
	}
}

// New returns a client of the Redis cfg describes (a config already
// checked by config.Load): a *redis.Client for address, a failover client
// for sentinel (it asks the sentinels for the master and follows a
// failover), a *redis.ClusterClient for cluster (every key of one command
// must be in one hash slot). It authenticates as cfg's username with the
// password in the environment variable password_env, and dials TLS with
// cfg's tls section, reading the CA bundle and client certificate again
// when their files change. The client connects when first used; the caller
// owns it and closes it.
//
// With no Option, a command is not retried (MaxRetries -1) and the
// context's deadline bounds it (ContextTimeoutEnabled); reads and writes
// time out after cfg's timeout and dials after four times it. A Cluster
// still follows MOVED and ASK redirects (MaxRedirects, default 3). New
// logs one line at INFO, message "redis", with the kind and the addresses (never a
// password). An error names the field at fault.
func New(cfg *configv1.Redis, log *slog.Logger, opts ...Option) (redis.UniversalClient, error) {
	if cfg == nil {
		return nil, errors.New("redisclient: no redis section")
	}
	if log == nil {
		log = slog.Default()
	}
	timeout := cfg.GetTimeout().AsDuration()
	o := &redis.UniversalOptions{
		Username:              cfg.GetUsername(),
		Password:              env(cfg.GetPasswordEnv()),
		DB:                    int(cfg.GetDb()),
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		DialTimeout:           timeout * 4,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	switch s, c := cfg.GetSentinel(), cfg.GetCluster(); {
	case s != nil:
		o.MasterName = s.GetMasterName()
		o.Addrs = s.GetAddresses()
		o.SentinelUsername = s.GetUsername()
		o.SentinelPassword = env(s.GetPasswordEnv())
	case c != nil:
		o.Addrs = c.GetAddresses()
		o.IsClusterMode = true
	case cfg.GetAddress() != "":
		o.Addrs = []string{cfg.GetAddress()}
	default:
		return nil, errors.New("redisclient: redis: one of address, sentinel or cluster is required")
	}
	for _, opt := range opts {
		opt(o)
	}
	if t := cfg.GetTls(); t != nil {
		tc, err := tlsconf.NewReloadingClient(tlsconf.ClientConfig{
			CAFile: t.GetCaFile(), CertFile: t.GetCertFile(), KeyFile: t.GetKeyFile(), ServerName: t.GetServerName(),
		})
		if err != nil {
			return nil, fmt.Errorf("redisclient: redis.tls: %w", err)
		}
		o.Dialer = tlsDialer(tc, o.DialTimeout)
	}
	log.Info("redis", slog.String("kind", Kind(cfg)), slog.Any("addresses", o.Addrs),
		slog.Bool("tls", cfg.GetTls() != nil), slog.String("username", cfg.GetUsername()))
	return redis.NewUniversalClient(o), nil
}

// tlsDialer dials TLS with the CA bundle and client certificate as their
// files are at each dial (what a rotation of a mounted Secret needs).
func tlsDialer(tc *tlsconf.Client, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tc.Config()}
		return d.DialContext(ctx, network, addr)
	}
}

// env is the value of the environment variable name; "" for no name.
func env(name string) string {
	if name == "" {
		return ""
	}
	return os.Getenv(name)
}
