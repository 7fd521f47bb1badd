// Package clientip works out, once per call, who the client is by IP: the
// peer's address, unless the peer is a trusted proxy, in which case it is
// the right-most X-Forwarded-For entry that is not a trusted proxy
// (entries a client wrote further left are never believed). The result
// goes into the call's record (package callinfo) for the policies after it
// (IP lists, rate limit keys, authorization rules) and the access log. It
// is the idea of go-grpc-middleware's realip interceptor.
package clientip

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Of is the client's IP for a call from peerAddr ("ip:port") that carried
// the X-Forwarded-For values xff, given the trusted proxies; invalid when
// peerAddr is not an IP address.
func Of(peerAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
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

// FromContext returns the client IP of the call of ctx: the one this
// package's interceptor recorded, else the peer's address (no proxy
// trusted).
func FromContext(ctx context.Context) netip.Addr {
	if info := callinfo.FromContext(ctx); info != nil && info.ClientAddr.IsValid() {
		return info.ClientAddr
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return Of(p.Addr.String(), nil, nil)
	}
	return netip.Addr{}
}

// StreamServerInterceptor records the client IP of every call in its
// record, trusting the X-Forwarded-For entries written by trusted. It
// always calls the handler.
func StreamServerInterceptor(trusted []netip.Prefix) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		if info := callinfo.FromContext(ctx); info != nil {
			peerAddr := info.Peer
			if peerAddr == "" {
				if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
					peerAddr = p.Addr.String()
				}
			}
			info.SetClientIP(Of(peerAddr, callinfo.Incoming(ctx).Get("x-forwarded-for"), trusted))
		}
		return handler(srv, ss)
	}
}
