package callinfo

import (
	"net/http"

	"google.golang.org/grpc/metadata"
)

// Forwarding is what the client of a call sent of the forwarding headers,
// and the authority it called: what the gateway's forwarding rule
// (package clientip) starts from. The door records it from the client's
// own request, before anything has changed it (grpc-gateway, for one,
// appends the peer to the REST door's X-Forwarded-For metadata).
type Forwarding struct {
	For       []string // X-Forwarded-For, every value as sent
	Proto     []string // X-Forwarded-Proto
	Host      []string // X-Forwarded-Host
	Forwarded []string // Forwarded (RFC 7239)
	// Authority is the call's :authority (an HTTP request's Host).
	Authority string
}

// IsForwardingKey reports whether k, a lower-case metadata key, is one of
// the forwarding headers (X-Forwarded-For, -Proto, -Host, X-Real-IP,
// Forwarded). The gateway never forwards a client's as they are: the
// upstream gets the ones the forwarding rule sets (package clientip).
func IsForwardingKey(k string) bool {
	switch k {
	case "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded":
		return true
	}
	return false
}

// ForwardingOf is the forwarding of a native call whose incoming metadata
// is md.
func ForwardingOf(md metadata.MD) Forwarding {
	f := Forwarding{
		For:       md["x-forwarded-for"],
		Proto:     md["x-forwarded-proto"],
		Host:      md["x-forwarded-host"],
		Forwarded: md["forwarded"],
	}
	if a := md[":authority"]; len(a) > 0 {
		f.Authority = a[0]
	}
	return f
}

// HTTPForwarding is the forwarding of an HTTP request with headers h and
// host (r.Host).
func HTTPForwarding(h http.Header, host string) Forwarding {
	return Forwarding{
		For:       h.Values("X-Forwarded-For"),
		Proto:     h.Values("X-Forwarded-Proto"),
		Host:      h.Values("X-Forwarded-Host"),
		Forwarded: h.Values("Forwarded"),
		Authority: host,
	}
}

// RecordHTTPForwarding returns next recording, in the call record of each
// request's context, what the request's client sent of the forwarding
// headers: the REST door's, whose handlers (grpc-gateway's) change them.
func RecordHTTPForwarding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := FromContext(r.Context()); info != nil {
			info.SetClientForwarding(HTTPForwarding(r.Header, r.Host))
		}
		next.ServeHTTP(w, r)
	})
}
