// Package clientip works out, once per call, who the client is by IP, and
// what the upstream is told of it: the forwarding rule.
//
// The client IP is the peer's address, unless the peer is a trusted proxy,
// in which case it is the right-most X-Forwarded-For entry that is not a
// trusted proxy (entries a client wrote further left are never believed).
// It goes into the call's record (package callinfo) for the policies after
// it (IP lists, rate limit keys, authorization rules) and the access log.
// It is the idea of go-grpc-middleware's realip interceptor.
//
// The forwarding headers the upstream gets (Headers) follow Envoy's
// use_remote_address with trusted proxies. Both start from what the
// client sent, as its door recorded it (callinfo.Forwarding), never from
// the call's metadata, which a door may have changed.
package clientip

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// Of is the client's IP for a call from peerAddr ("ip:port") that carried
// the X-Forwarded-For values xff, given the trusted proxies; invalid when
// peerAddr is not an IP address.
func Of(peerAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	ip := peerIP(peerAddr)
	if !ip.IsValid() || !in(ip, trusted) {
		return ip
	}
	var chain []string
	for _, v := range printable(xff) {
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

// peerIP is the IP of peerAddr ("ip:port", or a bare IP); invalid when it
// has none.
func peerIP(peerAddr string) netip.Addr {
	_, ip := peerHost(peerAddr)
	return ip
}

// peerHost is peerAddr's host part and its IP (invalid when it is none).
func peerHost(peerAddr string) (string, netip.Addr) {
	host := peerAddr
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host, netip.Addr{}
	}
	return host, ip.Unmap()
}

// ipString is ip.String() for the host it was parsed from: for IPv4 the
// host itself (netip accepts only the canonical dotted form, so they are
// equal), without formatting it again.
func ipString(host string, ip netip.Addr) string {
	if ip.Is4() && !strings.Contains(host, ":") {
		return host
	}
	return ip.String()
}

// printable returns the values of vs that are printable ASCII, the only
// ones gRPC metadata can carry (a value with UTF-8 or a control byte is
// left out, as grpc-gateway leaves it out of the REST door's metadata):
// vs itself when all are.
func printable(vs []string) []string {
	for i, v := range vs {
		if !isPrintable(v) {
			out := append([]string(nil), vs[:i]...)
			for _, v := range vs[i+1:] {
				if isPrintable(v) {
					out = append(out, v)
				}
			}
			return out
		}
	}
	return vs
}

func isPrintable(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// Headers is the forwarding rule: the forwarding headers the upstream is
// sent for a call from peerAddr whose client IP is client, whose client
// sent f, over TLS or not. Whatever the client sent is dropped unless the
// peer is a trusted proxy:
//
//   - x-forwarded-for: the peer's IP; from a trusted proxy, its
//     X-Forwarded-For with the peer's IP appended.
//   - x-forwarded-proto: "https" over TLS, else "http"; a trusted proxy's
//     own is kept.
//   - x-forwarded-host: the call's authority; a trusted proxy's own is
//     kept.
//   - x-real-ip: the client IP (Of), always the gateway's: a client's or
//     proxy's is never passed on.
//   - forwarded (RFC 7239): a trusted proxy's is kept as it is; the
//     gateway neither sets nor extends it, and drops anyone else's.
//
// A value gRPC metadata cannot carry (not printable ASCII) counts as not
// sent, here as in Of.
func Headers(peerAddr string, client netip.Addr, f callinfo.Forwarding, trusted []netip.Prefix, tls bool) metadata.MD {
	md := make(metadata.MD, 5)
	// One backing array for the single values, each value a slice of it
	// with its capacity cut at one, so an append to one never writes into
	// another.
	vals := make([]string, 4)
	one := func(i int, v string) []string {
		vals[i] = v
		return vals[i : i+1 : i+1]
	}
	host, ip := peerHost(peerAddr)
	proxy := ip.IsValid() && in(ip, trusted)
	if proxy {
		f.For, f.Proto, f.Host, f.Forwarded = printable(f.For), printable(f.Proto), printable(f.Host), printable(f.Forwarded)
	}
	peerStr := ""
	if ip.IsValid() {
		peerStr = ipString(host, ip)
		xff := peerStr
		if proxy && len(f.For) > 0 {
			xff = strings.Join(f.For, ", ") + ", " + xff
		}
		md["x-forwarded-for"] = one(0, xff)
	}
	switch {
	case proxy && len(f.Proto) > 0:
		md["x-forwarded-proto"] = f.Proto
	case tls:
		md["x-forwarded-proto"] = one(1, "https")
	default:
		md["x-forwarded-proto"] = one(1, "http")
	}
	switch {
	case proxy && len(f.Host) > 0:
		md["x-forwarded-host"] = f.Host
	case f.Authority != "" && isPrintable(f.Authority):
		md["x-forwarded-host"] = one(2, f.Authority)
	}
	if client.IsValid() {
		realIP := peerStr
		if client != ip {
			realIP = client.String()
		}
		md["x-real-ip"] = one(3, realIP)
	}
	if proxy && len(f.Forwarded) > 0 {
		md["forwarded"] = f.Forwarded
	}
	return md
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

// StreamServerInterceptor records in every call's record its client IP,
// trusting the X-Forwarded-For entries written by trusted, and the
// forwarding headers to send upstream (Headers). secure tells whether a
// call came over TLS (nil: never). It always calls the handler.
func StreamServerInterceptor(trusted []netip.Prefix, secure func(context.Context) bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		if info := callinfo.FromContext(ctx); info != nil {
			peerAddr := info.Peer
			if peerAddr == "" {
				if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
					peerAddr = p.Addr.String()
				}
			}
			f := info.ClientForwarding
			client := Of(peerAddr, f.For, trusted)
			info.SetClientIP(client)
			info.SetForwardHeaders(Headers(peerAddr, client, f, trusted, secure != nil && secure(ctx)))
		}
		return handler(srv, ss)
	}
}
