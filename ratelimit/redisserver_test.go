package ratelimit

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/edgegate/edgegate/internal/testredis"
)

// redisServer is a real redis-server on a loopback port, owned by one test
// (package testredis), with the client the tests use.
type redisServer struct {
	*testredis.Server
	t testing.TB
}

// startRedis starts a redis-server for t; it is killed when t ends. The
// test fails (never skips) when redis-server is not installed.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	return &redisServer{Server: testredis.Start(t), t: t}
}

// Client returns a go-redis client for the server, closed when the test
// ends. It honours context deadlines (ContextTimeoutEnabled), as NewRedis
// asks.
func (s *redisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:                  s.Addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}
