package frontdoor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sseRecord is the data of the one "event: error" record of body, with
// the lines before it; ok false when body is not such a record.
func sseRecord(t *testing.T, body string) (before string, st map[string]any, ok bool) {
	t.Helper()
	before, data, found := strings.Cut(body, "event: error\ndata: ")
	if !found || !strings.HasSuffix(data, "\n\n") {
		return "", nil, false
	}
	if err := json.Unmarshal([]byte(strings.TrimSuffix(data, "\n\n")), &st); err != nil {
		t.Fatalf("event data %q: %v", data, err)
	}
	return before, st, true
}

// An EventSource (GET, Accept: text/event-stream) reads only 200
// text/event-stream: the gateway's own refusals reach it as an error event.
func TestSSEErrorsReachEventSource(t *testing.T) {
	h := NewHTTPHandler(HTTPOptions{})
	for _, c := range []struct {
		name, method, accept string
		event                bool
	}{
		{"event source", "GET", "text/event-stream", true},
		{"among other types", "GET", "application/json;q=0.5, Text/Event-Stream", true},
		{"json", "GET", "application/json", false},
		{"not a GET", "POST", "text/event-stream", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(c.method, "/v1/x:watch", nil)
			r.Header.Set("Accept", c.accept)
			h.ServeHTTP(rec, r)
			_, st, ok := sseRecord(t, rec.Body.String())
			switch {
			case c.event && (rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" || !ok || st["code"] != float64(5)):
				t.Errorf("%d %q %q, want 200 and an error event with NOT_FOUND", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			case !c.event && (rec.Code != 404 || rec.Header().Get("Content-Type") != "application/json" || ok):
				t.Errorf("%d %q %q, want the 404 JSON unchanged", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			}
		})
	}
	t.Run("retry from Retry-After", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w, finish := sseErrors(rec, &http.Request{Method: "GET", Header: http.Header{"Accept": {"text/event-stream"}}})
		w.Header().Set("Retry-After", "2")
		Error(w, 14, http.StatusServiceUnavailable, "busy")
		finish()
		before, st, ok := sseRecord(t, rec.Body.String())
		if rec.Code != 200 || !ok || before != "retry: 2000\n" || st["message"] != "busy" {
			t.Errorf("%d %q, want 200, retry: 2000 and an error event", rec.Code, rec.Body.String())
		}
	})
	t.Run("a stream passes", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w, finish := sseErrors(rec, &http.Request{Method: "GET", Header: http.Header{"Accept": {"text/event-stream"}}})
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {}\n\n"))
		w.(http.Flusher).Flush()
		finish()
		if rec.Code != 200 || rec.Body.String() != "data: {}\n\n" || !rec.Flushed {
			t.Errorf("%d %q flushed %v", rec.Code, rec.Body.String(), rec.Flushed)
		}
	})
}
