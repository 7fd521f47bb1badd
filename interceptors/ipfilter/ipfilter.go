// Package ipfilter decides who the client is by IP and whether it may
// call: the client IP is the peer's address, unless the peer is a trusted
// proxy, in which case it is the right-most X-Forwarded-For entry that is
// not a trusted proxy (entries a client wrote further left are never
// believed). Allow and block lists (CIDRs, IPv4 and IPv6) apply globally
// and per route; a refused call gets PERMISSION_DENIED (HTTP 403).
package ipfilter

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Filter is a compiled allow/block list. A nil *Filter allows everything.
type Filter struct {
	allow, block []netip.Prefix
}

// New compiles a filter; parse turns a config string into a prefix.
func New(allow, block []string, parse func(string) (netip.Prefix, error)) (*Filter, error) {
	if len(allow) == 0 && len(block) == 0 {
		return nil, nil
	}
	f := &Filter{}
	for _, s := range allow {
		p, err := parse(s)
		if err != nil {
			return nil, err
		}
		f.allow = append(f.allow, p)
	}
	for _, s := range block {
		p, err := parse(s)
		if err != nil {
			return nil, err
		}
		f.block = append(f.block, p)
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

// ClientIP is the client's IP for a call from peerAddr ("ip:port") that
// carried the X-Forwarded-For values xff, given the trusted proxies.
func ClientIP(peerAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	host := peerAddr
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if !in(ip, trusted) {
		return ip
	}
	var chain []string
	for _, v := range xff {
		for part := range strings.SplitSeq(v, ",") {
			chain = append(chain, strings.TrimSpace(part))
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(chain[i])
		if err != nil {
			return ip // a garbled entry: believe nothing left of it
		}
		a = a.Unmap()
		if !in(a, trusted) {
			return a
		}
		ip = a
	}
	return ip
}

func in(ip netip.Addr, list []netip.Prefix) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Options configure the interceptor.
type Options struct {
	Global  *Filter
	Trusted []netip.Prefix
	// Route returns the call's route's filter (nil: none).
	Route func(ctx context.Context) *Filter
	// Rejected is told of every refused call.
	Rejected func(door string)
}

// StreamServerInterceptor sets the call's client IP in its record and
// refuses calls the lists do not allow. It calls the handler only for
// allowed calls.
func StreamServerInterceptor(o Options) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		peerAddr := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			peerAddr = p.Addr.String()
		}
		md := callinfo.Incoming(ctx)
		ip := ClientIP(peerAddr, md.Get("x-forwarded-for"), o.Trusted)
		info := callinfo.FromContext(ctx)
		if info != nil && ip.IsValid() {
			info.ClientIP = ip.String()
		}
		var route *Filter
		if o.Route != nil {
			route = o.Route(ctx)
		}
		for _, f := range []*Filter{o.Global, route} {
			if ok, why := f.Allows(ip); !ok {
				if o.Rejected != nil && info != nil {
					o.Rejected(info.Door)
				}
				return status.Error(codes.PermissionDenied, fmt.Sprintf("edgegate: client IP %s %s", ip, why))
			}
		}
		return handler(srv, ss)
	}
}
