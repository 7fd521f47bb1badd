package gateway

import (
	"encoding/binary"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/waf"
	"github.com/edgegate/edgegate/internal/callinfo"
	"github.com/edgegate/edgegate/policy"
	"github.com/edgegate/edgegate/schema"
)

// wafPolicy returns the gateway's WAF policy (nil: none).
func (g *Gateway) wafPolicy() *waf.Policy {
	for _, p := range g.policies {
		if w, ok := p.(*waf.Policy); ok {
			return w
		}
	}
	return nil
}

// firewall is the WAF hook of one listener's HTTP handler: it resolves a
// request's route in the snapshot in force (REST: its binding's method;
// gRPC-Web: the path is the method) and inspects it with the route's
// firewall, else the listener's. A plain HTTP handler of the listener
// calls it the same way (Inspect with the request's record): a request
// with no method has the listener's firewall.
type firewall struct {
	g        *Gateway
	p        *waf.Policy
	listener int
}

// newFirewall returns listener i's WAF hook; nil when neither the
// listener nor a route of any configuration can have a WAF (no policy).
func (g *Gateway) newFirewall(i int) frontdoor.Firewall {
	p := g.wafPolicy()
	if p == nil {
		return nil
	}
	return &firewall{g: g, p: p, listener: i}
}

func (f *firewall) Inspect(w http.ResponseWriter, r *http.Request, info *callinfo.Info, body []byte) (http.ResponseWriter, func(), bool) {
	snap := f.g.proxy.Snapshot()
	if !f.p.Inspects(f.listener, snap.Policies) {
		return w, func() {}, true
	}
	var method string
	switch info.Door {
	case callinfo.DoorGRPCWeb:
		method = r.URL.Path
	case callinfo.DoorREST:
		method = f.g.rest.(restDispatch).MethodOf(r)
	}
	var set *policy.Set
	if rt := snap.Table.Lookup(method); method != "" && rt != nil {
		set = rt.Policies
	}
	fw := f.p.For(f.listener, set)
	if fw == nil {
		return w, func() {}, true
	}
	if body == nil && info.Door != callinfo.DoorGRPCWeb {
		var err error
		if body, err = frontdoor.BufferBody(r); err != nil {
			frontdoor.Error(w, codes.InvalidArgument, http.StatusBadRequest, "edgegate: reading the request body: "+err.Error())
			return nil, nil, false
		}
	}
	m := snap.Schema.Method(method)
	req := waf.Request{Body: body, Stream: m != nil && m.Desc.IsStreamingServer()}
	if info.Door == callinfo.DoorGRPCWeb {
		req.Body, req.Uninspectable = messagesJSON(snap.Schema, m, body)
		req.ContentType = "application/json"
	}
	return fw.Serve(w, r, info, req)
}

// messagesJSON is the JSON of the request messages in frames (gRPC
// length-prefixed), of m's input type: one message as its JSON object,
// several as an array. uninspectable is set when a message is compressed
// or does not decode, or m is unknown.
func messagesJSON(reg *schema.Registry, m *schema.Method, frames []byte) (out []byte, uninspectable bool) {
	if len(frames) == 0 {
		return nil, false
	}
	if m == nil {
		return nil, true
	}
	var msgs [][]byte
	for len(frames) > 0 {
		if len(frames) < 5 || frames[0] != 0 {
			return nil, true // compressed, or not a message frame
		}
		n := binary.BigEndian.Uint32(frames[1:5])
		if uint64(len(frames)-5) < uint64(n) {
			return nil, true
		}
		msg := dynamicpb.NewMessage(m.Desc.Input())
		if err := proto.Unmarshal(frames[5:5+n], msg); err != nil {
			return nil, true
		}
		j, err := protojson.MarshalOptions{Resolver: reg.Types()}.Marshal(msg)
		if err != nil {
			return nil, true
		}
		msgs = append(msgs, j)
		frames = frames[5+n:]
	}
	if len(msgs) == 1 {
		return msgs[0], false
	}
	out = append(out, '[')
	for i, j := range msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, j...)
	}
	return append(out, ']'), false
}
