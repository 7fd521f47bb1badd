package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
)

// Report is what Check measured.
type Report struct {
	Limit      int            // the global limit
	Admitted   int            // calls admitted by the replicas together (their metrics)
	PerReplica map[string]int // admitted per replica
	Limited    int            // calls refused by the limit (their metrics)
	// Rolling restart: calls made while each replica was restarted in
	// turn, and the ones that failed (any code but OK), by door.
	RollingCalls  int
	RollingFailed map[string]int
	// The shared cache: one GetBook answered by the first replica (a
	// miss, stored in its memory tier and in Redis), then asked of every
	// other replica directly: CacheHits of them answered from the cache
	// (their metrics), of CacheAsked.
	CacheAsked, CacheHits int
	FirstFailures         []string // the first few failures, for the report
}

// Within is whether Admitted is within pct percent of Limit.
func (r Report) Within(pct float64) bool {
	d := float64(r.Admitted - r.Limit)
	return d >= -pct/100*float64(r.Limit) && d <= pct/100*float64(r.Limit)
}

// String prints the report.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "global limit %d/h over %d replicas: %d admitted (%+.2f %%), %d refused; per replica %v\n",
		r.Limit, len(r.PerReplica), r.Admitted, 100*float64(r.Admitted-r.Limit)/float64(r.Limit), r.Limited, r.PerReplica)
	fmt.Fprintf(&b, "shared cache: a miss on one replica, then %d of the %d other replicas answered from the cache\n", r.CacheHits, r.CacheAsked)
	failed := 0
	for _, n := range r.RollingFailed {
		failed += n
	}
	fmt.Fprintf(&b, "rolling restart under load: %d calls, %d failed %v\n", r.RollingCalls, failed, r.RollingFailed)
	for _, f := range r.FirstFailures {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

// Failed is the number of failed calls of the rolling restart.
func (r Report) Failed() int {
	n := 0
	for _, v := range r.RollingFailed {
		n += v
	}
	return n
}

// Doors are the three doors Check drives.
var Doors = []string{"grpc", "grpc-web", "rest"}

// caller makes echo Unary calls on one door over its own connection to
// HAProxy (so that callers are spread over the replicas).
type caller struct {
	door  string
	call  func(ctx context.Context, tenant string) error
	close func()
}

func newCaller(lb, door string) (*caller, error) {
	switch door {
	case "grpc":
		cc, err := grpc.NewClient(lb, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		c := testingv1.NewEchoServiceClient(cc)
		return &caller{door: door, close: func() { _ = cc.Close() }, call: func(ctx context.Context, tenant string) error {
			_, err := c.Unary(metadata.AppendToOutgoingContext(ctx, "x-tenant", tenant), &testingv1.EchoRequest{Message: "hi"})
			return err
		}}, nil
	case "grpc-web":
		hc := h2c()
		c := connect.NewClient[testingv1.EchoRequest, testingv1.EchoResponse](hc, "http://"+lb+"/edgegate.testing.v1.EchoService/Unary", connect.WithGRPCWeb())
		return &caller{door: door, close: hc.CloseIdleConnections, call: func(ctx context.Context, tenant string) error {
			req := connect.NewRequest(&testingv1.EchoRequest{Message: "hi"})
			req.Header().Set("x-tenant", tenant)
			_, err := c.CallUnary(ctx, req)
			if err != nil {
				return status.Error(codes.Code(connect.CodeOf(err)), err.Error())
			}
			return nil
		}}, nil
	default:
		hc := h2c()
		return &caller{door: door, close: hc.CloseIdleConnections, call: func(ctx context.Context, tenant string) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+lb+"/v1/echo:unary", bytes.NewReader([]byte(`{"message":"hi"}`)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Tenant", tenant)
			resp, err := hc.Do(req)
			if err != nil {
				return status.Error(codes.Unavailable, err.Error())
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				return nil
			case http.StatusTooManyRequests:
				return status.Error(codes.ResourceExhausted, string(body))
			default:
				return status.Errorf(codes.Unknown, "HTTP %d: %s", resp.StatusCode, body)
			}
		}}, nil
	}
}

// h2c is a client of its own connection, HTTP/2 over plain TCP: a
// draining replica's GOAWAY tells it which requests to send again.
func h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}}
}

// callers opens perDoor callers per door.
func (c *Cluster) callers(perDoor int) ([]*caller, func(), error) {
	var cs []*caller
	closeAll := func() {
		for _, x := range cs {
			x.close()
		}
	}
	for range perDoor {
		for _, d := range Doors {
			x, err := newCaller(c.LB, d)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			cs = append(cs, x)
		}
	}
	return cs, closeAll, nil
}

// CheckOptions bounds Check.
type CheckOptions struct {
	// Calls made against the limit (default 2 × the limit), spread over
	// the doors and the replicas.
	LimitCalls int
	// ConnsPerDoor is the number of connections per door (default 3).
	ConnsPerDoor int
}

// Check measures the global limit and runs a rolling restart under load.
// The tenant of the limit is new for each Check, so Check can run again
// on the same cluster.
func (c *Cluster) Check(ctx context.Context, o CheckOptions) (Report, error) {
	if o.LimitCalls <= 0 {
		o.LimitCalls = 2 * c.opts.Limit
	}
	if o.ConnsPerDoor <= 0 {
		o.ConnsPerDoor = 3
	}
	rep := Report{Limit: c.opts.Limit, PerReplica: map[string]int{}, RollingFailed: map[string]int{}}
	cs, closeAll, err := c.callers(o.ConnsPerDoor)
	if err != nil {
		return rep, err
	}
	defer closeAll()

	// The global limit: LimitCalls calls of one tenant, from every
	// connection at once.
	before, err := c.scrapeAll(ctx)
	if err != nil {
		return rep, err
	}
	tenant := fmt.Sprintf("limit-%d", time.Now().UnixNano())
	var next atomic.Int64
	var other atomic.Int64
	var wg sync.WaitGroup
	for _, x := range cs {
		wg.Go(func() {
			for next.Add(1) <= int64(o.LimitCalls) {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := x.call(cctx, tenant)
				cancel()
				if code := status.Code(err); code != codes.OK && code != codes.ResourceExhausted {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := other.Load(); n > 0 {
		return rep, fmt.Errorf("localcluster: %d calls against the limit failed otherwise than by the limit", n)
	}
	after, err := c.scrapeAll(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range c.Replicas {
		ok := int(after[r.Name].handled("echo-limited", "OK") - before[r.Name].handled("echo-limited", "OK"))
		rep.PerReplica[r.Name] = ok
		rep.Admitted += ok
		rep.Limited += int(after[r.Name].handled("echo-limited", "ResourceExhausted") - before[r.Name].handled("echo-limited", "ResourceExhausted"))
	}
	c.logf("limit: %d admitted, %d refused, per replica %v", rep.Admitted, rep.Limited, rep.PerReplica)

	if err := c.checkSharedCache(ctx, &rep); err != nil {
		return rep, err
	}

	// The rolling restart: every connection calls without pause (a tenant
	// per call, never limited) while each replica is restarted in turn.
	stop := make(chan struct{})
	var mu sync.Mutex
	var calls atomic.Int64
	for _, x := range cs {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := x.call(cctx, fmt.Sprintf("roll-%p-%d", x, i))
				cancel()
				calls.Add(1)
				if err != nil {
					mu.Lock()
					rep.RollingFailed[x.door]++
					if len(rep.FirstFailures) < 5 {
						rep.FirstFailures = append(rep.FirstFailures, x.door+": "+err.Error())
					}
					mu.Unlock()
				}
			}
		})
	}
	var rerr error
	for _, r := range c.Replicas {
		if rerr = c.Restart(ctx, r); rerr != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	rep.RollingCalls = int(calls.Load())
	return rep, rerr
}

// checkSharedCache asks for one book (CatalogService/GetBook, a
// NO_SIDE_EFFECTS method cached on the replicas' catalog route) over REST
// of the first replica, then of each other one directly, and counts from
// their metrics the ones that answered it from the cache: the Redis tier
// the replicas share.
func (c *Cluster) checkSharedCache(ctx context.Context, rep *Report) error {
	before, err := c.scrapeAll(ctx)
	if err != nil {
		return err
	}
	for i, r := range c.Replicas {
		if code, body := get(ctx, "http://"+r.Addr+"/v1/shelves/1/books/1"); code != http.StatusOK {
			return fmt.Errorf("localcluster: GET /v1/shelves/1/books/1 on %s: HTTP %d %s", r.Name, code, body)
		}
		if i > 0 {
			rep.CacheAsked++
		}
	}
	after, err := c.scrapeAll(ctx)
	if err != nil {
		return err
	}
	for _, r := range c.Replicas[1:] {
		if after[r.Name].cached("catalog", "hit") > before[r.Name].cached("catalog", "hit") {
			rep.CacheHits++
		}
	}
	c.logf("shared cache: %d of %d replicas hit", rep.CacheHits, rep.CacheAsked)
	return nil
}

// cached is edgegate_cache_requests_total summed over doors for route and
// result.
func (m metricsOf) cached(route, result string) float64 {
	return m.sum("edgegate_cache_requests_total", map[string]string{"route": route, "result": result})
}

// metricsOf is one replica's scrape.
type metricsOf map[string]*dto.MetricFamily

// handled is edgegate_calls_handled_total summed over doors for route and code.
func (m metricsOf) handled(route, code string) float64 {
	return m.sum("edgegate_calls_handled_total", map[string]string{"route": route, "code": code})
}

// sum is the total of family's counters whose labels include want.
func (m metricsOf) sum(family string, want map[string]string) float64 {
	var n float64
	for _, s := range m[family].GetMetric() {
		match := 0
		for _, l := range s.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(want) {
			n += s.GetCounter().GetValue()
		}
	}
	return n
}

func (c *Cluster) scrapeAll(ctx context.Context) (map[string]metricsOf, error) {
	out := map[string]metricsOf{}
	for _, r := range c.Replicas {
		code, body := get(ctx, "http://"+r.Admin+"/metrics")
		if code != http.StatusOK {
			return nil, fmt.Errorf("localcluster: %s /metrics: HTTP %d", r.Name, code)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("localcluster: %s /metrics: %w", r.Name, err)
		}
		out[r.Name] = mfs
	}
	return out, nil
}
