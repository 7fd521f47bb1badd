package upstream_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegate/edgegate/examples/echo"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/upstream"
)

const echoUnary = "/" + echoService + "/Unary"

// pick picks an endpoint of c and ends the call at once.
func pick(t *testing.T, c *upstream.Cluster) string {
	t.Helper()
	addr, done, err := c.Pick(ctx(t), echoUnary)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	done(nil)
	return addr
}

// picked makes n picks on c and counts them by address.
func picked(t *testing.T, c *upstream.Cluster, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		out[pick(t, c)]++
	}
	return out
}

// addrs returns the addresses of bs.
func addrs(bs ...*backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr
	}
	return out
}

// balanced is a cluster of bs with the load balancing lb.
func balanced(t *testing.T, lb configv1.LoadBalancing, bs ...*backend) *upstream.Cluster {
	t.Helper()
	cc := clusterConfig("orders", addrs(bs...)...)
	cc.LoadBalancing = lb
	return newPool(t, upstream.Spec{Config: cc}).Get("orders")
}

// waitingCtx is a context that tells when Pick waits on it: Pick asks for
// Done only to wait for a new picker.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitingCtx(parent context.Context) *waitingCtx {
	return &waitingCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

type pickResult struct {
	addr string
	done func(error)
	err  error
}

// pickWaiting starts a Pick of c and returns, once the pick waits for a
// new picker, its result's channel. It fails t if the pick returns
// without waiting.
func pickWaiting(t *testing.T, c *upstream.Cluster, ctx context.Context) <-chan pickResult {
	t.Helper()
	wctx := newWaitingCtx(ctx)
	res := make(chan pickResult, 1)
	go func(ctx context.Context) { //nolint:contextcheck // wctx is ctx, wrapped to tell when Pick waits on it
		addr, done, err := c.Pick(ctx, echoUnary)
		res <- pickResult{addr, done, err}
	}(wctx)
	select {
	case <-wctx.waiting:
	case r := <-res:
		t.Fatalf("Pick returned %q, %v without waiting", r.addr, r.err)
	}
	return res
}

// silentListener is a loopback listener that accepts nothing yet: a
// client's connection to it stays CONNECTING (the TCP handshake completes,
// the server's HTTP/2 preface never comes) until serve is called.
type silentListener struct {
	net.Listener
	t *testing.T
}

func newSilentListener(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &silentListener{Listener: ln, t: t}
}

// serve starts an echo server called name on the listener, stopped when
// the test ends.
func (l *silentListener) serve(name string) {
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, &echo.Server{Name: name})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l.Listener)
	}()
	l.t.Cleanup(func() {
		s.Stop()
		<-done
	})
}

// connectingCluster is a cluster of one endpoint that stays CONNECTING
// until the listener serves.
func connectingCluster(t *testing.T) (*upstream.Pool, *upstream.Cluster, *silentListener) {
	t.Helper()
	ln := newSilentListener(t)
	cc := clusterConfig("orders", ln.Addr().String())
	cc.ConnectTimeout = durationpb.New(time.Minute)
	p := newPool(t, upstream.Spec{Config: cc})
	c := p.Get("orders")
	waitState(t, c.Conn(), connectivity.Connecting)
	return p, c, ln
}

func TestPickRoundRobin(t *testing.T) {
	bs := []*backend{startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")}
	c := balanced(t, configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN, bs...)
	eventually(t, "picks of every endpoint", 10*time.Second, func() bool { return len(picked(t, c, 6)) == 3 })
	got := picked(t, c, 300)
	for _, b := range bs {
		// Round robin over three: a hundred each (give or take the
		// start of a new picker).
		if n := got[b.addr]; n < 90 || n > 110 {
			t.Errorf("endpoint %s picked %d times of 300: %v", b.name, n, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("picked %v, want only the three endpoints", got)
	}
}

func TestPickFirst(t *testing.T) {
	bs := []*backend{startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")}
	c := balanced(t, configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST, bs...)
	if got := picked(t, c, 100); got[bs[0].addr] != 100 {
		t.Errorf("pick_first picked %v, want the first endpoint %s only", got, bs[0].addr)
	}
	if !c.Ready() {
		t.Error("Ready() false after picks")
	}
}

// TestPickLeastRequest: with calls held open on one endpoint, least
// request picks the other, and the done funcs end those calls.
func TestPickLeastRequest(t *testing.T) {
	bs := []*backend{startBackend(t, "a"), startBackend(t, "b")}
	c := balanced(t, configv1.LoadBalancing_LOAD_BALANCING_LEAST_REQUEST, bs...)
	eventually(t, "picks of both endpoints", 10*time.Second, func() bool { return len(picked(t, c, 10)) == 2 })

	// Ten calls in flight on the first endpoint picked, none on the other.
	var busy string
	var held []func(error)
	for len(held) < 10 {
		addr, done, err := c.Pick(ctx(t), echoUnary)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		if busy == "" {
			busy = addr
		}
		if addr != busy {
			done(nil)
			continue
		}
		held = append(held, done)
	}
	idle := bs[0].addr
	if idle == busy {
		idle = bs[1].addr
	}
	// Two random choices of two endpoints: the idle one unless both fell
	// on the busy one, three picks in four.
	const n = 400
	if got := picked(t, c, n); got[idle] < n*6/10 {
		t.Errorf("with 10 calls in flight on %s: picked %v, want mostly %s", busy, got, idle)
	}
	// The calls end: both endpoints are picked alike again (were the
	// calls still counted, the busy one would get a quarter).
	for _, done := range held {
		done(status.Error(codes.Internal, "ended"))
	}
	if got := picked(t, c, n); got[busy] < n*3/8 {
		t.Errorf("with no call in flight: picked %v, want %s about half the time", got, busy)
	}
}

func TestPickHealthCheck(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	a.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_NOT_SERVING)
	b.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_SERVING)
	cc := clusterConfig("orders", a.addr, b.addr)
	cc.HealthCheck = &configv1.HealthCheck{ServiceName: echoService}
	c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
	ready(t, c)
	if got := picked(t, c, 50); got[b.addr] != 50 {
		t.Fatalf("picked %v while %s is NOT_SERVING, want %s only", got, a.addr, b.addr)
	}
	a.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_SERVING)
	eventually(t, "picks of a once SERVING", 10*time.Second, func() bool { return picked(t, c, 4)[a.addr] > 0 })

	// The other way round: b goes NOT_SERVING and is dropped.
	b.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, "picks of a only", 10*time.Second, func() bool { return picked(t, c, 10)[a.addr] == 10 })
	if got := picked(t, c, 50); got[a.addr] != 50 {
		t.Errorf("picked %v while %s is NOT_SERVING, want %s only", got, b.addr, a.addr)
	}
	if !c.Ready() {
		t.Error("Ready() false with one endpoint SERVING")
	}

	// Neither serves: the cluster is not ready, and picks fail at once.
	a.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_NOT_SERVING)
	waitState(t, c.Conn(), connectivity.TransientFailure)
	if c.Ready() {
		t.Error("Ready() with no endpoint SERVING")
	}
	if _, _, err := c.Pick(ctx(t), echoUnary); status.Code(err) != codes.Unavailable {
		t.Errorf("Pick with no endpoint SERVING: %v, want UNAVAILABLE", err)
	}
	b.health.SetServingStatus(echoService, healthpb.HealthCheckResponse_SERVING)
	ready(t, c)
	if got := pick(t, c); got != b.addr {
		t.Errorf("picked %s once %s serves again", got, b.addr)
	}
}

func TestPickOutlierEjection(t *testing.T) {
	a, b, d := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "d")
	c := outlierCluster(t, nil, 3, time.Minute, 50, a.addr, b.addr, d.addr)
	eventually(t, "picks of every endpoint", 10*time.Second, func() bool { return len(picked(t, c, 6)) == 3 })
	report(c, b.addr, codes.Unavailable, 3)
	checkEjected(t, c, b.addr)
	eventually(t, "b no longer picked", 10*time.Second, func() bool { return picked(t, c, 10)[b.addr] == 0 })
	got := picked(t, c, 100)
	if got[b.addr] != 0 || got[a.addr] == 0 || got[d.addr] == 0 {
		t.Errorf("picked %v with %s ejected, want a and d only", got, b.addr)
	}
}

// TestPickFailsFast: with no endpoint listening, once the balancer has
// given up (TRANSIENT_FAILURE) a pick fails at once with UNAVAILABLE and
// the connection error; it does not wait for its deadline.
func TestPickFailsFast(t *testing.T) {
	for _, lb := range []configv1.LoadBalancing{
		configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN,
		configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST,
		configv1.LoadBalancing_LOAD_BALANCING_LEAST_REQUEST,
	} {
		t.Run(lb.String(), func(t *testing.T) {
			cc := clusterConfig("orders", closedAddr(t))
			cc.LoadBalancing = lb
			c := newPool(t, upstream.Spec{Config: cc}).Get("orders")
			waitState(t, c.Conn(), connectivity.TransientFailure)
			_, done, err := c.Pick(ctx(t), echoUnary)
			if status.Code(err) != codes.Unavailable || done != nil {
				t.Fatalf("Pick = done %v, %v; want UNAVAILABLE", done != nil, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "connection refused") {
				t.Errorf("message %q does not tell of the connection error", msg)
			}
		})
	}
}

// TestPickWaitsWhileConnecting: a pick on a cluster still connecting
// waits for the endpoint, and gets it once it serves.
func TestPickWaitsWhileConnecting(t *testing.T) {
	_, c, ln := connectingCluster(t)
	res := pickWaiting(t, c, ctx(t))
	if s := c.Conn().GetState(); s != connectivity.Connecting {
		t.Fatalf("cluster %v while the pick waits, want CONNECTING", s)
	}
	ln.serve("a")
	r := <-res
	if r.err != nil || r.addr != ln.Addr().String() {
		t.Fatalf("Pick = %q, %v; want %s", r.addr, r.err, ln.Addr())
	}
	r.done(nil)
	if !c.Ready() {
		t.Error("Ready() false after the pick")
	}
}

func TestPickContextEnds(t *testing.T) {
	_, c, _ := connectingCluster(t)
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, _, err := c.Pick(short, echoUnary); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Pick past its deadline: %v, want DEADLINE_EXCEEDED", err)
	}

	cancelled, cancel := context.WithCancel(ctx(t))
	res := pickWaiting(t, c, cancelled)
	cancel()
	if r := <-res; status.Code(r.err) != codes.Canceled {
		t.Errorf("Pick cancelled: %v, want CANCELLED", r.err)
	}
}

// TestPickClosed: a closed cluster's picks fail, those waiting and those
// that come after; they never hang.
func TestPickClosed(t *testing.T) {
	p, c, _ := connectingCluster(t)
	res := pickWaiting(t, c, ctx(t))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want := `edgegate: upstream cluster "orders" is closed`
	if r := <-res; status.Code(r.err) != codes.Unavailable || status.Convert(r.err).Message() != want {
		t.Errorf("waiting Pick when the cluster closes: %v, want UNAVAILABLE %q", r.err, want)
	}
	if _, _, err := c.Pick(ctx(t), echoUnary); status.Code(err) != codes.Unavailable {
		t.Errorf("Pick of a closed cluster: %v, want UNAVAILABLE", err)
	}
}

// TestPickAcrossReload: a cluster shared by the next pool keeps picking;
// one it does not share is closed with the old pool.
func TestPickAcrossReload(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	first := newPool(t,
		upstream.Spec{Config: clusterConfig("same", a.addr)},
		upstream.Spec{Config: clusterConfig("moved", a.addr)},
	)
	if got := pick(t, first.Get("same")); got != a.addr {
		t.Fatalf("picked %s, want %s", got, a.addr)
	}
	second, err := upstream.New([]upstream.Spec{
		{Config: clusterConfig("same", a.addr)},
		{Config: clusterConfig("moved", b.addr)},
	}, first)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	first.CloseExcept(second)
	if second.Get("same") != first.Get("same") {
		t.Fatal("the unchanged cluster was not shared")
	}
	if got := pick(t, second.Get("same")); got != a.addr {
		t.Errorf("shared cluster picked %s, want %s", got, a.addr)
	}
	if got := pick(t, second.Get("moved")); got != b.addr {
		t.Errorf("new cluster picked %s, want %s", got, b.addr)
	}
	if _, _, err := first.Get("moved").Pick(ctx(t), echoUnary); status.Code(err) != codes.Unavailable {
		t.Errorf("Pick of the old pool's closed cluster: %v, want UNAVAILABLE", err)
	}
	// Calls through grpc-go go where the balancer picks, too.
	if got, err := unary(t, second.Get("same"), &testingv1.EchoRequest{}); err != nil || got != "a" {
		t.Errorf("call on the shared cluster: %q, %v", got, err)
	}
}

// TestPickDNS: a dns:/// cluster picks the address its name resolved to.
func TestPickDNS(t *testing.T) {
	b := startBackend(t, "a")
	_, port, _ := net.SplitHostPort(b.addr)
	c := newPool(t, upstream.Spec{Config: clusterConfig("orders", "dns:///localhost:"+port)}).Get("orders")
	addr := pick(t, c)
	host, p, err := net.SplitHostPort(addr)
	if err != nil || p != port || net.ParseIP(host) == nil {
		t.Errorf("picked %q, want an IP with port %s", addr, port)
	}
}

// TestPickConcurrently picks from many goroutines while outlier detection
// changes the endpoints (the race detector checks the picker's handover).
func TestPickConcurrently(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	c := outlierCluster(t, nil, 1, 20*time.Millisecond, 50, a.addr, b.addr)
	ready(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				addr, done, err := c.Pick(ctx(t), echoUnary)
				if err != nil {
					errs <- err
					return
				}
				if addr != a.addr && addr != b.addr {
					errs <- errors.New("picked " + addr)
					return
				}
				done(nil)
			}
		}()
	}
	for range 20 {
		c.Report(a.addr, codes.Unavailable)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkPick measures a pick and its done, per balancer, on a cluster of
// three ready endpoints. Allocations beyond the child picker's would show
// as allocs/op above round_robin's and pick_first's 0 (least_request's
// picker allocates its own done closure).
func BenchmarkPick(b *testing.B) {
	for _, lb := range []configv1.LoadBalancing{
		configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN,
		configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST,
		configv1.LoadBalancing_LOAD_BALANCING_LEAST_REQUEST,
	} {
		b.Run(strings.TrimPrefix(lb.String(), "LOAD_BALANCING_"), func(b *testing.B) {
			bs := []*backend{startBackend(b, "a"), startBackend(b, "b"), startBackend(b, "c")}
			cc := clusterConfig("orders", addrs(bs...)...)
			cc.LoadBalancing = lb
			p, err := upstream.New([]upstream.Spec{{Config: cc}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close() })
			c := p.Get("orders")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, done, err := c.Pick(ctx, echoUnary); err != nil {
				b.Fatal(err)
			} else {
				done(nil)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_, done, err := c.Pick(ctx, echoUnary)
				if err != nil {
					b.Fatal(err)
				}
				done(nil)
			}
		})
	}
}
