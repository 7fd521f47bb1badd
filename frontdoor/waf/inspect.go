package waf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/grpcweb"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// Request is what Serve inspects besides the HTTP request itself.
type Request struct {
	// Body is the request's body, read whole (nil: none).
	Body []byte
	// ContentType, when set, is the body's content type for the rules in
	// place of the request's (a gRPC-Web message given as its JSON form:
	// "application/json").
	ContentType string
	// Uninspectable is set when the body cannot be given to the rules (a
	// compressed or undecodable gRPC-Web message): it is then handled as
	// a body over the limit.
	Uninspectable bool
	// Stream is set when the response is a stream (never buffered, never
	// inspected).
	Stream bool
	// Log, when set, is given the error-log line (ModSecurity's format:
	// [id "…"] [msg "…"] …) of every matched rule that logs, when the
	// request's inspection ends.
	Log func(line string)
}

// The outcomes of an inspected request, in metrics.
const (
	OutcomeClean       = "clean"       // no rule matched
	OutcomePassed      = "passed"      // rules matched, under the threshold
	OutcomeBlocked     = "blocked"     // refused
	OutcomeDetected    = "detected"    // over the threshold, served (detection only)
	OutcomeUninspected = "uninspected" // body over the limit or not inspectable, served
	OutcomeTooLarge    = "too_large"   // body over the limit or not inspectable, refused
)

// Serve inspects r (its body in req) before a door serves it, and writes
// the matched rule ids and the anomaly score into info. When the request
// is refused it answers r itself (a gRPC-Web request trailers-only, any
// other with a google.rpc.Status JSON body) and returns ok false; else it
// returns the writer to answer through, which inspects the response when
// the firewall does, and done, which the caller calls after the answer.
func (f *Firewall) Serve(w http.ResponseWriter, r *http.Request, info *callinfo.Info, req Request) (rw http.ResponseWriter, done func(), ok bool) {
	tx := f.waf.NewTransaction()
	if o, isOpt := f.waf.(experimental.WAFWithOptions); isOpt {
		tx = o.NewTransactionWithOptions(experimental.Options{Context: r.Context()})
	}
	c := &call{f: f, tx: tx, info: info, w: w, r: r, log: req.Log}
	over := len(req.Body) > f.maxBody || req.Uninspectable
	if over && !f.passLarge {
		c.finish(OutcomeTooLarge)
		msg := fmt.Sprintf("edgegate: the request body is over the web application firewall's inspection limit of %d bytes", f.maxBody)
		if req.Uninspectable {
			msg = "edgegate: the web application firewall cannot inspect the request body (a compressed or malformed message)"
		}
		answer(w, r, http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted, msg))
		return nil, nil, false
	}
	it := c.request(req, over)
	if it != nil && f.blocking {
		c.finish(OutcomeBlocked)
		answer(w, r, http.StatusForbidden, status.New(codes.PermissionDenied, "edgegate: the request was refused by the web application firewall"))
		return nil, nil, false
	}
	c.outcome = outcomeOf(c, over)
	if f.responses && !req.Stream && !grpcweb.IsRequest(r) {
		rw := &responseWriter{ResponseWriter: w, c: c, max: f.maxBody}
		return rw, func() { rw.end(); c.finish(c.outcome) }, true
	}
	return w, func() { c.finish(c.outcome) }, true
}

// call is one request's transaction.
type call struct {
	f       *Firewall
	tx      types.Transaction
	info    *callinfo.Info
	w       http.ResponseWriter
	r       *http.Request
	outcome string
	ended   bool
	log     func(string)
}

// request runs the request phases; it returns the interruption, if any.
func (c *call) request(req Request, skipBody bool) *types.Interruption {
	tx, r := c.tx, c.r
	client, cport := splitHostPort(r.RemoteAddr)
	server, sport := "", 0
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		server, sport = splitHostPort(a.String())
	}
	tx.ProcessConnection(client, cport, server, sport)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	for k, vs := range r.Header {
		if req.ContentType != "" && strings.EqualFold(k, "Content-Type") {
			continue
		}
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if req.ContentType != "" {
		tx.AddRequestHeader("Content-Type", req.ContentType)
	}
	if r.Host != "" || r.ProtoAtLeast(1, 1) {
		// net/http keeps Host out of Header; an HTTP/1.1 request without
		// one is refused before here, so an empty one was sent empty.
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return it
	}
	if !skipBody && len(req.Body) > 0 && tx.IsRequestBodyAccessible() {
		if it, _, err := tx.WriteRequestBody(req.Body); it != nil || err != nil {
			return it
		}
	}
	it, _ := tx.ProcessRequestBody()
	return it
}

func outcomeOf(c *call, over bool) string {
	switch {
	case c.detected():
		return OutcomeDetected
	case over:
		return OutcomeUninspected
	case len(c.rules()) > 0:
		return OutcomePassed
	}
	return OutcomeClean
}

// detected reports whether a detection-only transaction reached its
// threshold (the CRS's blocking evaluation rule matched).
func (c *call) detected() bool {
	for _, m := range c.tx.MatchedRules() {
		if id := m.Rule().ID(); id == 949110 || id == 959100 {
			return true
		}
	}
	return false
}

// rules are the ids of the matched rules that log (a message), but the
// CRS's setup and initialization (900000–901999).
func (c *call) rules() []int {
	var ids []int
	for _, m := range c.tx.MatchedRules() {
		if id := m.Rule().ID(); m.Message() != "" && id != 0 && (id < 900000 || id > 901999) {
			ids = append(ids, m.Rule().ID())
		}
	}
	return ruleIDs(ids)
}

// score is the inbound anomaly score of the transaction (the CRS's
// blocking score); -1 when the CRS did not compute one.
func (c *call) score() int {
	st, ok := c.tx.(plugintypes.TransactionState)
	if !ok {
		return -1
	}
	v := st.Variables().TX().Get("blocking_inbound_anomaly_score")
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return -1
	}
	return n
}

// finish records the call's rules and score, counts it, and closes the
// transaction; once.
func (c *call) finish(outcome string) {
	if c.ended {
		return
	}
	c.ended = true
	c.tx.ProcessLogging() // phase 5: the CRS's correlation rules
	ids := c.rules()
	score := max(c.score(), 0)
	if c.info != nil {
		c.info.SetWAF(ids, score, outcome)
	}
	c.f.m.observe(outcome, ids)
	if c.log != nil {
		for _, m := range c.tx.MatchedRules() {
			if m.Message() != "" {
				c.log(m.ErrorLog())
			}
		}
	}
	_ = c.tx.Close()
}

// answer refuses r with st: trailers-only for gRPC-Web, else JSON with
// the HTTP status code.
func answer(w http.ResponseWriter, r *http.Request, code int, st *status.Status) {
	if grpcweb.IsRequest(r) {
		grpcweb.WriteError(w, r, st)
		return
	}
	frontdoor.WriteStatus(w, st, code)
}

// responseWriter inspects a unary REST answer: its headers, then its body
// (held, up to the limit) when the call ends; an answer the rules refuse
// is replaced by a 403.
type responseWriter struct {
	http.ResponseWriter
	c      *call
	max    int
	code   int
	buf    bytes.Buffer
	passed bool // over the limit: written through, not inspected further
	failed bool // refused
}

func (rw *responseWriter) WriteHeader(code int) {
	if rw.code == 0 {
		rw.code = code
	}
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	if rw.failed {
		return 0, errors.New("waf: the response was refused")
	}
	if rw.passed {
		return rw.ResponseWriter.Write(b)
	}
	if rw.buf.Len()+len(b) > rw.max {
		// Too large to hold: what was held and the rest are written
		// through, the headers inspected only.
		if !rw.headers() {
			return 0, errors.New("waf: the response was refused")
		}
		rw.passed = true
		rw.ResponseWriter.WriteHeader(rw.code)
		if _, err := rw.ResponseWriter.Write(rw.buf.Bytes()); err != nil {
			return 0, err
		}
		rw.buf.Reset()
		return rw.ResponseWriter.Write(b)
	}
	return rw.buf.Write(b)
}

// Flush is a no-op until the answer is inspected (its body is held).
func (rw *responseWriter) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok && rw.passed {
		f.Flush()
	}
}

// headers runs the response headers phase; false when it refused the
// answer (which it then wrote).
func (rw *responseWriter) headers() bool {
	tx := rw.c.tx
	for k, vs := range rw.Header() {
		for _, v := range vs {
			tx.AddResponseHeader(k, v)
		}
	}
	if it := tx.ProcessResponseHeaders(rw.code, rw.c.r.Proto); it != nil && rw.c.f.blocking {
		rw.refuse()
		return false
	}
	return true
}

func (rw *responseWriter) refuse() {
	rw.failed = true
	rw.c.outcome = OutcomeBlocked
	h := rw.Header()
	for k := range h {
		if !strings.HasPrefix(strings.ToLower(k), "access-control-") && !strings.EqualFold(k, "vary") {
			h.Del(k)
		}
	}
	frontdoor.WriteStatus(rw.ResponseWriter, status.New(codes.PermissionDenied, "edgegate: the response was withheld by the web application firewall"), http.StatusForbidden)
}

// end inspects the held answer and writes it, or refuses it.
func (rw *responseWriter) end() {
	if rw.passed || rw.failed {
		return
	}
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	if !rw.headers() {
		return
	}
	if rw.Header().Get("Content-Type") == "" && rw.buf.Len() > 0 {
		rw.Header().Set("Content-Type", http.DetectContentType(rw.buf.Bytes()))
	}
	tx := rw.c.tx
	if tx.IsResponseBodyAccessible() && tx.IsResponseBodyProcessable() && rw.buf.Len() > 0 {
		if it, _, _ := tx.WriteResponseBody(rw.buf.Bytes()); it == nil {
			if it, _ := tx.ProcessResponseBody(); it != nil && rw.c.f.blocking {
				rw.refuse()
				return
			}
		} else if rw.c.f.blocking {
			rw.refuse()
			return
		}
	}
	if rw.buf.Len() > 0 {
		rw.Header().Set("Content-Length", strconv.Itoa(rw.buf.Len()))
	}
	rw.ResponseWriter.WriteHeader(rw.code)
	_, _ = rw.ResponseWriter.Write(rw.buf.Bytes())
}

func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func splitHostPort(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func fieldErr(path string, err error) error { return &config.FieldError{Path: path, Err: err} }
