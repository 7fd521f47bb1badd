package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"
)

// pickBalancerName is the balancer every cluster's connection is dialled
// with: it builds the cluster's configured balancer (round_robin,
// pick_first, least_request_experimental) as its child, and shows the
// child's pickers both to grpc-go and to Cluster.Pick.
const pickBalancerName = "edgegate_pick"

func init() {
	balancer.Register(pickBuilder{})
	donePool.New = func() any {
		a := &doneAdapter{}
		a.fn = a.call
		return a
	}
}

// Pick returns the address ("host:port" or "ip:port", as the balancer's
// SubConn was created with) of the endpoint the cluster's balancer picks
// for a call of method (“/pkg.Service/Method”) with ctx, and done, to be
// called exactly once when that call ends, with the call's error (nil for
// OK): it is the balancer's own end of the call (least_request's count of
// calls in flight). done is reused for later picks once called, so a
// second call would end another call's pick.
//
// Pick waits while the balancer has no ready endpoint yet (it is
// connecting), until a new picker has one or ctx is done; then it returns
// ctx's status, DEADLINE_EXCEEDED or CANCELLED. A balancer that has given
// up on every endpoint (TRANSIENT_FAILURE) fails the pick at once, with its
// status (UNAVAILABLE and the last connection error, such as “connection
// error: … connection refused”), as grpc-go fails a call that does not
// wait for ready. A closed cluster's Pick returns
// UNAVAILABLE. Pick dials nothing itself, allocates nothing beyond what the
// balancer's picker does, and is safe for concurrent use.
func (c *Cluster) Pick(ctx context.Context, method string) (addr string, done func(err error), err error) {
	info := balancer.PickInfo{FullMethodName: method, Ctx: ctx}
	for {
		g := c.picks.cur.Load()
		if g.closed {
			return "", nil, status.Errorf(codes.Unavailable, "edgegate: upstream cluster %q is closed", c.name)
		}
		if g.picker != nil {
			res, err := g.picker.Pick(info)
			if err == nil {
				if sc, ok := res.SubConn.(*subConn); ok && sc.ready() {
					return *sc.addr.Load(), doneOf(res.Done), nil
				}
				// The endpoint picked has just left READY; a picker
				// without it is on its way.
				if res.Done != nil {
					res.Done(balancer.DoneInfo{})
				}
			} else if !errors.Is(err, balancer.ErrNoSubConnAvailable) {
				return "", nil, pickError(err)
			}
		}
		select {
		case <-ctx.Done():
			return "", nil, ctxError(ctx)
		case <-g.next:
		}
	}
}

// pickError is the status a call fails with when the picker refuses it
// with err, as grpc-go makes it: a status error as it is (but for the
// codes gRFC A54 keeps from the control plane), any other UNAVAILABLE.
func pickError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return status.Error(codes.Unavailable, err.Error())
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.DataLoss:
		return status.Errorf(codes.Internal, "received picker error with illegal status: %v", err)
	}
	return err
}

// ctxError is the status of a pick that ctx ended while it waited.
func ctxError(ctx context.Context) error {
	code := codes.Canceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = codes.DeadlineExceeded
	}
	return status.Errorf(code, "%v while waiting for an upstream endpoint to become ready", ctx.Err())
}

// noDone is the done func of a pick whose balancer has no end of call.
func noDone(error) {}

// doneOf adapts a picker's Done to Pick's done func. The adapters are
// reused (a closure per pick would be an allocation per call): each goes
// back to the pool when called, which is why done must be called exactly
// once.
func doneOf(d func(balancer.DoneInfo)) func(error) {
	if d == nil {
		return noDone
	}
	a := donePool.Get().(*doneAdapter)
	a.done = d
	return a.fn
}

// donePool holds idle doneAdapters; New is set by init (an adapter puts
// itself back, which would be an initialisation cycle here).
var donePool sync.Pool

// doneAdapter calls a picker's Done with a call's error.
type doneAdapter struct {
	done func(balancer.DoneInfo)
	fn   func(error) // a.call, made once
}

func (a *doneAdapter) call(err error) {
	d := a.done
	a.done = nil
	donePool.Put(a)
	if d != nil {
		d(balancer.DoneInfo{Err: err})
	}
}

// picks holds the latest picker of a cluster's balancer, for Pick. Its
// reads are one atomic load; a writer replaces the generation and closes
// the old one's next channel, which wakes the picks waiting on it.
type picks struct {
	cur atomic.Pointer[pickerGen]
	mu  sync.Mutex // serialises writers
	// gone, when set, is told the address of every SubConn the balancer
	// shuts down (an endpoint that left the resolver's state: ejected,
	// or no longer in DNS), so that its call connection closes too.
	gone atomic.Pointer[func(addr string)]
}

// pickerGen is one picker of the balancer (nil: none yet, or the balancer
// is closed), and the channel closed when it is replaced.
type pickerGen struct {
	picker balancer.Picker
	next   chan struct{}
	closed bool // the cluster is closed: no picker will come
}

func newPicks() *picks {
	p := &picks{}
	p.cur.Store(&pickerGen{next: make(chan struct{})})
	return p
}

// set makes picker the one Pick uses; it does nothing once p is closed.
func (p *picks) set(picker balancer.Picker) {
	p.replace(&pickerGen{picker: picker, next: make(chan struct{})})
}

// close fails every pick, those waiting and those to come.
func (p *picks) close() { p.replace(&pickerGen{closed: true, next: make(chan struct{})}) }

func (p *picks) replace(g *pickerGen) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cur.Load()
	if old.closed {
		return
	}
	p.cur.Store(g)
	close(old.next)
}

// registry maps the id in a cluster's balancer config to its picks, for
// the balancer that grpc-go builds from that config. A cluster is in it
// from its dial until it is closed.
var (
	registry sync.Map // string → *picks
	lastID   atomic.Uint64
)

// register adds p to the registry under a new id, and returns the id.
func register(p *picks) string {
	id := strconv.FormatUint(lastID.Add(1), 10)
	registry.Store(id, p)
	return id
}

func unregister(id string) { registry.Delete(id) }

func lookup(id string) *picks {
	if v, ok := registry.Load(id); ok {
		return v.(*picks)
	}
	return nil
}

// pickLBConfig wraps the load balancing config lb (one {"name": config}
// entry) into the pick balancer's, for the cluster registered as id.
func pickLBConfig(id string, lb map[string]any) map[string]any {
	return map[string]any{pickBalancerName: map[string]any{"cluster": id, "child": lb}}
}

// pickConfig is the pick balancer's parsed config.
type pickConfig struct {
	serviceconfig.LoadBalancingConfig
	cluster     string
	child       balancer.Builder
	childConfig serviceconfig.LoadBalancingConfig
}

type pickBuilder struct{}

func (pickBuilder) Name() string { return pickBalancerName }

func (pickBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &pickBalancer{cc: cc, opts: opts}
}

// ParseConfig reads {"cluster": id, "child": {name: config}}; the child
// must be a registered balancer, its config is parsed by it.
func (pickBuilder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	var raw struct {
		Cluster string                     `json:"cluster"`
		Child   map[string]json.RawMessage `json:"child"`
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", pickBalancerName, err)
	}
	if len(raw.Child) != 1 {
		return nil, fmt.Errorf("%s: child: want one balancer, got %d", pickBalancerName, len(raw.Child))
	}
	cfg := &pickConfig{cluster: raw.Cluster}
	for name, js := range raw.Child {
		cfg.child = balancer.Get(name)
		if cfg.child == nil {
			return nil, fmt.Errorf("%s: child: no balancer %q", pickBalancerName, name)
		}
		if p, ok := cfg.child.(balancer.ConfigParser); ok {
			c, err := p.ParseConfig(js)
			if err != nil {
				return nil, fmt.Errorf("%s: child %q: %w", pickBalancerName, name, err)
			}
			cfg.childConfig = c
		}
	}
	return cfg, nil
}

// pickBalancer runs its child balancer on a pickCC. Its methods are
// called by grpc-go one at a time.
type pickBalancer struct {
	cc    balancer.ClientConn
	opts  balancer.BuildOptions
	child balancer.Balancer
	built balancer.Builder // the child's builder
	ccw   *pickCC
}

func (b *pickBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, ok := s.BalancerConfig.(*pickConfig)
	if !ok {
		return fmt.Errorf("%s: config of type %T", pickBalancerName, s.BalancerConfig)
	}
	if b.child == nil || b.built != cfg.child {
		if b.child != nil {
			b.child.Close()
		}
		b.ccw = &pickCC{ClientConn: b.cc, picks: lookup(cfg.cluster)}
		b.child, b.built = cfg.child.Build(b.ccw, b.opts), cfg.child
	}
	s.BalancerConfig = cfg.childConfig
	return b.child.UpdateClientConnState(s)
}

func (b *pickBalancer) ResolverError(err error) {
	if b.child != nil {
		b.child.ResolverError(err)
	}
}

func (b *pickBalancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	if b.child != nil {
		b.child.UpdateSubConnState(sc, s) //nolint:staticcheck // forwarded as it is, for a child balancer that still uses it
	}
}

func (b *pickBalancer) ExitIdle() {
	if b.child != nil {
		b.child.ExitIdle()
	}
}

// Close closes the child. Picks wait for the picker of the next balancer
// (grpc-go builds one when the connection leaves idle), or fail if the
// cluster is closed.
func (b *pickBalancer) Close() {
	if b.child == nil {
		return
	}
	b.child.Close()
	b.child = nil
	if b.ccw.picks != nil {
		b.ccw.picks.set(nil)
	}
}

// pickCC is the ClientConn of the child balancer: it wraps every SubConn
// the child creates in a subConn (its address and connectivity state),
// and hands every picker the child makes both to the cluster's picks and,
// unwrapping the SubConns it picks, to grpc-go.
type pickCC struct {
	balancer.ClientConn
	picks *picks // nil for a connection without a cluster
}

func (cc *pickCC) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	sc := &subConn{}
	if len(addrs) > 0 {
		sc.setAddr(addrs)
	}
	listener := opts.StateListener
	opts.StateListener = func(s balancer.SubConnState) {
		sc.state.Store(int32(s.ConnectivityState))
		if s.ConnectivityState == connectivity.Shutdown && cc.picks != nil {
			if gone, addr := cc.picks.gone.Load(), sc.addr.Load(); gone != nil && addr != nil {
				(*gone)(*addr)
			}
		}
		if listener != nil {
			listener(s)
		}
	}
	inner, err := cc.ClientConn.NewSubConn(addrs, opts) //nolint:staticcheck // the way to make a SubConn (one address each, as the children do)
	if err != nil {
		return nil, err
	}
	sc.SubConn = inner
	return sc, nil
}

func (cc *pickCC) RemoveSubConn(sc balancer.SubConn) {
	cc.ClientConn.RemoveSubConn(unwrap(sc)) //nolint:staticcheck // forwarded as it is, for a child balancer that still uses it
}

func (cc *pickCC) UpdateAddresses(sc balancer.SubConn, addrs []resolver.Address) {
	if s, ok := sc.(*subConn); ok && len(addrs) > 0 {
		s.setAddr(addrs)
	}
	cc.ClientConn.UpdateAddresses(unwrap(sc), addrs) //nolint:staticcheck // forwarded as it is, for a child balancer that still uses it
}

// UpdateState hands the child's state to grpc-go and its picker to Pick,
// in the order that keeps the two agreeing for an observer of
// Cluster.Ready: a picker of a READY balancer after the connection's
// state says READY (a pick that got an endpoint finds the cluster ready),
// any other before it (once the cluster is not ready, picks fail or wait).
func (cc *pickCC) UpdateState(s balancer.State) {
	picker := s.Picker
	if picker != nil {
		s.Picker = unwrapPicker{picker}
	}
	ready := s.ConnectivityState == connectivity.Ready
	if !ready {
		cc.publish(picker)
	}
	cc.ClientConn.UpdateState(s)
	if ready {
		cc.publish(picker)
	}
}

func (cc *pickCC) publish(picker balancer.Picker) {
	if cc.picks != nil {
		cc.picks.set(picker)
	}
}

// unwrapPicker is a child's picker as grpc-go is given it: the SubConns
// it picks are grpc-go's own.
type unwrapPicker struct{ balancer.Picker }

func (p unwrapPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	res, err := p.Picker.Pick(info)
	res.SubConn = unwrap(res.SubConn)
	return res, err
}

func unwrap(sc balancer.SubConn) balancer.SubConn {
	if s, ok := sc.(*subConn); ok {
		return s.SubConn
	}
	return sc
}

// subConn is a SubConn of grpc-go with the address it connects to and
// its connectivity state.
type subConn struct {
	balancer.SubConn
	addr  atomic.Pointer[string]
	state atomic.Int32 // connectivity.State
}

func (sc *subConn) setAddr(addrs []resolver.Address) {
	a := addrs[0].Addr
	sc.addr.Store(&a)
}

func (sc *subConn) ready() bool {
	return connectivity.State(sc.state.Load()) == connectivity.Ready && sc.addr.Load() != nil
}

// UpdateAddresses records the first of addrs as the SubConn's address and
// hands them on.
func (sc *subConn) UpdateAddresses(addrs []resolver.Address) {
	if len(addrs) > 0 {
		sc.setAddr(addrs)
	}
	sc.SubConn.UpdateAddresses(addrs) //nolint:staticcheck // forwarded as it is, for a child balancer that still uses it
}
