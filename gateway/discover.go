package gateway

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/schema/discover"
	"github.com/edgegate/edgegate/upstream"
)

// reflectionWatch reads the descriptors one cluster serves by server
// reflection, over connections of its own (the routed calls' connection
// is dialled after the schema is built, since its retry policy comes from
// the schema): one to each of the cluster's static endpoints, so that
// endpoints serving different descriptors are told apart, or one to its
// DNS name.
type reflectionWatch struct {
	key   string // the cluster's configuration: another one gets a new watch
	conns []*grpc.ClientConn
	w     *discover.Watcher
}

func (rw *reflectionWatch) close() {
	if rw.w != nil {
		rw.w.Close()
	}
	for _, c := range rw.conns {
		_ = c.Close()
	}
}

// newWatch dials the connections of c's watch (onChange: its Watcher's).
func (g *Gateway) newWatch(c *configv1.Cluster, key string) (*reflectionWatch, error) {
	rw := &reflectionWatch{key: key}
	rc := c.GetReflection()
	eps := c.GetEndpoints()
	opts := []discover.Option{discover.WithMetrics(g.metrics)}
	var cc grpc.ClientConnInterface
	if len(eps) == 1 {
		conn, err := upstream.Dial(upstream.Spec{Config: c})
		if err != nil {
			return nil, err
		}
		rw.conns, cc = append(rw.conns, conn), conn
	} else {
		var each []discover.Endpoint
		for _, ep := range eps {
			one := proto.CloneOf(c)
			one.Endpoints = []string{ep}
			conn, err := upstream.Dial(upstream.Spec{Config: one})
			if err != nil {
				rw.close()
				return nil, err
			}
			rw.conns = append(rw.conns, conn)
			each = append(each, discover.Endpoint{Addr: ep, CC: conn})
		}
		opts = append(opts, discover.WithEndpoints(each))
	}
	rw.w = discover.New(c.GetName(), cc, rc.GetRefreshInterval().AsDuration(), rc.GetTimeout().AsDuration(), g.log, g.schemaChanged, opts...)
	return rw, nil
}

// watches are the reflection watches of a configuration, by cluster.
type watches map[string]*reflectionWatch

// sets are the descriptor sets the watches last read, in cluster order.
func (ws watches) sets() []schema.FileSet {
	var out []schema.FileSet
	for _, name := range slices.Sorted(maps.Keys(ws)) {
		if set, _ := ws[name].w.Current(); set != nil {
			out = append(out, schema.FileSet{Source: schema.Source{Kind: schema.SourceReflection, Name: name}, Files: set})
		}
	}
	return out
}

// closeExcept closes the watches of ws that keep does not share.
func (ws watches) closeExcept(keep watches) {
	for name, rw := range ws {
		if keep[name] != rw {
			rw.close()
		}
	}
}

// prepareWatches returns the reflection watches of cfg's clusters: those
// of g.watch whose cluster is unchanged, and new ones for the others, all
// read now (in parallel, each within its timeout) so that the schema
// built next has what they serve now. A cluster that cannot be read is
// logged by its watch and left out until a later read succeeds; the
// watch keeps trying. The new watches start reading in the background
// when adopted (adoptWatches).
func (g *Gateway) prepareWatches(cfg *configv1.Config) (watches, error) {
	next := watches{}
	var fresh, read []*reflectionWatch
	for i, c := range cfg.GetClusters() {
		if c.GetReflection() == nil {
			continue
		}
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		key := string(b)
		if old := g.watch[c.GetName()]; old != nil && old.key == key {
			next[c.GetName()] = old
			read = append(read, old)
			continue
		}
		rw, err := g.newWatch(c, key)
		if err != nil {
			for _, rw := range fresh {
				rw.close()
			}
			return nil, &config.FieldError{Path: fmt.Sprintf("clusters[%d]", i), Err: err}
		}
		next[c.GetName()] = rw
		fresh = append(fresh, rw)
		read = append(read, rw)
	}
	var wg sync.WaitGroup
	for _, rw := range read {
		wg.Go(func() { _, _ = rw.w.Refresh(g.life) })
	}
	wg.Wait()
	return next, nil
}

// adoptWatches makes next the watches in force: the ones it does not share
// with the watches before are closed (and their clusters' reflection
// series dropped), its new ones start reading in the background.
func (g *Gateway) adoptWatches(next watches) {
	for name, rw := range g.watch {
		if next[name] != rw {
			rw.close()
			if next[name] == nil {
				g.metrics.SchemaReflectionRemoved(name)
			}
		}
	}
	for _, rw := range next {
		rw.w.Start()
	}
	g.watch = next
	g.watchNow.Store(&next)
}

// schemaChanged is called by a watch when a background read finds a new
// set; followSchema rebuilds the schema then. It never blocks: the watch
// goes on reading while the rebuild waits for the reload lock.
func (g *Gateway) schemaChanged() {
	select {
	case g.schemaDirty <- struct{}{}:
	default:
	}
}

// followSchema rebuilds the configuration in force with the watches' new
// sets each time one changes, until the gateway is released. A set that
// does not build with the rest (a service that now conflicts with another
// source) is logged and the schema in force stays.
func (g *Gateway) followSchema() {
	for {
		select {
		case <-g.life.Done():
			return
		case <-g.schemaDirty:
		}
		g.reloadMu.Lock()
		if g.life.Err() == nil {
			start := time.Now()
			if err := g.swap(g.current.Load(), g.watch); err != nil {
				g.log.Error("schema from reflection changed but does not build; the schema in force stays", slog.String("error", err.Error()))
			} else {
				g.log.Info("schema rebuilt from reflection", slog.Int("services", len(g.proxy.Snapshot().Schema.Services())), slog.Duration("took", time.Since(start)))
			}
		}
		g.reloadMu.Unlock()
	}
}

// schemaState is what /readyz says of the clusters read by reflection.
type schemaState struct {
	Status  string `json:"status"`
	Hash    string `json:"hash,omitempty"`
	Fetched string `json:"fetched,omitempty"`
	Error   string `json:"error,omitempty"`
	Since   string `json:"since,omitempty"`
}

// readySchema is reflectionStates for /readyz: nil (nothing added) when
// no cluster is read by reflection.
func (g *Gateway) readySchema() any {
	if s := g.reflectionStates(); s != nil {
		return s
	}
	return nil
}

// reflectionStates reports each reflection watch's state, by cluster; nil
// when no cluster is read by reflection.
func (g *Gateway) reflectionStates() map[string]schemaState {
	var ws watches
	if p := g.watchNow.Load(); p != nil {
		ws = *p
	}
	if len(ws) == 0 {
		return nil
	}
	out := make(map[string]schemaState, len(ws))
	for name, rw := range ws {
		_, st := rw.w.Current()
		s := schemaState{Status: st.Status.String(), Hash: st.Hash}
		if !st.Fetched.IsZero() {
			s.Fetched = st.Fetched.UTC().Format(time.RFC3339)
		}
		if st.Err != nil {
			s.Error = st.Err.Error()
			s.Since = st.Since.UTC().Format(time.RFC3339)
		}
		out[name] = s
	}
	return out
}
