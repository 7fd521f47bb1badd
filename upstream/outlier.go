package upstream

import (
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// outliers ejects endpoints of a static cluster whose calls keep failing:
// it takes them out of the cluster's resolver state, so that the balancer
// stops picking them, and puts them back after the ejection time. It is
// safe for concurrent use.
type outliers struct {
	r         *manual.Resolver
	endpoints []string
	threshold int
	ejectFor  time.Duration
	maxEject  int
	log       *slog.Logger

	mu      sync.Mutex
	fails   map[string]int
	ejected map[string]bool
	closed  bool
	// timers holds the pending return of every ejected endpoint; an
	// endpoint's entry goes when it is back.
	timers map[string]*time.Timer
}

func newOutliers(r *manual.Resolver, endpoints []string, od *configv1.OutlierDetection) *outliers {
	maxEject := len(endpoints) * int(od.GetMaxEjectionPercent()) / 100
	return &outliers{
		r: r, endpoints: endpoints,
		threshold: int(od.GetConsecutiveFailures()),
		ejectFor:  od.GetEjectionTime().AsDuration(),
		maxEject:  maxEject,
		log:       slog.Default(),
		fails:     map[string]int{},
		ejected:   map[string]bool{},
		timers:    map[string]*time.Timer{},
	}
}

// configured maps the address a call reached (an IP) to the configured
// endpoint it stands for (which may be a host name).
func (o *outliers) configured(addr string) string {
	for _, ep := range o.endpoints {
		if ep == addr {
			return ep
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	for _, ep := range o.endpoints {
		h, p, err := net.SplitHostPort(ep)
		if err != nil || p != port {
			continue
		}
		ips, err := net.LookupHost(h)
		if err != nil {
			continue
		}
		if slices.Contains(ips, host) {
			return ep
		}
	}
	return ""
}

// report counts one finished call to endpoint (the address it reached).
func (o *outliers) report(addr string, code codes.Code) {
	endpoint := o.configured(addr)
	if endpoint == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.ejected[endpoint] {
		return
	}
	if code != codes.Unavailable {
		o.fails[endpoint] = 0
		return
	}
	o.fails[endpoint]++
	if o.fails[endpoint] < o.threshold || len(o.ejected) >= o.maxEject {
		return
	}
	o.ejected[endpoint] = true
	o.fails[endpoint] = 0
	o.log.Warn("upstream endpoint ejected", slog.String("endpoint", endpoint), slog.Duration("for", o.ejectFor))
	o.updateLocked()
	o.timers[endpoint] = time.AfterFunc(o.ejectFor, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.closed {
			return
		}
		delete(o.ejected, endpoint)
		delete(o.timers, endpoint)
		o.log.Info("upstream endpoint back from ejection", slog.String("endpoint", endpoint))
		o.updateLocked()
	})
}

func (o *outliers) updateLocked() {
	var eps []resolver.Endpoint
	for _, ep := range o.endpoints {
		if !o.ejected[ep] {
			eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: ep}}})
		}
	}
	o.r.UpdateState(resolver.State{Endpoints: eps})
}

// ejectedNow lists the ejected endpoints.
func (o *outliers) ejectedNow() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for ep := range o.ejected {
		out = append(out, ep)
	}
	return out
}

func (o *outliers) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	for _, t := range o.timers {
		t.Stop()
	}
}
