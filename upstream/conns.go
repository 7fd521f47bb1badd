package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/encoding"

	"github.com/edgegate/edgegate/internal/h2client"
	"github.com/edgegate/edgegate/tlsconf"
)

// conns are a cluster's frame-level HTTP/2 connections (internal/h2client)
// that its routed calls go over: one per endpoint address the balancer
// picks, dialled on the first call to it and again after it ends. Each is
// multiplexed: the calls to one address share its connection, up to the
// server's stream limit (past it they wait, as grpc-go's do).
type conns struct {
	tls        *tlsconf.Client // nil: h2c
	serverName string          // for TLS when the config names none; "" the address's host
	timeout    time.Duration   // one connection attempt
	opts       h2client.Options

	mu     sync.Mutex
	byAddr map[string]*addrConn
	closed bool
}

// addrConn is the connection to one address, and the dial in progress.
type addrConn struct {
	cur     *h2client.Conn
	dialing chan struct{} // closed when the dial in progress ends
	err     error         // the last dial's failure
	failed  time.Time
}

// redialAfter is how soon a failed address is dialled again; calls picked
// for it meanwhile fail at once with the last dial's error.
const redialAfter = 250 * time.Millisecond

var (
	errClosed  = errors.New("cluster closed")
	errDropped = errors.New("the balancer let go of the endpoint while its connection was dialled")
)

// get returns a usable connection to addr, dialling one if there is none.
func (p *conns) get(ctx context.Context, addr string) (*h2client.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return nil, errClosed
		}
		ac := p.byAddr[addr]
		if ac == nil {
			ac = &addrConn{}
			p.byAddr[addr] = ac
		}
		if ac.cur != nil && ac.cur.Usable() {
			return ac.cur, nil
		}
		if ac.dialing == nil {
			if ac.err != nil && time.Since(ac.failed) < redialAfter {
				return nil, ac.err
			}
			ac.dialing = make(chan struct{})
			// The dial outlives the call that started it: others wait on it.
			go p.dial(addr, ac) //nolint:gosec,contextcheck // bounded by the connect timeout, not by one call
		}
		wait := ac.dialing
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			p.mu.Lock()
			return nil, ctx.Err()
		}
		p.mu.Lock()
		switch {
		case p.byAddr[addr] != ac:
			return nil, errDropped // picked again, the call goes elsewhere
		case ac.err != nil && ac.dialing == nil:
			return nil, ac.err // this dial failed
		}
	}
}

// dial makes the connection to addr: TCP, TLS when configured (ALPN h2),
// and the HTTP/2 preface answered by the server's SETTINGS, all within the
// connect timeout.
func (p *conns) dial(addr string, ac *addrConn) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	c, err := p.connect(ctx, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := ac.cur
	ac.cur, ac.err = c, err
	if err != nil {
		ac.failed = time.Now()
	}
	close(ac.dialing)
	ac.dialing = nil
	if c != nil && (p.closed || p.byAddr[addr] != ac) {
		// The cluster closed, or dropped addr, while this dial went on.
		ac.cur = nil
		go func() { _ = c.Close() }()
	}
	if old != nil && old != c {
		go func() { _ = old.Shutdown(context.Background()) }()
	}
}

func (p *conns) connect(ctx context.Context, addr string) (*h2client.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connection error: %w", err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if p.tls != nil {
		conf := p.tls.Config().Clone()
		if conf.ServerName == "" {
			conf.ServerName = p.serverName
			if conf.ServerName == "" {
				conf.ServerName, _, _ = net.SplitHostPort(addr)
			}
		}
		conf.NextProtos = []string{"h2"}
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("connection error: tls: %w", err)
		}
		if proto := tc.ConnectionState().NegotiatedProtocol; proto != "h2" {
			_ = nc.Close()
			return nil, fmt.Errorf("connection error: the upstream's TLS negotiated %q, not h2", proto)
		}
		nc = tc
	}
	c := h2client.NewConn(nc, p.opts)
	select {
	case <-c.Ready():
		if err := c.Err(); err != nil {
			return nil, fmt.Errorf("connection error: %w", err)
		}
		return c, nil
	case <-ctx.Done():
		_ = c.Close()
		return nil, fmt.Errorf("connection error: no HTTP/2 SETTINGS from %s within %v", addr, p.timeout)
	}
}

// drop lets go of the connection to addr, an endpoint the balancer no
// longer picks: it closes once its calls have ended (GOAWAY first). A dial
// in progress for addr closes what it makes.
func (p *conns) drop(addr string) {
	p.mu.Lock()
	ac := p.byAddr[addr]
	delete(p.byAddr, addr)
	var c *h2client.Conn
	if ac != nil {
		c, ac.cur = ac.cur, nil
	}
	p.mu.Unlock()
	if c != nil {
		go func() { _ = c.Shutdown(context.Background()) }()
	}
}

// close ends every connection; calls on them fail.
func (p *conns) close() {
	p.mu.Lock()
	p.closed = true
	all := make([]*h2client.Conn, 0, len(p.byAddr))
	for _, ac := range p.byAddr {
		if ac.cur != nil {
			all = append(all, ac.cur)
		}
	}
	p.mu.Unlock()
	for _, c := range all {
		_ = c.Close()
	}
}

// defaultServerName is what a cluster's TLS verifies when its config names
// no server: the host of a dns:/// target; "" (each endpoint's own host)
// for static endpoints.
func defaultServerName(endpoints []string) string {
	if len(endpoints) == 1 && strings.HasPrefix(endpoints[0], "dns:///") {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(endpoints[0], "dns:///"))
		if err == nil {
			return host
		}
	}
	return ""
}

// initFrames sets up the cluster's own transport of routed calls from its
// spec: TLS, keepalive, message limits, compression, retries.
func (c *Cluster) initFrames(sp Spec) error {
	cc := sp.Config
	eps := cc.GetEndpoints()
	c.frames = &conns{byAddr: map[string]*addrConn{}, timeout: cc.GetConnectTimeout().AsDuration(), serverName: defaultServerName(eps)}
	if c.frames.timeout <= 0 {
		c.frames.timeout = 20 * time.Second
	}
	if ka := cc.GetKeepalive(); ka != nil {
		c.frames.opts.PingInterval = ka.GetTime().AsDuration()
		c.frames.opts.PingTimeout = ka.GetTimeout().AsDuration()
		c.frames.opts.PermitWithoutStream = ka.GetPermitWithoutStream()
	}
	c.scheme = "http"
	if t := cc.GetTls(); t != nil {
		tc, err := tlsconf.NewReloadingClient(tlsconf.ClientConfig{
			CAFile: t.GetCaFile(), CertFile: t.GetCertFile(), KeyFile: t.GetKeyFile(), ServerName: t.GetServerName(),
		})
		if err != nil {
			return tlsError{err}
		}
		c.frames.tls = tc
		c.scheme = "https"
	}
	c.authority = cc.GetName()
	if len(eps) == 1 && strings.HasPrefix(eps[0], "dns:///") {
		c.authority = strings.TrimPrefix(eps[0], "dns:///")
	}
	c.maxMsg = int(cc.GetMaxMessageBytes())
	if c.maxMsg <= 0 {
		c.maxMsg = 4 << 20
	}
	if name := cc.GetCompression(); name != "" {
		if c.compressor = encoding.GetCompressor(name); c.compressor == nil {
			return fmt.Errorf("compression %q: no such compressor", name)
		}
	}
	c.retries = newRetries(cc.GetRetry(), sp.RetryMethods)
	return nil
}
