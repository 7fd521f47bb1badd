package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/auth"
	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/interceptors/ipfilter"
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

// routePolicies is a snapshot's compiled policies, by route name.
type routePolicies struct {
	rate map[string][]*rlint.Policy
	ip   map[string]*ipfilter.Filter
	auth map[string]*authint.Policy
	// closers are the providers' resources (JWKS refreshers), closed when
	// the snapshot is idle.
	closers []func()
}

func (rp *routePolicies) close() {
	for _, c := range rp.closers {
		c()
	}
}

// compilePolicies compiles the policies of cfg (rate limits, IP lists,
// authentication and authorization) and gives each route its own.
func (g *Gateway) compilePolicies(cfg *configv1.Config) (*routePolicies, error) {
	out := &routePolicies{rate: map[string][]*rlint.Policy{}, ip: map[string]*ipfilter.Filter{}, auth: map[string]*authint.Policy{}}
	if err := g.compileRateLimits(cfg, out); err != nil {
		return nil, err
	}
	providers, err := g.compileProviders(cfg, out)
	if err != nil {
		out.close()
		return nil, err
	}
	for i, r := range cfg.GetRoutes() {
		f, err := ipfilter.New(r.GetIpFilter().GetAllow(), r.GetIpFilter().GetBlock(), config.ParsePrefix)
		if err != nil {
			out.close()
			return nil, fmt.Errorf("routes[%d].ip_filter: %w", i, err)
		}
		out.ip[r.GetName()] = f
		if ra := r.GetAuth(); ra != nil {
			pol := &authint.Policy{
				AllowAnonymous: ra.GetAllowAnonymous(),
				RequiredScopes: ra.GetRequiredScopes(),
				RequireMTLS:    ra.GetRequireMtls(),
			}
			for _, name := range ra.GetProviders() {
				pol.Providers = append(pol.Providers, providers[name])
			}
			if len(ra.GetAllowedIdentities()) > 0 {
				pol.AllowedIdentities = map[string]bool{}
				for _, id := range ra.GetAllowedIdentities() {
					pol.AllowedIdentities[id] = true
				}
			}
			if expr := ra.GetCel(); expr != "" {
				if pol.CEL, err = auth.CompileCEL(expr); err != nil {
					out.close()
					return nil, fmt.Errorf("routes[%d].auth.cel: %w", i, err)
				}
			}
			out.auth[r.GetName()] = pol
		}
	}
	return out, nil
}

// compileProviders builds the auth providers of cfg, by name.
func (g *Gateway) compileProviders(cfg *configv1.Config, out *routePolicies) (map[string]authint.Provider, error) {
	byName := map[string]authint.Provider{}
	for i, ap := range cfg.GetAuthProviders() {
		switch k := ap.GetKind().(type) {
		case *configv1.AuthProvider_ApiKey:
			p := &authint.APIKey{ProviderName: ap.GetName(), Header: strings.ToLower(k.ApiKey.GetHeader())}
			for j, key := range k.ApiKey.GetKeys() {
				h, err := authint.ParseHash(key.GetSha256())
				if err != nil {
					return nil, fmt.Errorf("auth_providers[%d].api_key.keys[%d]: %w", i, j, err)
				}
				p.Keys = append(p.Keys, authint.APIKeyEntry{SHA256: h, Principal: key.GetPrincipal(), Scopes: key.GetScopes()})
			}
			byName[ap.GetName()] = p
		case *configv1.AuthProvider_Mtls:
			byName[ap.GetName()] = &authint.MTLS{ProviderName: ap.GetName()}
		case *configv1.AuthProvider_Jwt:
			v, err := newJWTVerifier(k.Jwt, g.log)
			if err != nil {
				return nil, fmt.Errorf("auth_providers[%d].jwt: %w", i, err)
			}
			out.closers = append(out.closers, v.Close)
			byName[ap.GetName()] = &authint.JWT{ProviderName: ap.GetName(), Verifier: v, Header: strings.ToLower(k.Jwt.GetHeader()), Cookie: k.Jwt.GetCookie()}
		}
	}
	return byName, nil
}

// compileRateLimits compiles the rate limit policies of cfg and gives each
// route its own.
func (g *Gateway) compileRateLimits(cfg *configv1.Config, out *routePolicies) error {
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
				return fmt.Errorf("rate_limits[%d].backend: no redis section (it is read at start only)", i)
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
	for _, r := range cfg.GetRoutes() {
		for _, name := range r.GetRateLimits() {
			out.rate[r.GetName()] = append(out.rate[r.GetName()], byName[name])
		}
	}
	return nil
}

// resolved returns the call's route and its snapshot's policies.
func resolved(ctx context.Context) (*routePolicies, string) {
	snap, rt := router.FromContext(ctx)
	if rt == nil {
		return nil, ""
	}
	rp, _ := snap.Policies.(*routePolicies)
	return rp, rt.Name
}

// rateLimitsOf returns the rate limits of the call's route.
func rateLimitsOf(ctx context.Context) []*rlint.Policy {
	rp, name := resolved(ctx)
	if rp == nil {
		return nil
	}
	return rp.rate[name]
}

// ipFilterOf returns the IP filter of the call's route.
func ipFilterOf(ctx context.Context) *ipfilter.Filter {
	rp, name := resolved(ctx)
	if rp == nil {
		return nil
	}
	return rp.ip[name]
}

// authPolicyOf returns the auth rules of the call's route.
func authPolicyOf(ctx context.Context) *authint.Policy {
	rp, name := resolved(ctx)
	if rp == nil {
		return nil
	}
	return rp.auth[name]
}
