package aggregate

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	authpkg "github.com/edgegate/edgegate/auth"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/internal/grpcwire"
	"github.com/edgegate/edgegate/router"
)

// The metadata a composite answers with when optional legs failed: the
// header names them, comma-separated; the trailer holds a JSON object of
// their google.rpc.Status (proto3 JSON) by leg name.
const (
	PartialHeader   = "x-edgegate-partial"
	LegErrorTrailer = "x-edgegate-leg-errors"
)

// Options are what a composite's calls need from the gateway.
type Options struct {
	// Conn runs a leg: the chain and the proxy, as a call of the leg's
	// method (the gateway's in-process connection).
	Conn grpc.ClientConnInterface
	// Inject adds the trace context of the composite's span to a leg's
	// metadata; nil for none.
	Inject func(ctx context.Context, md metadata.MD)
}

// Serve answers one call of c on ss: the request read, every leg called,
// the answers merged, the response sent. It returns the status of the
// call: a failed required leg's, DEADLINE_EXCEEDED when the composite's
// timeout ends it, INVALID_ARGUMENT for a request that does not parse.
func (c *Composite) Serve(ss grpc.ServerStream, o Options) error {
	ctx, cancel := context.WithTimeout(ss.Context(), c.Timeout)
	defer cancel()
	f := &router.Frame{}
	if err := ss.RecvMsg(f); err != nil {
		return err
	}
	req := dynamicpb.NewMessage(c.in)
	err := proto.Unmarshal(f.Bytes(), req)
	f.Free()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "edgegate: composite %s: request: %v", c.Name, err)
	}
	out, failed, err := c.run(ctx, req, o)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		names := make([]string, 0, len(failed))
		for n := range failed {
			names = append(names, n)
		}
		sort.Strings(names)
		_ = ss.SetHeader(metadata.Pairs(PartialHeader, strings.Join(names, ",")))
		ss.SetTrailer(metadata.Pairs(LegErrorTrailer, legErrors(failed)))
	}
	b, err := proto.Marshal(out.Interface())
	if err != nil {
		return status.Errorf(codes.Internal, "edgegate: composite %s: marshal response: %v", c.Name, err)
	}
	f.SetBytes(b)
	return ss.SendMsg(f)
}

// legErrors is the trailer value: the statuses as JSON, printable ASCII.
func legErrors(failed map[string]*status.Status) string {
	obj := map[string]json.RawMessage{}
	for n, st := range failed {
		b, err := protojson.Marshal(st.Proto())
		if err != nil {
			continue
		}
		obj[n] = b
	}
	b, _ := json.Marshal(obj)
	return grpcwire.ASCIIJSON(string(b))
}

// legResult is how one leg ended: its answers (one, or one per fan-out
// item), or its status.
type legResult struct {
	done    chan struct{}
	answers []protoreflect.Message
	err     *status.Status
}

// call is one run of a composite.
type call struct {
	c       *Composite
	o       Options
	req     protoreflect.Message
	md      metadata.MD // the caller's metadata, as legs are sent it
	parent  *callinfo.Info
	princ   *authpkg.Principal
	results []*legResult
}

// run calls every leg and merges the answers. failed holds the optional
// legs that failed; err is set when a required one did (its status) or
// the call ended.
func (c *Composite) run(ctx context.Context, req protoreflect.Message, o Options) (protoreflect.Message, map[string]*status.Status, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := &call{c: c, o: o, req: req, parent: callinfo.FromContext(ctx), princ: authpkg.FromContext(ctx)}
	k.md = callinfo.Incoming(ctx).Copy()
	for _, key := range []string{"content-type", ":authority", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout"} {
		delete(k.md, key)
	}
	if k.parent != nil && k.parent.RequestID != "" {
		k.md.Set("x-request-id", k.parent.RequestID)
	}
	if o.Inject != nil {
		o.Inject(ctx, k.md)
	}
	k.results = make([]*legResult, len(c.Legs))
	for i := range c.Legs {
		k.results[i] = &legResult{done: make(chan struct{})}
	}
	requiredFailed := make(chan *status.Status, len(c.Legs))
	var wg sync.WaitGroup
	for i, l := range c.Legs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := k.results[i]
			r.answers, r.err = k.leg(ctx, l)
			// A required leg's failure is told before the legs that
			// wait for it wake: the call fails with its own status.
			if r.err != nil && !l.Optional {
				requiredFailed <- r.err
			}
			close(r.done)
		}()
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(all)
	}()
	select {
	case <-all:
	case st := <-requiredFailed:
		cancel()
		<-all
		return nil, nil, st.Err()
	}
	select {
	case st := <-requiredFailed:
		return nil, nil, st.Err()
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, status.FromContextError(err).Err()
	}
	out := dynamicpb.NewMessage(c.out)
	failed := map[string]*status.Status{}
	for i, l := range c.Legs {
		r := k.results[i]
		if r.err != nil {
			failed[l.Name] = r.err
			continue
		}
		for _, m := range l.response {
			for _, a := range r.answers {
				setPath(out, m.dst, answerValue(a, m.src))
			}
		}
	}
	if c.errsField != nil && len(failed) > 0 {
		mp := out.Mutable(c.errsField).Map()
		for n, st := range failed {
			v := mp.NewValue()
			copyMessage(v.Message(), st.Proto().ProtoReflect())
			mp.Set(protoreflect.ValueOfString(n).MapKey(), v)
		}
	}
	return out, failed, nil
}

// answerValue is the part of a leg's answer a mapping reads: the field at
// path, or the whole answer.
func answerValue(a protoreflect.Message, path []protoreflect.FieldDescriptor) value {
	if len(path) == 0 {
		return value{msg: a}
	}
	v, ok := getPath(a, path)
	if !ok {
		return value{}
	}
	return value{v: v, fd: path[len(path)-1], ok: true}
}

// leg runs one leg, after the legs it depends on: its answers, or the
// status it failed with.
func (k *call) leg(ctx context.Context, l *Leg) ([]protoreflect.Message, *status.Status) {
	for _, d := range l.deps {
		r := k.results[d]
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err())
		}
		if r.err != nil {
			return nil, status.Newf(r.err.Code(), "edgegate: leg %q not called: leg %q failed: %s", l.Name, k.c.Legs[d].Name, r.err.Message())
		}
	}
	if l.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Timeout)
		defer cancel()
	}
	if l.fan == nil {
		a, err := k.invoke(ctx, l, value{})
		if err != nil {
			return nil, err
		}
		return []protoreflect.Message{a}, nil
	}
	list, ok := k.read(l.fan.over, value{})
	if !ok || !list.v.IsValid() {
		return nil, nil
	}
	n := min(list.v.List().Len(), l.fan.maxItems)
	answers := make([]protoreflect.Message, n)
	errs := make([]*status.Status, n)
	sem := make(chan struct{}, l.fan.concurrency)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		item := value{v: list.v.List().Get(i), fd: list.fd, item: true, ok: true}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = status.FromContextError(ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			answers[i], errs[i] = k.invoke(ctx, l, item)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && err.Code() != codes.Canceled {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return answers, nil
}

// invoke makes one call of l's method, item the fan-out's item.
func (k *call) invoke(ctx context.Context, l *Leg, item value) (protoreflect.Message, *status.Status) {
	req := dynamicpb.NewMessage(l.in)
	for _, s := range l.request {
		v, ok := k.read(s.src, item)
		if ok {
			setPath(req, s.dst, v)
		}
	}
	resp := dynamicpb.NewMessage(l.out)
	ctx = metadata.NewOutgoingContext(ctx, k.md)
	rec := callinfo.New(callinfo.DoorComposite)
	if p := k.parent; p != nil {
		rec.RequestID, rec.Peer, rec.UserAgent = p.RequestID, p.Peer, p.UserAgent
		rec.HTTPMethod, rec.HTTPPath = p.HTTPMethod, p.HTTPPath
		rec.SetClientForwarding(p.ClientForwarding)
	}
	ctx = callinfo.NewContext(ctx, rec)
	err := k.o.Conn.Invoke(ctx, l.Method, req, resp)
	if err != nil {
		st := status.Convert(err)
		if ctx.Err() != nil && st.Code() == codes.Unknown {
			st = status.FromContextError(ctx.Err())
		}
		return nil, st
	}
	return resp, nil
}

// read returns the value of src for the call, item the fan-out's item;
// false when it is absent (a message field on the path not set, a claim
// the principal lacks).
func (k *call) read(src source, item value) (value, bool) {
	switch src.kind {
	case fromRequest:
		if len(src.path) == 0 {
			return value{msg: k.req, ok: true}, true
		}
		v, ok := getPath(k.req, src.path)
		return value{v: v, fd: src.fd, ok: ok}, ok
	case fromLeg:
		r := k.results[src.leg]
		if r.err != nil || len(r.answers) == 0 {
			return value{}, false
		}
		a := r.answers[0]
		if len(src.path) == 0 {
			return value{msg: a, ok: true}, true
		}
		v, ok := getPath(a, src.path)
		return value{v: v, fd: src.fd, ok: ok}, ok
	case fromItem:
		if len(src.path) == 0 {
			return item, item.ok
		}
		if !item.ok || item.fd.Message() == nil {
			return value{}, false
		}
		v, ok := getPath(item.v.Message(), src.path)
		return value{v: v, fd: src.fd, ok: ok}, ok
	case fromPrincipalID:
		if k.princ == nil || k.princ.Kind == authpkg.KindAnonymous {
			return value{}, false
		}
		return value{text: k.princ.ID, isText: true, ok: true}, true
	case fromClaim:
		if k.princ == nil {
			return value{}, false
		}
		c, ok := k.princ.Claims[src.claim]
		if !ok {
			return value{}, false
		}
		return value{claim: c, isClaim: true, ok: true}, true
	case fromValue:
		return value{text: src.value, isText: true, ok: true}, true
	}
	return value{}, false
}
