package frontdoor

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
)

// sseErrors makes the failure answers to an EventSource readable by it. A
// browser's EventSource (a GET that accepts text/event-stream) drops any
// answer that is not 200 text/event-stream and tells the page only that
// the connection failed; so for such a request an answer that is a
// google.rpc.Status JSON body with an error status (a shed, a 404 or 405,
// an auth refusal, …, made by the gateway itself) is sent as 200 with one
// "event: error" record whose data is that body (and "retry:" from its
// Retry-After). The REST door answers a stream's own failure so already.
// Other requests, and answers that are not such a body, pass unchanged.
// finish, called when the request has been answered, writes the record.
func sseErrors(w http.ResponseWriter, r *http.Request) (out http.ResponseWriter, finish func()) {
	if r.Method != http.MethodGet || !acceptsEventStream(r) {
		return w, func() {}
	}
	s := &sseErrorWriter{ResponseWriter: w}
	return s, s.finish
}

// acceptsEventStream reports whether r's Accept lists text/event-stream.
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for p := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(p, ";")
			if strings.EqualFold(strings.TrimSpace(mt), sseContentType) {
				return true
			}
		}
	}
	return false
}

type sseErrorWriter struct {
	http.ResponseWriter
	wrote bool
	event bool         // the answer is being turned into an error event
	body  bytes.Buffer // its data, while event
}

func (s *sseErrorWriter) WriteHeader(code int) {
	if s.wrote {
		return
	}
	s.wrote = true
	h := s.Header()
	if code < 300 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		s.ResponseWriter.WriteHeader(code)
		return
	}
	s.event = true
	h.Set("Content-Type", sseContentType)
	h.Set("Cache-Control", "no-cache")
	h.Del("Content-Length")
	s.ResponseWriter.WriteHeader(http.StatusOK)
}

func (s *sseErrorWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	if s.event {
		return s.body.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

// finish writes the error event of an answer turned into one.
func (s *sseErrorWriter) finish() {
	if !s.event {
		return
	}
	var out bytes.Buffer
	if secs, err := strconv.Atoi(s.Header().Get("Retry-After")); err == nil && secs >= 0 {
		out.WriteString("retry: " + strconv.Itoa(secs*1000) + "\n")
	}
	out.WriteString("event: error\ndata: ")
	out.Write(bytes.ReplaceAll(bytes.TrimSpace(s.body.Bytes()), []byte("\n"), []byte("\ndata: ")))
	out.WriteString("\n\n")
	_, _ = s.ResponseWriter.Write(out.Bytes())
}

func (s *sseErrorWriter) Flush() {
	if s.event {
		return
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *sseErrorWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
