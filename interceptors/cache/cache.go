package cache

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/cache"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// How the cache answered a call: the call record's Cache, the
// x-cache-status header and the metrics' result label.
const (
	Hit       = "hit"
	Miss      = "miss"
	Stale     = "stale"
	Coalesced = "coalesced"
)

// The response headers the cache sets.
const (
	// StatusHeader is the native gRPC door's: one of Hit, Miss, Stale,
	// Coalesced.
	StatusHeader = "x-cache-status"
	// HTTPStatusHeader is the HTTP doors' Cache-Status (RFC 9211).
	HTTPStatusHeader = "cache-status"
	// ETagHeader is the REST door's validator of a cached answer.
	ETagHeader = "etag"
)

// refreshTimeout bounds a background refresh (stale-while-revalidate);
// the route's own timeout applies too.
const refreshTimeout = 30 * time.Second

// StreamServerInterceptor answers the cacheable calls of routes with a
// cache rule from the store, and stores the upstream's answers of the
// others; every other call goes to the handler untouched. A hit does not
// call the handler. It fails a call only as the handler does, or with the
// context's error when the client leaves while it waits for another
// call's identical miss.
func (p *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, si *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		r := key.From(ss.Context())
		if r == nil {
			return handler(srv, ss)
		}
		return p.serve(r, srv, ss, si.FullMethod, handler)
	}
}

// cacheable reports whether a call of method on the rule's route may be
// answered from the cache: a known unary method, marked NO_SIDE_EFFECTS,
// listed by the route, or a REST GET or HEAD.
func (r *Rule) cacheable(reg *schema.Registry, method string, info *callinfo.Info) bool {
	m := reg.Method(method)
	if m == nil || !m.Unary() {
		return false
	}
	if m.NoSideEffects() || r.methods[method] {
		return true
	}
	return info != nil && info.Door == callinfo.DoorREST && (info.HTTPMethod == http.MethodGet || info.HTTPMethod == http.MethodHead)
}

// key is the call's cache key: "ROUTE METHOD HASH", the hash over the
// rule's settings, the caller (unless shared), the vary values and the
// request.
func (r *Rule) key(method string, info *callinfo.Info, md metadata.MD, req []byte) string {
	h := sha256.New()
	h.Write([]byte(r.scope))
	h.Write([]byte{0})
	if !r.shared {
		switch {
		case info != nil && info.Principal != "":
			h.Write([]byte("p"))
			h.Write([]byte(info.Principal))
		default:
			// No principal: the credentials the upstream may read
			// itself keep callers apart.
			h.Write([]byte("c"))
			for _, k := range [...]string{"authorization", "cookie"} {
				for _, v := range md.Get(k) {
					h.Write([]byte(v))
					h.Write([]byte{0})
				}
				h.Write([]byte{1})
			}
		}
	}
	h.Write([]byte{0})
	for _, k := range r.vary {
		for _, v := range md.Get(k) {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	h.Write(req)
	return r.route + " " + method + " " + hex.EncodeToString(h.Sum(nil)[:20])
}

func (p *Interceptor) serve(r *Rule, srv any, ss grpc.ServerStream, method string, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	snap, _ := router.FromContext(ctx)
	info := callinfo.FromContext(ctx)
	if snap == nil || !r.cacheable(snap.Schema, method, info) {
		return handler(srv, ss)
	}
	in := &router.Frame{}
	if err := ss.RecvMsg(in); err != nil {
		if errors.Is(err, io.EOF) {
			return handler(srv, ss) // the proxy refuses it
		}
		return err
	}
	req := in.Bytes()
	in.Free()
	n := int64(len(req))
	md := callinfo.Incoming(ctx)
	k := r.key(method, info, md, req)
	now := time.Now()
	var stale *cache.Entry // kept for stale-if-error
	if e := p.store.Get(ctx, k); e != nil {
		switch {
		case now.Before(e.Fresh):
			return p.answer(ss, r, info, e, nil, Hit, n, true)
		case now.Before(e.Fresh.Add(r.swr)):
			p.refresh(ctx, snap, r, handler, k, req)
			return p.answer(ss, r, info, e, nil, Stale, n, true)
		case now.Before(e.Fresh.Add(r.sie)):
			stale = e
		}
	}
	fl, leader := p.flights.Join(k)
	if !leader {
		e, err := fl.Wait(ctx)
		if err != nil {
			return status.FromContextError(err).Err()
		}
		if e != nil {
			return p.answer(ss, r, info, e, nil, Coalesced, n, true)
		}
		// The leader's answer could not be shared: a call of its own.
		a := p.call(ctx, srv, handler, req)
		return p.answer(ss, r, info, nil, a, Miss, 0, false)
	}
	// Landed however the call ends (a panic in it is recovered up the
	// chain): the waiters must not wait for a flight that never lands.
	landed := false
	defer func() {
		if !landed {
			p.flights.Land(k, fl, nil)
		}
	}()
	a := p.call(ctx, srv, handler, req)
	e := r.entry(a, now, len(k))
	if e != nil {
		p.store.Set(ctx, k, e)
	}
	p.flights.Land(k, fl, e)
	landed = true
	if stale != nil && a.err != nil && serverFailure(status.Code(a.err)) {
		return p.answer(ss, r, info, stale, nil, Stale, 0, true)
	}
	return p.answer(ss, r, info, e, a, Miss, 0, false)
}

// serverFailure reports whether code is an upstream's failure, which
// stale_if_error hides.
func serverFailure(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.DataLoss:
		return true
	}
	return false
}

// call runs the rest of the chain (the proxy) for the request req and
// returns its answer, which it holds back from the client.
func (p *Interceptor) call(ctx context.Context, srv any, handler grpc.StreamHandler, req []byte) *capture {
	c := &capture{ctx: ctx, req: req}
	c.err = handler(srv, c)
	return c
}

// refresh starts the one background call (per key) that refreshes a
// stale answer, on the call's snapshot, held until it ends, with a record
// of its own (no access log line).
func (p *Interceptor) refresh(ctx context.Context, snap *router.Snapshot, r *Rule, handler grpc.StreamHandler, k string, req []byte) {
	fl, leader := p.flights.Join(k)
	if !leader {
		return // a refresh (or a miss) is under way
	}
	release := snap.Hold()
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	if info := callinfo.FromContext(ctx); info != nil {
		rec := &callinfo.Info{
			Door: info.Door, Start: time.Now(), RequestID: info.RequestID, Method: info.Method,
			Route: info.Route, Cluster: info.Cluster, NoAccessLog: true, Principal: info.Principal,
			Peer: info.Peer, ClientIP: info.ClientIP, ClientAddr: info.ClientAddr, UserAgent: info.UserAgent,
			HTTPMethod: info.HTTPMethod, HTTPPath: info.HTTPPath, ForwardHeaders: info.ForwardHeaders,
		}
		rec.SetIncoming(callinfo.Incoming(ctx))
		bg = callinfo.NewContext(bg, rec)
	}
	method, _ := grpc.Method(ctx)
	bg = grpc.NewContextWithServerTransportStream(bg, transportStream{method})
	go func() {
		defer release()
		defer cancel()
		var e *cache.Entry
		defer func() { p.flights.Land(k, fl, e) }()
		now := time.Now()
		a := p.call(bg, nil, handler, req)
		if e = r.entry(a, now, len(k)); e != nil {
			p.store.Set(bg, k, e)
		}
	}()
}

// entry returns the stored form of an answer received at now, or nil when
// it may not be stored.
func (r *Rule) entry(a *capture, now time.Time, keyLen int) *cache.Entry {
	if a.header.Get("set-cookie") != nil || a.trailer.Get("set-cookie") != nil {
		return nil
	}
	cc := parseCacheControl(a.header.Get("cache-control"))
	if cc.noStore || cc.private || cc.noCache {
		return nil
	}
	ttl := r.ttl
	switch {
	case cc.sMaxAge >= 0:
		ttl = cc.sMaxAge
	case cc.maxAge >= 0:
		ttl = cc.maxAge
	}
	// The call's own request id is the gateway's, on every answer: an
	// upstream's echo of the first caller's is not kept.
	hdr := a.header.Copy()
	delete(hdr, "x-request-id")
	e := &cache.Entry{Header: hdr, Trailer: a.trailer, Stored: now}
	if a.err != nil {
		st := status.Convert(a.err)
		neg, ok := r.negative[st.Code()]
		if !ok {
			return nil
		}
		e.Status, _ = proto.Marshal(st.Proto())
		e.Fresh = now.Add(neg)
		e.Expires = e.Fresh
	} else {
		if len(a.msgs) != 1 {
			return nil
		}
		e.Body = a.msgs[0]
		sum := sha256.Sum256(e.Body)
		e.ETag = `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
		e.Fresh = now.Add(ttl)
		e.Expires = e.Fresh.Add(max(r.swr, r.sie))
	}
	if ttl <= 0 || e.Size()+keyLen > r.maxEntry {
		return nil
	}
	return e
}

// answer gives the client an answer: the stored e, or, when e is nil, the
// call's own answer a (a miss that was not stored), with the status
// headers of how. It counts and records how.
//
// in is the request's size to count in the call's record, and out whether
// to count the answer's, for what the proxy did not count (a hit).
func (p *Interceptor) answer(ss grpc.ServerStream, r *Rule, info *callinfo.Info, e *cache.Entry, a *capture, how string, in int64, out bool) error {
	door := callinfo.DoorGRPC
	if info != nil {
		door = info.Door
		info.SetCache(how)
	}
	p.m.requests.WithLabelValues(r.route, door, how).Inc()
	if info != nil {
		info.BytesIn.Add(in)
	}
	own := metadata.MD{}
	switch {
	case door == callinfo.DoorGRPC && r.grpcStatus:
		own[StatusHeader] = []string{how}
	case door != callinfo.DoorGRPC && r.httpStatus:
		own[HTTPStatusHeader] = []string{cacheStatus(e, a, how)}
	}
	if e != nil && e.ETag != "" && door == callinfo.DoorREST {
		own[ETagHeader] = []string{e.ETag}
	}
	var (
		hdr, tlr metadata.MD
		msgs     [][]byte
		err      error
	)
	if a != nil {
		hdr, tlr, msgs, err = a.header, a.trailer, a.msgs, a.err
	}
	if e != nil {
		hdr, tlr = e.Header, e.Trailer
		msgs, err = nil, nil
		if e.Body != nil || e.Status == nil {
			msgs = [][]byte{e.Body}
		}
		if e.Status != nil {
			st := &spb.Status{}
			if uerr := proto.Unmarshal(e.Status, st); uerr != nil {
				return status.Errorf(codes.Internal, "edgegate: cached status: %v", uerr)
			}
			err = status.ErrorProto(st)
		}
	}
	// Copies: the stored maps are shared, and the doors' streams may
	// change what they are given.
	if err := ss.SendHeader(metadata.Join(hdr, own)); err != nil {
		return err
	}
	for _, m := range msgs {
		f := &router.Frame{}
		f.SetBytes(m)
		n := int64(len(m))
		if err := ss.SendMsg(f); err != nil {
			f.Free()
			return err
		}
		if info != nil && out {
			info.BytesOut.Add(n)
		}
	}
	if len(tlr) > 0 {
		ss.SetTrailer(metadata.Join(tlr))
	}
	return err
}

// cacheStatus is the Cache-Status (RFC 9211) value of an answer.
func cacheStatus(e *cache.Entry, a *capture, how string) string {
	const name = "edgegate"
	ttl := func() string {
		if e == nil {
			return ""
		}
		return "; ttl=" + strconv.FormatInt(int64(time.Until(e.Fresh).Truncate(time.Second)/time.Second), 10)
	}
	switch how {
	case Hit:
		return name + "; hit" + ttl()
	case Stale:
		if a == nil && e != nil && time.Now().After(e.Fresh) {
			return name + "; hit" + ttl() + "; detail=stale"
		}
		return name + "; fwd=stale" + ttl()
	case Coalesced:
		return name + "; fwd=uri-miss; collapsed" + ttl()
	}
	if e != nil {
		return name + "; fwd=uri-miss; stored" + ttl()
	}
	return name + "; fwd=uri-miss"
}

// cacheControl is what the gateway reads of a cache-control header.
type cacheControl struct {
	noStore, private, noCache bool
	maxAge, sMaxAge           time.Duration // -1: absent
}

func parseCacheControl(vs []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, v := range vs {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			arg = strings.Trim(arg, `"`)
			switch strings.ToLower(name) {
			case "no-store":
				cc.noStore = true
			case "private":
				cc.private = true
			case "no-cache":
				cc.noCache = true
			case "max-age":
				cc.maxAge = seconds(arg)
			case "s-maxage":
				cc.sMaxAge = seconds(arg)
			}
		}
	}
	return cc
}

// seconds parses a delta-seconds value; 0 for one that is not.
func seconds(s string) time.Duration {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 1<<31)) * time.Second
}

// capture is the server stream the rest of the chain sees on a miss and
// on a background refresh: it gives the request read before, and holds
// back the answer. Its context is the call's.
type capture struct {
	ctx     context.Context
	req     []byte
	reqRead bool

	header, trailer metadata.MD
	msgs            [][]byte
	err             error
}

func (c *capture) Context() context.Context { return c.ctx }

func (c *capture) RecvMsg(m any) error {
	if c.reqRead {
		return io.EOF
	}
	c.reqRead = true
	switch m := m.(type) {
	case *router.Frame:
		m.SetBytes(c.req)
		return nil
	case proto.Message:
		return proto.Unmarshal(c.req, m)
	}
	return status.Errorf(codes.Internal, "edgegate: cache: cannot receive into %T", m)
}

func (c *capture) SendMsg(m any) error {
	switch m := m.(type) {
	case *router.Frame:
		c.msgs = append(c.msgs, m.Bytes())
		m.Free()
		return nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("edgegate: cache: %w", err)
		}
		c.msgs = append(c.msgs, b)
		return nil
	}
	return status.Errorf(codes.Internal, "edgegate: cache: cannot send %T", m)
}

func (c *capture) SetHeader(md metadata.MD) error {
	c.header = metadata.Join(c.header, md)
	return nil
}

func (c *capture) SendHeader(md metadata.MD) error { return c.SetHeader(md) }

func (c *capture) SetTrailer(md metadata.MD) { c.trailer = metadata.Join(c.trailer, md) }

// transportStream is the grpc.ServerTransportStream of a background
// refresh: it names the method and keeps nothing.
type transportStream struct{ method string }

func (t transportStream) Method() string             { return t.method }
func (transportStream) SetHeader(metadata.MD) error  { return nil }
func (transportStream) SendHeader(metadata.MD) error { return nil }
func (transportStream) SetTrailer(metadata.MD) error { return nil }
