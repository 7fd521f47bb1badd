package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/policy"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/tlsconf"
)

// Gateway is a running (or ready to run) edgegate. Its methods are safe for
// concurrent use.
type Gateway struct {
	cfg       *configv1.Config // the configuration it started with
	log       *slog.Logger
	proxy     *router.Proxy
	server    *grpc.Server
	native    *frontdoor.NativeDoor // native gRPC on the listeners that use the relay
	health    *health.Server
	rest      http.Handler
	grpcWeb   *grpcweb.Door
	edge      frontdoor.EdgeOptions // compression, static mounts, HTTP routes
	httpCore  *router.InProcess     // the chain, then the HTTP routes' proxy
	inject    func(context.Context, metadata.MD)
	drop      []string // identity metadata keys a client may not send
	accessLog *accesslog.Logger
	metrics   *metrics.Metrics
	policies  []policy.Policy
	tp        *sdktrace.TracerProvider  // built from the config; nil otherwise
	tlsSrv    []*tlsconf.Server         // per listener; nil for plaintext
	compiled  []schema.Compiled         // the schema's compiled-in source
	core      *router.InProcess         // the HTTP doors' way into the chain
	httpDoors atomic.Pointer[httpDoors] // the HTTP doors of the snapshot in force

	mu        sync.Mutex
	listeners []net.Listener
	doors     []*frontdoor.Server // per listener
	admin     *http.Server
	adminLn   net.Listener
	serving   bool
	draining  bool
	closed    bool

	life        context.Context    // ends when the gateway is released
	stopLife    context.CancelFunc //
	schemaDirty chan struct{}      // a reflection watch read a new set
	watch       watches            // the reflection watches in force; under reloadMu
	watchNow    atomic.Pointer[watches]

	reloadMu sync.Mutex                      // one reload at a time
	reloader func() error                    // POST /reload; nil: none
	runtime  bool                            // WithRuntime
	current  atomic.Pointer[configv1.Config] // the configuration in force
}

// httpDoors are the HTTP doors of one snapshot: its REST handler and its
// OpenAPI document.
type httpDoors struct {
	rest    http.Handler
	openapi []byte
	edge    *edgeRoutes // static mounts and HTTP routes; nil: none
}

func (g *Gateway) doorsNow() *httpDoors { return g.httpDoors.Load() }

// Metrics returns the gateway's Prometheus collectors.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Table returns the route table new calls use.
func (g *Gateway) Table() *router.Table { return g.proxy.Snapshot().Table }
