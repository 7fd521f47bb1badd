// Package admin is the gateway's admin server, on a listener of its own
// (loopback by default): /metrics (Prometheus), /healthz (the process is
// alive), /readyz (ready for traffic), /debug/pprof/, /routes (the route
// table as JSON), /config (the configuration in force, secrets
// redacted) and, when given one, the console at /console/.
package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Options are what the admin handler serves.
type Options struct {
	// Registry is scraped at /metrics.
	Registry *prometheus.Registry
	// Ready reports readiness and, when not ready, why.
	Ready func() (bool, string)
	// Routes returns the route table, encoded as JSON at /routes.
	Routes func() any
	// Config returns the configuration in force; /config shows it with
	// every field marked debug_redact cleared.
	Config func() proto.Message
	// Schema, when set, returns what /readyz adds as "schema" when not
	// nil: the state of the descriptors read by server reflection, which
	// does not decide readiness (native gRPC needs no descriptors).
	Schema func() any
	// Reload, when set, serves POST /reload: 200 when the configuration
	// was reloaded, 422 with the error when it was rejected.
	Reload func() error
	// Console, when set, serves /console/ (the console strips the
	// prefix itself); / redirects to it.
	Console http.Handler
}

// Handler returns the admin HTTP handler.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := o.Ready()
		body := map[string]any{"status": "ready"}
		code := http.StatusOK
		if !ok {
			body = map[string]any{"status": "not ready", "reason": why}
			code = http.StatusServiceUnavailable
		}
		if o.Schema != nil {
			if s := o.Schema(); s != nil {
				body["schema"] = s
			}
		}
		writeJSON(w, code, body)
	})
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Routes())
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(Redact(o.Config()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	if o.Reload != nil {
		mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
			if err := o.Reload(); err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"status": "rejected", "error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
		})
	}
	if o.Console != nil {
		mux.Handle("/console/", o.Console)
		mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
		mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Redact returns a copy of m with every field whose options say
// debug_redact replaced by its redacted form (strings "[redacted]", other
// kinds cleared), at any depth.
func Redact(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	c := proto.Clone(m)
	redact(c.ProtoReflect())
	return c
}

func redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDebugRedact() {
			switch {
			case fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
				m.Set(fd, protoreflect.ValueOfString("[redacted]"))
			default:
				m.Clear(fd)
			}
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				redact(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redact(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			redact(v.Message())
		}
		return true
	})
}
