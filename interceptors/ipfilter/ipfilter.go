// Package ipfilter is the IP allow and block list policy: lists of CIDRs
// (IPv4 and IPv6) that apply globally (ip_filter, fixed at start) and per
// route (routes[].ip_filter, reloaded with the routes). It judges the
// client IP that package clientip recorded; a refused call gets
// PERMISSION_DENIED (HTTP 403).
package ipfilter

import (
	"context"
	"fmt"
	"net/netip"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/clientip"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/policy"
)

// Filter is a compiled allow/block list. A nil *Filter allows everything.
type Filter struct {
	allow, block []netip.Prefix
}

// NewFilter compiles c, whose place in the configuration is path; nil
// when c lists nothing. An entry that is not an address or CIDR is a
// *config.FieldError at its index.
func NewFilter(c *configv1.IPFilter, path string) (*Filter, error) {
	if len(c.GetAllow()) == 0 && len(c.GetBlock()) == 0 {
		return nil, nil
	}
	f := &Filter{}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]netip.Prefix
	}{{"allow", c.GetAllow(), &f.allow}, {"block", c.GetBlock(), &f.block}} {
		for j, s := range l.in {
			p, err := config.ParsePrefix(s)
			if err != nil {
				return nil, &config.FieldError{Path: fmt.Sprintf("%s.%s[%d]", path, l.name, j), Err: err}
			}
			*l.out = append(*l.out, p)
		}
	}
	return f, nil
}

// Allows reports whether ip may call, and when not, why.
func (f *Filter) Allows(ip netip.Addr) (bool, string) {
	if f == nil {
		return true, ""
	}
	for _, p := range f.block {
		if p.Contains(ip) {
			return false, "is blocked"
		}
	}
	if len(f.allow) == 0 {
		return true, ""
	}
	for _, p := range f.allow {
		if p.Contains(ip) {
			return true, ""
		}
	}
	return false, "is not on the allow list"
}

// key carries a route's filter.
var key = policy.NewKey[*Filter]("ip_filter")

// Interceptor is the IP list policy of the chain.
type Interceptor struct {
	global  *Filter
	metrics *metrics.Metrics
}

// New builds the policy from cfg's global list (fixed at start).
func New(cfg *configv1.Config, d policy.Deps) (*Interceptor, error) {
	g, err := NewFilter(cfg.GetIpFilter(), "ip_filter")
	if err != nil {
		return nil, err
	}
	return &Interceptor{global: g, metrics: d.Metrics}, nil
}

// Name implements policy.Policy.
func (*Interceptor) Name() string { return "ip_filter" }

// Compile gives every route with an ip_filter its filter.
func (*Interceptor) Compile(b *policy.Build) error {
	for i, r := range b.Routes() {
		f, err := NewFilter(r.GetIpFilter(), b.Path(i)+".ip_filter")
		if err != nil {
			return err
		}
		if f != nil {
			policy.Put(b, i, key, f)
		}
	}
	return nil
}

// Close implements policy.Policy; the filter holds nothing.
func (*Interceptor) Close() error { return nil }

// StreamServerInterceptor refuses the calls the global list or the call's
// route's list does not allow. It calls the handler only for allowed calls.
func (p *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := p.check(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func (p *Interceptor) check(ctx context.Context) error {
	ip := clientip.FromContext(ctx)
	for _, f := range [2]*Filter{p.global, key.From(ctx)} {
		if ok, why := f.Allows(ip); !ok {
			if info := callinfo.FromContext(ctx); info != nil && p.metrics != nil {
				p.metrics.Rejected("ip_filter", "ip_filter", info.Door)
			}
			return status.Error(codes.PermissionDenied, fmt.Sprintf("edgegate: client IP %s %s", ip, why))
		}
	}
	return nil
}
