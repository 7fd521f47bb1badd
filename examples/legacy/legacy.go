// Package legacy is a plain HTTP service of the example: what sits beside
// the gRPC services (a legacy REST API), reached through an HTTP route of
// the gateway. cmd/shopd serves it.
package legacy

import (
	"encoding/json"
	"net/http"
	"time"
)

// Handler serves GET /status (the service's status as JSON), GET /healthz
// (200: the health check of the HTTP cluster) and, for any other path, a
// JSON echo of the request line and the forwarding headers the gateway
// set.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"service": "legacy", "status": "ok", "time": time.Now().UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"service":           "legacy",
			"method":            r.Method,
			"path":              r.URL.Path,
			"host":              r.Host,
			"x_forwarded_for":   r.Header.Get("X-Forwarded-For"),
			"x_forwarded_proto": r.Header.Get("X-Forwarded-Proto"),
			"x_forwarded_host":  r.Header.Get("X-Forwarded-Host"),
		})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
