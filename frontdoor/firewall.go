package frontdoor

import (
	"bytes"
	"io"
	"net/http"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// A Firewall inspects an HTTP request before the gateway serves it: the
// web application firewall (package frontdoor/waf), which finds the
// request's route itself (REST: its binding's method; gRPC-Web: the path).
// Any HTTP handler of a listener calls it the same way (HTTPOptions.WAF),
// with the request's record and its body read whole.
type Firewall interface {
	// Inspect inspects r, whose record is info (its door in info.Door)
	// and whose body is body when it has been read whole (nil: none, or
	// not read; BufferBody reads it). It returns the writer to answer r
	// through and done, to call once the answer is written; or ok false
	// when it answered r itself (refused).
	Inspect(w http.ResponseWriter, r *http.Request, info *callinfo.Info, body []byte) (rw http.ResponseWriter, done func(), ok bool)
}

// inspect is the WAF hook of the handler: h.o.WAF on r, whose body is
// body, or, when body is nil, the REST door's body in memory (within
// http.max_body_bytes), or none read yet (the firewall reads it with
// BufferBody only when it inspects r). It answers r itself and returns
// ok false when r is refused.
func (h *handler) inspect(w http.ResponseWriter, r *http.Request, info *callinfo.Info, body []byte) (http.ResponseWriter, func(), bool) {
	if h.o.WAF == nil {
		return w, func() {}, true
	}
	if rb, ok := r.Body.(restBody); ok && body == nil {
		body = rb.b
	}
	return h.o.WAF.Inspect(w, r, info, body)
}

// BufferBody reads r's body whole into memory, where r's handler reads it
// after, and returns it (nil when r has none).
func BufferBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if rb, ok := r.Body.(restBody); ok {
		return rb.b, nil
	}
	b, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = restBody{bytes.NewReader(b), b}
	return b, nil
}
