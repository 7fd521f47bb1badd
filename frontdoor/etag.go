package frontdoor

import (
	"net/http"
	"strings"
)

// notModified returns w, or, for a GET or HEAD with If-None-Match, a
// writer that answers 304 Not Modified, without a body, when the answer
// would be a 200 whose ETag (the response cache's) the request names.
func notModified(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	inm := r.Header.Get("If-None-Match")
	if inm == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return w
	}
	return &etagWriter{ResponseWriter: w, inm: inm}
}

// etagWriter is notModified's writer.
type etagWriter struct {
	http.ResponseWriter
	inm      string
	wrote    bool
	notModif bool
}

func (w *etagWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if code == http.StatusOK && etagMatch(w.inm, w.Header().Get("Etag")) {
		w.notModif = true
		h := w.Header()
		h.Del("Content-Type")
		h.Del("Content-Length")
		code = http.StatusNotModified
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *etagWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.notModif {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *etagWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher (server streams flush each message).
func (w *etagWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// etagMatch reports whether an If-None-Match list names etag (weak
// comparison, RFC 9110 13.1.2), or is "*".
func etagMatch(list, etag string) bool {
	if etag == "" {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
