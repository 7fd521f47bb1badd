package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// Headers the REST door always forwards as metadata, and always exposes.
var (
	// authorization is forwarded by grpc-gateway itself.
	alwaysForward = []string{"x-request-id", "traceparent", "tracestate"}
	alwaysExpose  = []string{"x-request-id", "retry-after", "ratelimit", "ratelimit-policy", "www-authenticate", "x-edgegate-partial", "cache-status", "etag"}
)

// NewREST returns the REST/JSON door of the routed APIs of reg, calling cc
// (the in-process connection to the core): for a compiled-in service whose
// methods are all routed and whose bindings are its annotations, its
// generated grpc-gateway handlers; for every other binding a dynamic
// handler (restdynamic.go) on the same runtime.
// Errors are google.rpc.Status JSON bodies with the mapped HTTP status;
// unknown paths are 404 and wrong methods 405, as JSON too. A client that
// sends Accept: text/event-stream gets server streams as Server-Sent
// Events; otherwise streams are newline-delimited JSON. A server stream
// that fails before its first message is answered with the mapped status
// and one {"error": …} record, or over Server-Sent Events with 200 and one
// "event: error" record (EventSource reads no other answer).
//
// extraForward are more request headers forwarded as metadata (the auth
// providers' headers).
func NewREST(c *configv1.REST, cc grpc.ClientConnInterface, reg *schema.Registry, extraForward ...string) (*REST, error) {
	resolver := registryResolver{reg}
	json := restJSON{JSONPb: &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{
			UseProtoNames:   c.GetUseProtoNames(),
			EmitUnpopulated: c.GetEmitUnpopulated(),
			UseEnumNumbers:  c.GetEnumsAsNumbers(),
			Resolver:        resolver,
		},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: c.GetDiscardUnknownFields(), Resolver: resolver},
	}, streams: map[protoreflect.FullName]bool{}}
	forward := headerSet(alwaysForward, append(extraForward, c.GetForwardRequestHeaders()...))
	delete(forward, "authorization") // grpc-gateway forwards it itself
	d := &restDoor{json: json, expose: headerSet(alwaysExpose, c.GetExposeResponseHeaders()), serverStreams: map[string]bool{}}
	for _, b := range reg.Bindings() {
		md := b.Method.Desc
		if md.IsStreamingServer() {
			d.serverStreams[b.Method.Full] = true
		}
		if md.IsStreamingClient() {
			json.streams[md.Input().FullName()] = true
		}
	}
	d.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, json),
		runtime.WithMarshalerOption("text/event-stream", &sse{json}),
		runtime.WithIncomingHeaderMatcher(func(k string) (string, bool) {
			k = strings.ToLower(k)
			return k, forward[k]
		}),
		runtime.WithOutgoingHeaderMatcher(d.exposed),
		runtime.WithOutgoingTrailerMatcher(d.exposed),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithErrorHandler(d.writeError),
		runtime.WithStreamErrorHandler(d.streamError),
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptSlash),
	)
	d.raw = runtime.NewServeMux(runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}))
	d.methods = runtime.NewServeMux(runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}))
	for _, b := range reg.Bindings() {
		full := b.Method.Full
		if err := d.methods.HandlePath(b.Verb, b.Path, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
			if m, ok := w.(*methodOnly); ok {
				m.method = full
			}
		}); err != nil {
			return nil, fmt.Errorf("REST binding %s %s: %w", b.Verb, b.Path, err)
		}
	}
	for _, s := range reg.Services() {
		if generated(s) {
			if err := s.REST(context.Background(), d.mux, cc); err != nil {
				return nil, fmt.Errorf("register REST handlers of %s: %w", s.Desc.FullName(), err)
			}
			continue
		}
		for _, m := range s.Methods {
			for _, b := range m.Bindings {
				if err := d.handleDynamic(cc, b); err != nil {
					return nil, fmt.Errorf("REST binding %s %s: %w", b.Verb, b.Path, err)
				}
				if takesRawBody(b) {
					if err := d.raw.HandlePath(b.Verb, b.Path, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) { w.WriteHeader(http.StatusNoContent) }); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return &REST{d}, nil
}

// generated reports whether a service's REST bindings are served by its
// generated handlers: it is compiled in, every method is routed, and its
// bindings are its annotations as they are (the generated handlers
// register every annotated binding of the service, and nothing else).
func generated(s *schema.Service) bool {
	if s.REST == nil {
		return false
	}
	for _, m := range s.Methods {
		if !m.Routed {
			return false
		}
		for _, b := range m.Bindings {
			if b.Origin != schema.FromAnnotation || b.SuccessStatus != 0 {
				return false
			}
		}
	}
	return true
}

// takesRawBody reports whether a binding's body is a google.api.HttpBody
// (a raw body of any content type).
func takesRawBody(b *schema.Binding) bool {
	in := b.Method.Desc.Input()
	switch b.Body {
	case "":
		return false
	case "*":
		return in.FullName() == httpBodyName
	}
	fd := in.Fields().ByName(protoreflect.Name(b.Body))
	return fd != nil && fd.Message() != nil && fd.Message().FullName() == httpBodyName
}

// REST is the REST/JSON door of one configuration.
type REST struct{ d *restDoor }

func (r *REST) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.d.ServeHTTP(w, req) }

// AcceptsRawBody reports whether req is for a binding whose body is a
// google.api.HttpBody, which takes a body of any content type.
func (r *REST) AcceptsRawBody(req *http.Request) bool {
	rec := &statusOnly{h: http.Header{}}
	r.d.raw.ServeHTTP(rec, req)
	return rec.code == http.StatusNoContent
}

// MethodOf returns the method ("/pkg.Service/Method") of the binding req
// is for; "" when no binding matches.
func (r *REST) MethodOf(req *http.Request) string {
	rec := &methodOnly{statusOnly: statusOnly{h: http.Header{}}}
	r.d.methods.ServeHTTP(rec, req)
	return rec.method
}

// methodOnly records the method of the binding a request matched.
type methodOnly struct {
	statusOnly
	method string
}

// statusOnly records only the status of an answer.
type statusOnly struct {
	h    http.Header
	code int
}

func (s *statusOnly) Header() http.Header         { return s.h }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.code = code }

// registryResolver resolves message types (google.protobuf.Any in JSON)
// in a registry's files, then among the compiled-in types (error details).
type registryResolver struct{ reg *schema.Registry }

func (r registryResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
		return mt, nil
	}
	return r.reg.Types().FindMessageByName(name)
}

func (r registryResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	return r.reg.Types().FindMessageByURL(url)
}

func (r registryResolver) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, err := protoregistry.GlobalTypes.FindExtensionByName(name); err == nil {
		return xt, nil
	}
	return r.reg.Types().FindExtensionByName(name)
}

func (r registryResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if xt, err := protoregistry.GlobalTypes.FindExtensionByNumber(message, field); err == nil {
		return xt, nil
	}
	return r.reg.Types().FindExtensionByNumber(message, field)
}

// restDoor is the REST door: grpc-gateway's mux, with the door's own
// error answers.
type restDoor struct {
	mux           *runtime.ServeMux
	raw           *runtime.ServeMux // the bindings that take a raw body
	methods       *runtime.ServeMux // every binding, to find a request's method
	json          restJSON
	expose        map[string]bool // response metadata keys that become headers
	serverStreams map[string]bool // full methods of the server-streaming bindings
}

// restCallKey is the context key of a request's *restWriter.
type restCallKey struct{}

func (d *restDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w = notModified(w, r)
	rw := &restWriter{ResponseWriter: w}
	d.mux.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), restCallKey{}, rw)))
}

func (d *restDoor) exposed(k string) (string, bool) { return k, d.expose[k] }

// restWriter is the response of one REST request. It sets the HTTP status
// of a server stream that fails before its first message, which
// grpc-gateway writes itself (runtime.ForwardResponseStream): over
// Server-Sent Events 200, for a concurrency limit's refusal 503.
type restWriter struct {
	http.ResponseWriter
	streamErr *status.Status // the stream's error, once streamError has seen it
}

func (w *restWriter) WriteHeader(code int) {
	if w.streamErr != nil {
		switch {
		case w.Header().Get("Content-Type") == sseContentType:
			code = http.StatusOK
		case shedByConcurrency(w.streamErr):
			code = http.StatusServiceUnavailable
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *restWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *restWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// streamError is the status of a server stream's failure, which
// grpc-gateway writes as the stream's last record (and, before the first
// message, with the status restWriter sets).
func (d *restDoor) streamError(ctx context.Context, err error) *status.Status {
	st := restStatus(err)
	if rw, ok := ctx.Value(restCallKey{}).(*restWriter); ok {
		rw.streamErr = st
	}
	return st
}

// writeError answers a call that failed before its answer began, with
// the status and the mapped HTTP status (503 for a concurrency limit's
// refusal) and the exposed response metadata as headers. A server
// stream's answer is records, as runtime.ForwardResponseStream writes
// them: one {"error": …} record, or over Server-Sent Events 200 and one
// "event: error" record. Any other answer is a google.rpc.Status body,
// with the exposed trailers when the client accepts them; its only
// WWW-Authenticate is the one the auth policy set (grpc-gateway's own
// handler adds the status message as another).
func (d *restDoor) writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	code := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		code, err = hse.HTTPStatus, hse.Err
	}
	st := restStatus(err)
	if code == 0 {
		code = HTTPStatus(st.Code())
		if shedByConcurrency(st) {
			// Load shedding is the server's trouble, not the client's
			// rate: 503, not 429.
			code = http.StatusServiceUnavailable
		}
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	md, _ := runtime.ServerMetadataFromContext(ctx)
	d.addMetadata(h, md.HeaderMD)
	var body []byte
	var merr error
	if method, _ := runtime.RPCMethod(ctx); d.serverStreams[method] {
		rec := map[string]proto.Message{"error": st.Proto()}
		if s, ok := m.(*sse); ok {
			body, merr = s.Marshal(rec)
			h.Set("Content-Type", sseContentType)
			code = http.StatusOK
		} else {
			body, merr = d.json.Marshal(rec)
			h.Set("Content-Type", "application/json")
		}
		body = append(body, '\n')
	} else {
		body, merr = d.json.Marshal(st.Proto())
		h.Set("Content-Type", "application/json")
	}
	if merr != nil {
		WriteStatus(w, status.New(codes.Internal, "edgegate: cannot encode the error"), 0)
		return
	}
	trailers := strings.Contains(strings.ToLower(r.Header.Get("TE")), "trailers")
	if trailers {
		for k := range md.TrailerMD {
			if d.expose[k] {
				h.Add("Trailer", textproto.CanonicalMIMEHeaderKey(k))
			}
		}
	}
	w.WriteHeader(code)
	_, _ = w.Write(body) //nolint:gosec // G705: JSON or an event stream, never HTML
	if trailers {
		d.addMetadata(h, md.TrailerMD)
	}
}

// addMetadata adds the exposed keys of md to h.
func (d *restDoor) addMetadata(h http.Header, md metadata.MD) {
	for k, vs := range md {
		if d.expose[k] {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
}

func headerSet(base, extra []string) map[string]bool {
	out := map[string]bool{}
	for _, h := range slices.Concat(base, extra) {
		out[strings.ToLower(h)] = true
	}
	return out
}

// routingError answers a request no REST route takes: 404 for an unknown
// path, 405 (with Allow unknown) for a path that exists for other methods.
func routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusNotFound:
		Error(w, codes.NotFound, http.StatusNotFound, fmt.Sprintf("edgegate: no route for %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		Error(w, codes.Unimplemented, http.StatusMethodNotAllowed, fmt.Sprintf("edgegate: method %s not allowed for %s", r.Method, r.URL.Path))
	default:
		Error(w, codes.InvalidArgument, code, http.StatusText(code))
	}
}

// restStatus is err's status, with protojson's deliberately unstable
// non-breaking spaces in parse errors made plain.
func restStatus(err error) *status.Status {
	st := status.Convert(err)
	if strings.ContainsRune(st.Message(), '\u00a0') {
		p := st.Proto()
		p.Message = strings.ReplaceAll(p.Message, "\u00a0", " ")
		st = status.FromProto(p)
	}
	return st
}

// shedByConcurrency reports whether st is a concurrency limit's refusal.
func shedByConcurrency(st *status.Status) bool {
	if st.Code() != codes.ResourceExhausted {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == router.ReasonConcurrencyLimit {
			return true
		}
	}
	return false
}

// sse writes server streams as Server-Sent Events: one "data:" event per
// message, and a final "event: error" with the google.rpc.Status when the
// stream fails.
type sse struct{ json restJSON }

const sseContentType = "text/event-stream"

func (s *sse) ContentType(any) string { return sseContentType }

func (s *sse) Marshal(v any) ([]byte, error) {
	event := ""
	switch m := v.(type) {
	case map[string]any:
		if r, ok := m["result"]; ok {
			v = r
		}
	case map[string]proto.Message:
		if e, ok := m["error"]; ok {
			v, event = e, "error"
		}
	}
	b, err := s.json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if event != "" {
		out.WriteString("event: " + event + "\n")
	}
	out.WriteString("data: ")
	out.Write(bytes.ReplaceAll(b, []byte("\n"), []byte("\ndata: ")))
	out.WriteString("\n")
	return out.Bytes(), nil
}

func (s *sse) Unmarshal(data []byte, v any) error     { return s.json.Unmarshal(data, v) }
func (s *sse) NewDecoder(r io.Reader) runtime.Decoder { return s.json.NewDecoder(r) }
func (s *sse) NewEncoder(w io.Writer) runtime.Encoder { return s.json.NewEncoder(w) }
func (s *sse) Delimiter() []byte                      { return []byte("\n") }
