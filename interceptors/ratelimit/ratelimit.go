// Package ratelimit is the client rate limiting interceptor: every call of
// a route passes the route's policies, each a set of limits (GCRA, package
// github.com/edgegate/edgegate/ratelimit) over a key built from the
// caller (principal, client IP, API key, a header, the method).
//
// A refused call ends with RESOURCE_EXHAUSTED carrying google.rpc.RetryInfo
// and google.rpc.QuotaFailure details, and the response headers
// retry-after, ratelimit-policy and ratelimit (the IETF RateLimit header
// fields), which the REST and gRPC-Web doors send as HTTP headers (429
// with Retry-After). Allowed calls carry ratelimit-policy and ratelimit
// too unless the policy omits them. When a policy's store cannot decide in
// time (Redis down), the policy fails open (the call passes) or closed
// (UNAVAILABLE), as configured; either way it is logged and counted, and
// it recovers by itself when the store is back.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/interceptors/clientip"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/callmeta"
	limiter "github.com/edgegate/edgegate/ratelimit"
)

// KeyFunc returns one part of a caller's key.
type KeyFunc func(ctx context.Context, md metadata.MD, info *callinfo.Info) string

// Principal keys by the authenticated principal ("anonymous" without one).
func Principal(_ context.Context, _ metadata.MD, info *callinfo.Info) string {
	if info != nil && info.Principal != "" {
		return info.Principal
	}
	return "anonymous"
}

// ClientIP keys by the client's IP address (package clientip).
func ClientIP(ctx context.Context, _ metadata.MD, info *callinfo.Info) string {
	if info != nil && info.ClientIP != "" {
		return info.ClientIP
	}
	if ip := clientip.FromContext(ctx); ip.IsValid() {
		return ip.String()
	}
	if info == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(info.Peer); err == nil {
		return h
	}
	return info.Peer
}

// Method keys by the gRPC method.
func Method(_ context.Context, _ metadata.MD, info *callinfo.Info) string {
	if info == nil {
		return ""
	}
	return info.Method
}

// Header keys by the first value of a metadata key (request header).
func Header(name string) KeyFunc {
	name = strings.ToLower(name)
	return func(_ context.Context, md metadata.MD, _ *callinfo.Info) string {
		if v := md.Get(name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// APIKey keys by the API key in a metadata key, hashed: the key itself is
// never stored.
func APIKey(name string) KeyFunc {
	h := Header(name)
	return func(ctx context.Context, md metadata.MD, info *callinfo.Info) string {
		v := h(ctx, md, info)
		if v == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(v))
		return hex.EncodeToString(sum[:16])
	}
}

// Policy is one compiled rate limit policy. It is immutable.
type Policy struct {
	Name       string
	Key        []KeyFunc
	Limits     []limiter.Limit
	Store      limiter.Store
	FailClosed bool
	// OmitHeadersWhenAllowed keeps the RateLimit headers off allowed
	// answers.
	OmitHeadersWhenAllowed bool
	// Scope separates the counts of policies with the same name but other
	// limits (after a reload): a hash of the limits.
	Scope string

	policyHeader string
}

// Compile fills in what Policy derives from its fields; call it once
// before use.
func (p *Policy) Compile() *Policy {
	items := make([]string, len(p.Limits))
	for i, l := range p.Limits {
		items[i] = fmt.Sprintf("%q;q=%d;w=%d", p.item(i), l.Requests, int64(math.Ceil(l.Period.Seconds())))
	}
	p.policyHeader = strings.Join(items, ", ")
	return p
}

func (p *Policy) item(i int) string {
	if len(p.Limits) == 1 {
		return p.Name
	}
	return p.Name + "." + strconv.Itoa(i)
}

// key is the store's key of the call's bucket: the policy, its scope and
// the first half of the SHA-256 of the call's key values, each ended by a
// zero byte (replicas of every version share it).
func (p *Policy) key(ctx context.Context, md metadata.MD, info *callinfo.Info) string {
	var in [256]byte
	b := in[:0]
	for _, k := range p.Key {
		b = append(b, k(ctx, md, info)...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	var hx [32]byte
	hex.Encode(hx[:], sum[:16])
	var out strings.Builder
	out.Grow(len(p.Name) + len(p.Scope) + 2 + len(hx))
	out.WriteString(p.Name)
	out.WriteByte(':')
	out.WriteString(p.Scope)
	out.WriteByte(':')
	out.Write(hx[:])
	return out.String()
}

// Options are the interceptor's hooks.
type Options struct {
	// Policies returns the policies of the call's route (resolved earlier
	// in the chain); nil or empty: the call is not limited.
	Policies func(ctx context.Context) []*Policy
	// Rejected is told of every refused call.
	Rejected func(policy, door string)
	// StoreFailed is told of every decision a store could not make.
	StoreFailed func(policy string)
	Log         *slog.Logger
}

// StreamServerInterceptor applies the route's policies to every call. It
// calls the handler only when every policy allows the call (or fails open).
func StreamServerInterceptor(o Options) grpc.StreamServerInterceptor {
	var lastLog atomic.Int64
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		policies := o.Policies(ctx)
		if len(policies) == 0 {
			return handler(srv, ss)
		}
		md := callinfo.Incoming(ctx)
		info := callinfo.FromContext(ctx)
		var policyHdr, stateHdr []string
		for _, p := range policies {
			d, err := p.Store.Allow(ctx, p.key(ctx, md, info), p.Limits)
			if err != nil {
				if o.StoreFailed != nil {
					o.StoreFailed(p.Name)
				}
				if now := time.Now().UnixNano(); o.Log != nil && now-lastLog.Load() > int64(time.Second) {
					lastLog.Store(now)
					o.Log.Warn("rate limit store cannot decide", slog.String("policy", p.Name), slog.Bool("fail_closed", p.FailClosed), slog.String("error", err.Error()))
				}
				if p.FailClosed {
					return status.Errorf(codes.Unavailable, "edgegate: rate limit %q cannot be checked now; try again", p.Name)
				}
				continue
			}
			if !d.Allowed {
				door := callinfo.DoorGRPC
				if info != nil {
					door = info.Door
				}
				if o.Rejected != nil {
					o.Rejected(p.Name, door)
				}
				_ = ss.SetHeader(metadata.Pairs(
					"retry-after", strconv.FormatInt(ceilSeconds(d.RetryAfter), 10),
					"ratelimit-policy", p.policyHeader,
					"ratelimit", p.state(d),
				))
				return rejection(p, d)
			}
			if !p.OmitHeadersWhenAllowed {
				policyHdr = append(policyHdr, p.policyHeader)
				stateHdr = append(stateHdr, p.state(d))
			}
		}
		if len(policyHdr) > 0 {
			_ = callmeta.AddHeaders(ss, "ratelimit-policy", strings.Join(policyHdr, ", "), "ratelimit", strings.Join(stateHdr, ", "))
		}
		return handler(srv, ss)
	}
}

// state is the RateLimit field of a decision: remaining calls and seconds
// to full reset, per limit.
func (p *Policy) state(d limiter.Decision) string {
	b := make([]byte, 0, 32*len(d.States))
	for i, s := range d.States {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, p.item(i))
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, max(s.Remaining, 0), 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, ceilSeconds(s.Reset), 10)
	}
	return string(b)
}

func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

func rejection(p *Policy, d limiter.Decision) error {
	var violations []*errdetails.QuotaFailure_Violation
	for i, s := range d.States {
		if s.Remaining > 0 {
			continue
		}
		violations = append(violations, &errdetails.QuotaFailure_Violation{
			Subject:     "policy:" + p.item(i),
			Description: fmt.Sprintf("%d calls per %v, burst %d", s.Limit.Requests, s.Limit.Period, burst(s.Limit)),
		})
	}
	st, err := status.New(codes.ResourceExhausted, fmt.Sprintf("edgegate: rate limit %q exceeded; retry in %v", p.Name, d.RetryAfter.Round(time.Millisecond))).WithDetails(
		&errdetails.RetryInfo{RetryDelay: durationpb.New(d.RetryAfter)},
		&errdetails.QuotaFailure{Violations: violations},
	)
	if err != nil {
		return status.Errorf(codes.ResourceExhausted, "edgegate: rate limit %q exceeded", p.Name)
	}
	return st.Err()
}

func burst(l limiter.Limit) uint32 {
	if l.Burst == 0 {
		return l.Requests
	}
	return l.Burst
}
