package frontdoor

import (
	"bytes"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// A Firewall inspects an HTTP request before the gateway serves it: the
// web application firewall (package frontdoor/waf), which finds the
// request's route itself (REST: its binding's method; gRPC-Web: the path).
// Any HTTP handler of a listener calls it the same way (HTTPOptions.WAF),
// with the request's record and its body read whole.
type Firewall interface {
	// Inspect inspects r, whose body (nil: none) has been read whole and
	// whose record is info (its door in info.Door). It returns the writer
	// to answer r through and done, to call once the answer is written;
	// or ok false when it answered r itself (refused).
	Inspect(w http.ResponseWriter, r *http.Request, info *callinfo.Info, body []byte) (rw http.ResponseWriter, done func(), ok bool)
}

// inspect is the WAF hook of the handler: h.o.WAF on r, whose body is
// body, or, when body is nil, r's own read whole (the REST door's is in
// memory already, within http.max_body_bytes). It answers r itself and
// returns ok false when r is refused.
func (h *handler) inspect(w http.ResponseWriter, r *http.Request, info *callinfo.Info, body []byte) (http.ResponseWriter, func(), bool) {
	if h.o.WAF == nil {
		return w, func() {}, true
	}
	if body == nil && r.Body != nil && r.Body != http.NoBody {
		if rb, ok := r.Body.(restBody); ok {
			body = rb.b
		} else {
			b, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			if err != nil {
				Error(w, codes.InvalidArgument, http.StatusBadRequest, "edgegate: reading the request body: "+err.Error())
				return nil, nil, false
			}
			body = b
			r.Body = restBody{bytes.NewReader(b), b}
		}
	}
	return h.o.WAF.Inspect(w, r, info, body)
}
