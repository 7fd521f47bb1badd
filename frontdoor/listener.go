package frontdoor

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
	"github.com/edgegate/edgegate/internal/h2srv"
)

// ListenerOptions are what one listener's server is built from.
type ListenerOptions struct {
	// Listener, HTTP and Limits are the listener's configuration and the
	// configuration's http and limits sections (loaded, defaults filled).
	Listener *configv1.Listener
	HTTP     *configv1.HTTP
	Limits   *configv1.ServerLimits
	// TLS, when set, terminates TLS on every connection.
	TLS *tls.Config
	// GRPC is the core server, for native gRPC; Native the native door
	// of a listener whose native_engine is the relay.
	GRPC   *grpc.Server
	Native *NativeDoor
	// REST and GRPCWeb are the doors; OpenAPI the spec served at the
	// openapi path.
	REST    http.Handler
	GRPCWeb *grpcweb.Door
	OpenAPI func() []byte
	// WAF, when set, inspects the HTTP side's requests.
	WAF Firewall
	// Edge is what serves in front of the REST door: compression, static
	// mounts, HTTP routes.
	Edge EdgeOptions
	// AccessLog gets the HTTP doors' lines.
	AccessLog *accesslog.Logger
	Log       *slog.Logger
}

// IsGRPCOnly reports whether a listener is a dedicated native gRPC port
// (protocols: [PROTOCOL_GRPC]), served by the core server without a front
// door.
func IsGRPCOnly(l *configv1.Listener) bool {
	for _, p := range l.GetProtocols() {
		if p != configv1.Protocol_PROTOCOL_GRPC {
			return false
		}
	}
	return len(l.GetProtocols()) > 0
}

// NewServer returns the server of a listener (see Server): for one that
// shares its port between its doors, the HTTP side (HTTP/1.1, h2c and h2)
// with the configuration's timeouts and limits and the core for native
// gRPC when the listener serves it; for a dedicated gRPC port, the core
// alone, behind the same bounds of a connection's first request.
func NewServer(o ListenerOptions) *Server {
	lim := o.Limits
	if IsGRPCOnly(o.Listener) {
		s := &Server{
			GRPC:                 o.GRPC,
			SniffTimeout:         lim.GetConnectionTimeout().AsDuration(),
			MaxHeaderBlockBytes:  int(lim.GetMaxHeaderBlockBytes()),
			MaxPrematureResets:   int(lim.GetMaxPrematureResets()),
			MaxConcurrentStreams: lim.GetMaxConcurrentStreams(),
			TLS:                  o.TLS,
			Log:                  o.Log,
		}
		s.useRelay(o)
		return s
	}
	protos := map[configv1.Protocol]bool{}
	for _, p := range o.Listener.GetProtocols() {
		protos[p] = true
	}
	hc := o.HTTP
	ho := HTTPOptions{
		CORS:               NewCORS(hc.GetCors()),
		MaxBodyBytes:       int64(hc.GetMaxBodyBytes()),
		AccessLog:          o.AccessLog,
		MaxInFlight:        int64(hc.GetMaxInFlight()),
		BodyTimeout:        hc.GetRequestBodyTimeout().AsDuration(),
		MaxHeaderListBytes: int(lim.GetMaxHeaderListBytes()),
		WAF:                o.WAF,
		Edge:               o.Edge,
	}
	if protos[configv1.Protocol_PROTOCOL_REST] {
		ho.REST = o.REST
		if !hc.GetDisableOpenapi() {
			ho.OpenAPIPath, ho.OpenAPI = hc.GetOpenapiPath(), o.OpenAPI
		}
	}
	if protos[configv1.Protocol_PROTOCOL_GRPC_WEB] {
		ho.GRPCWeb = o.GRPCWeb
	}
	protocols := &http.Protocols{}
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	s := &Server{
		HTTP: &http.Server{
			Handler:           NewHTTPHandler(ho),
			ReadHeaderTimeout: hc.GetReadHeaderTimeout().AsDuration(),
			IdleTimeout:       hc.GetIdleTimeout().AsDuration(),
			// Header lists up to the block limit reach the handler, which
			// refuses one over max_header_list_bytes with 431.
			MaxHeaderBytes: int(lim.GetMaxHeaderBlockBytes()),
			ErrorLog:       slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
			ConnContext:    connContext,
			Protocols:      protocols,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams: int(lim.GetMaxConcurrentStreams()),
				// The default SETTINGS_MAX_FRAME_SIZE, which the
				// sniffer's SETTINGS leave in force before the server's
				// own arrive: a client that sends larger frames is
				// answered FRAME_SIZE_ERROR on every path.
				MaxReadFrameSize: maxFrameSize,
			},
		},
		SniffTimeout:         lim.GetConnectionTimeout().AsDuration(),
		MaxHeaderBlockBytes:  int(lim.GetMaxHeaderBlockBytes()),
		MaxPrematureResets:   int(lim.GetMaxPrematureResets()),
		MaxConcurrentStreams: lim.GetMaxConcurrentStreams(),
		TLS:                  o.TLS,
		Log:                  o.Log,
	}
	if protos[configv1.Protocol_PROTOCOL_GRPC] {
		s.GRPC = o.GRPC
		s.useRelay(o)
	}
	return s
}

// UsesRelay reports whether a listener's native gRPC is served by the
// relay: unless it asks for grpc-go's server.
func UsesRelay(l *configv1.Listener) bool {
	return l.GetNativeEngine() != configv1.NativeEngine_NATIVE_ENGINE_GRPC_GO
}

// writeTimeout is limits.write_timeout as the relay takes it: absent, its
// default; 0s, none.
func writeTimeout(lim *configv1.ServerLimits) time.Duration {
	d := lim.GetWriteTimeout()
	if d != nil && d.AsDuration() == 0 {
		return -1
	}
	return d.AsDuration()
}

// useRelay puts the relay in grpc.Server's place when the listener asks
// for it, with the same limits.
func (s *Server) useRelay(o ListenerOptions) {
	if !UsesRelay(o.Listener) || o.Native == nil {
		return
	}
	lim := o.Limits
	ka := lim.GetKeepalive()
	s.GRPC = nil
	s.Relay = &h2srv.Server{
		Handler:              o.Native,
		MaxConcurrentStreams: lim.GetMaxConcurrentStreams(),
		MaxHeaderBlockBytes:  int(lim.GetMaxHeaderBlockBytes()),
		// As on grpc.Server: header lists up to the block limit reach the
		// chain, which refuses one over max_header_list_bytes; one over
		// the block limit is refused here, with the same status.
		MaxHeaderListSize:  lim.GetMaxHeaderBlockBytes(),
		HeaderListTooLarge: h2srv.HandlerFunc(headerListTooLarge),
		Timeout:            grpcTimeout,
		MaxPrematureResets: int(lim.GetMaxPrematureResets()),
		MaxControlFrames:   int(lim.GetMaxControlFrames()),
		WriteTimeout:       writeTimeout(lim),
		// The keepalive settings grpc.Server takes (gateway's
		// serverOptions), with the same meaning.
		IdleTimeout:             ka.GetMaxConnectionIdle().AsDuration(),
		PingInterval:            ka.GetTime().AsDuration(),
		PingTimeout:             ka.GetTimeout().AsDuration(),
		MinPingInterval:         ka.GetMinPingInterval().AsDuration(),
		PermitPingWithoutStream: ka.GetPermitWithoutStream(),
		MaxConnectionAge:        ka.GetMaxConnectionAge().AsDuration(),
		MaxConnectionAgeGrace:   ka.GetMaxConnectionAgeGrace().AsDuration(),
		Log:                     o.Log,
	}
}
