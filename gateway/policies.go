package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	rlint "github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/ratelimit"
	"github.com/edgegate/edgegate/router"
)

// stores are the rate limit stores of the gateway's lifetime: one
// in-memory store and, with a redis section, one Redis store. Keys carry
// the policy's name and a hash of its limits, so that reloads keep the
// counts of unchanged policies.
type stores struct {
	memory *ratelimit.Memory
	redis  *ratelimit.Redis
	client *redis.Client
}

func newStores(cfg *configv1.Config) *stores {
	s := &stores{memory: ratelimit.NewMemory()}
	if r := cfg.GetRedis(); r != nil {
		s.client = redis.NewClient(&redis.Options{
			Addr:     r.GetAddress(),
			Password: os.Getenv(r.GetPasswordEnv()),
			DB:       int(r.GetDb()),
			// A check never waits long: the store's own timeout bounds it,
			// and no retry may stretch it.
			MaxRetries:            -1,
			ContextTimeoutEnabled: true,
			DialTimeout:           r.GetTimeout().AsDuration() * 4,
			ReadTimeout:           r.GetTimeout().AsDuration(),
			WriteTimeout:          r.GetTimeout().AsDuration(),
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		})
		s.redis = ratelimit.NewRedis(s.client, ratelimit.WithTimeout(r.GetTimeout().AsDuration()))
	}
	return s
}

func (s *stores) close() {
	_ = s.memory.Close()
	if s.client != nil {
		_ = s.client.Close()
	}
}

// routePolicies is a snapshot's compiled rate limits, by route name.
type routePolicies map[string][]*rlint.Policy

// compilePolicies compiles the rate limit policies of cfg and gives each
// route its own.
func (g *Gateway) compilePolicies(cfg *configv1.Config) (routePolicies, error) {
	byName := map[string]*rlint.Policy{}
	for i, pc := range cfg.GetRateLimits() {
		p := &rlint.Policy{Name: pc.GetName(), FailClosed: pc.GetFailClosed(), OmitHeadersWhenAllowed: pc.GetOmitHeadersWhenAllowed()}
		for _, l := range pc.GetLimits() {
			p.Limits = append(p.Limits, ratelimit.Limit{Requests: l.GetRequests(), Period: l.GetPeriod().AsDuration(), Burst: l.GetBurst()})
		}
		for _, k := range pc.GetKey() {
			switch part := k.GetPart().(type) {
			case *configv1.RateLimitKey_Principal:
				p.Key = append(p.Key, rlint.Principal)
			case *configv1.RateLimitKey_ClientIp:
				p.Key = append(p.Key, rlint.ClientIP)
			case *configv1.RateLimitKey_Method:
				p.Key = append(p.Key, rlint.Method)
			case *configv1.RateLimitKey_Header:
				p.Key = append(p.Key, rlint.Header(part.Header))
			case *configv1.RateLimitKey_ApiKeyHeader:
				p.Key = append(p.Key, rlint.APIKey(part.ApiKeyHeader))
			}
		}
		switch pc.GetBackend() {
		case configv1.RateLimitBackend_RATE_LIMIT_BACKEND_REDIS:
			if g.stores.redis == nil {
				return nil, fmt.Errorf("rate_limits[%d].backend: no redis section (it is read at start only)", i)
			}
			p.Store = g.stores.redis
		default:
			p.Store = g.stores.memory
		}
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(pc)
		sum := sha256.Sum256(b)
		p.Scope = hex.EncodeToString(sum[:6])
		byName[p.Name] = p.Compile()
	}
	out := routePolicies{}
	for _, r := range cfg.GetRoutes() {
		for _, name := range r.GetRateLimits() {
			out[r.GetName()] = append(out[r.GetName()], byName[name])
		}
	}
	return out, nil
}

// policiesOf returns the rate limits of the call's route.
func policiesOf(ctx context.Context) []*rlint.Policy {
	snap, rt := router.FromContext(ctx)
	if rt == nil || len(rt.RateLimits) == 0 {
		return nil
	}
	rp, _ := snap.Policies.(routePolicies)
	return rp[rt.Name]
}
