package frontdoor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/edgegate/edgegate/schema"
)

// The REST bindings of services the gateway has no generated code for (a
// descriptor set, server reflection), and of compiled-in ones whose
// bindings the configuration changes, are served by dynamic handlers: the
// same grpc-gateway runtime as generated code (path templates, query
// parameters, field masks, errors, streams), with dynamicpb messages built
// from the registry's descriptors.

// httpBodyName is google.api.HttpBody: a raw body with its content type.
const httpBodyName = "google.api.HttpBody"

// templateVar finds the variables of a path template: "{book.name=…}".
var templateVar = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// dynamicBinding is one binding served by a dynamic handler.
type dynamicBinding struct {
	d      *restDoor
	cc     grpc.ClientConnInterface
	b      *schema.Binding
	in     protoreflect.MessageDescriptor
	out    protoreflect.MessageDescriptor
	vars   []string               // the path variables' field paths
	filter *utilities.DoubleArray // the fields query parameters must not set
	body   protoreflect.FieldDescriptor
	resp   protoreflect.FieldDescriptor // response_body's field, or nil
	stream *grpc.StreamDesc             // nil for a unary method
}

// handleDynamic registers a dynamic handler of b on d's mux.
func (d *restDoor) handleDynamic(cc grpc.ClientConnInterface, b *schema.Binding) error {
	md := b.Method.Desc
	db := &dynamicBinding{d: d, cc: cc, b: b, in: md.Input(), out: md.Output()}
	var excluded [][]string
	for _, m := range templateVar.FindAllStringSubmatch(b.Path, -1) {
		db.vars = append(db.vars, m[1])
		excluded = append(excluded, strings.Split(m[1], "."))
	}
	switch b.Body {
	case "", "*":
	default:
		if db.body = db.in.Fields().ByName(protoreflect.Name(b.Body)); db.body == nil {
			return fmt.Errorf("%s: body field %q is not a field of %s", b.Method.Full[1:], b.Body, db.in.FullName())
		}
		excluded = append(excluded, []string{b.Body})
	}
	db.filter = utilities.NewDoubleArray(excluded)
	if b.ResponseBody != "" {
		if db.resp = db.out.Fields().ByName(protoreflect.Name(b.ResponseBody)); db.resp == nil {
			return fmt.Errorf("%s: response_body field %q is not a field of %s", b.Method.Full[1:], b.ResponseBody, db.out.FullName())
		}
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		db.stream = &grpc.StreamDesc{ClientStreams: md.IsStreamingClient(), ServerStreams: md.IsStreamingServer()}
	}
	return d.mux.HandlePath(b.Verb, b.Path, db.serve)
}

func (db *dynamicBinding) serve(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
	mux := db.d.mux
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	inbound, outbound := runtime.MarshalerForRequest(mux, r)
	ctx, err := runtime.AnnotateContext(ctx, mux, r, db.b.Method.Full, runtime.WithHTTPPathPattern(db.b.Path))
	if err != nil {
		runtime.HTTPError(ctx, mux, outbound, w, r, err)
		return
	}
	if db.b.SuccessStatus != 0 {
		w = &successWriter{ResponseWriter: w, code: db.b.SuccessStatus}
	}
	var md runtime.ServerMetadata
	if db.stream == nil {
		resp, err := db.unary(ctx, inbound, r, pathParams, &md)
		ctx = runtime.NewServerMetadataContext(ctx, md)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		if hb, ok := httpBodyOf(resp); ok {
			db.writeHTTPBody(ctx, w, hb)
			return
		}
		runtime.ForwardResponseMessage(ctx, mux, outbound, w, r, db.responseOf(resp), mux.GetForwardResponseOptions()...)
		return
	}
	cs, err := db.open(ctx, inbound, r, pathParams, &md)
	ctx = runtime.NewServerMetadataContext(ctx, md)
	if err != nil {
		runtime.HTTPError(ctx, mux, outbound, w, r, err)
		return
	}
	if !db.stream.ServerStreams {
		resp := dynamicpb.NewMessage(db.out)
		err := cs.RecvMsg(resp)
		md.TrailerMD = cs.Trailer()
		ctx = runtime.NewServerMetadataContext(ctx, md)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		runtime.ForwardResponseMessage(ctx, mux, outbound, w, r, db.responseOf(resp), mux.GetForwardResponseOptions()...)
		return
	}
	runtime.ForwardResponseStream(ctx, mux, outbound, w, r, func() (proto.Message, error) {
		resp := dynamicpb.NewMessage(db.out)
		if err := cs.RecvMsg(resp); err != nil {
			return nil, err
		}
		return db.responseOf(resp), nil
	}, mux.GetForwardResponseOptions()...)
}

// unary makes the call of a unary binding.
func (db *dynamicBinding) unary(ctx context.Context, dec runtime.Marshaler, r *http.Request, pathParams map[string]string, md *runtime.ServerMetadata) (proto.Message, error) {
	req, err := db.request(dec, r, pathParams)
	if err != nil {
		return nil, err
	}
	resp := dynamicpb.NewMessage(db.out)
	err = db.cc.Invoke(ctx, db.b.Method.Full, req, resp, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
	return resp, err
}

// open starts the call of a streaming binding: the request (or, for a
// client stream, the request values of the body) sent, the header read.
func (db *dynamicBinding) open(ctx context.Context, dec runtime.Marshaler, r *http.Request, pathParams map[string]string, md *runtime.ServerMetadata) (grpc.ClientStream, error) {
	cs, err := db.cc.NewStream(ctx, db.stream, db.b.Method.Full)
	if err != nil {
		return nil, err
	}
	if db.stream.ClientStreams {
		// The body is a stream of request values, sent in turn.
		d := dec.NewDecoder(r.Body)
		for {
			req := dynamicpb.NewMessage(db.in)
			if err := d.Decode(req); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "%v", err)
			}
			if err := cs.SendMsg(req); err != nil {
				break // the call ended: its status comes from RecvMsg
			}
		}
	} else {
		req, err := db.request(dec, r, pathParams)
		if err != nil {
			return nil, err
		}
		if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if err := cs.CloseSend(); err != nil {
		return nil, err
	}
	header, err := cs.Header()
	if err != nil {
		return nil, err
	}
	md.HeaderMD = header
	return cs, nil
}

// request builds the request of a call from r as generated code does:
// the body (the whole request, a field of it, or a raw google.api.HttpBody),
// a PATCH's update mask from the body's fields when it sets none, the path
// variables, then the query parameters (but for a body of "*").
func (db *dynamicBinding) request(dec runtime.Marshaler, r *http.Request, pathParams map[string]string) (proto.Message, error) {
	req := dynamicpb.NewMessage(db.in)
	var body []byte
	if db.b.Body != "" && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		body = b
	}
	switch {
	case db.b.Body == "":
	case db.b.Body == "*" && db.in.FullName() == httpBodyName:
		setHTTPBody(req, r.Header.Get("Content-Type"), body)
	case db.b.Body == "*":
		if len(bytes.TrimSpace(body)) > 0 {
			if err := dec.NewDecoder(bytes.NewReader(body)).Decode(req); err != nil && !errors.Is(err, io.EOF) {
				return nil, status.Errorf(codes.InvalidArgument, "%v", err)
			}
		}
	default:
		if err := db.decodeField(dec, req, r, body); err != nil {
			return nil, err
		}
	}
	for _, v := range db.vars {
		val, ok := pathParams[v]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "missing parameter %s", v)
		}
		if err := populateFromPath(req, v, val); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "type mismatch, parameter: %s, error: %v", v, err)
		}
	}
	if db.b.Body != "*" {
		if err := r.ParseForm(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		if err := populateQuery(req, r.Form, db.filter); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
	}
	return req, nil
}

// decodeField decodes body into the request's body field: a message
// field (a PATCH of one fills the request's update_mask from the body's
// fields when the request sets none), a raw google.api.HttpBody, or any
// other field (a scalar, list or map) as its JSON value.
func (db *dynamicBinding) decodeField(dec runtime.Marshaler, req *dynamicpb.Message, r *http.Request, body []byte) error {
	fd := db.body
	// A message field is set even by an empty body (as generated code
	// does: it decodes into the field, and an empty body is no error).
	if fd.Message() != nil && fd.Cardinality() != protoreflect.Repeated && !fd.IsMap() {
		sub := req.Mutable(fd).Message()
		if fd.Message().FullName() == httpBodyName {
			setHTTPBody(sub.Interface(), r.Header.Get("Content-Type"), body)
			return nil
		}
		if err := dec.NewDecoder(bytes.NewReader(body)).Decode(sub.Interface()); err != nil && !errors.Is(err, io.EOF) {
			return status.Errorf(codes.InvalidArgument, "%v", err)
		}
		if r.Method == http.MethodPatch {
			if mask := req.Descriptor().Fields().ByName("update_mask"); mask != nil && mask.Message() != nil && mask.Message().FullName() == "google.protobuf.FieldMask" {
				if !req.Has(mask) || req.Get(mask).Message().Get(mask.Message().Fields().ByName("paths")).List().Len() == 0 {
					fm, err := runtime.FieldMaskFromRequestBody(bytes.NewReader(body), sub.Interface())
					if err != nil {
						return status.Errorf(codes.InvalidArgument, "%v", err)
					}
					setFieldMask(req, mask, fm)
				}
			}
		}
		return nil
	}
	// A scalar, list or map field: its JSON value, as the value of its
	// name in an object of the request's type.
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	wrapped := make([]byte, 0, len(body)+len(fd.JSONName())+4)
	wrapped = append(wrapped, '{')
	name, _ := json.Marshal(fd.JSONName())
	wrapped = append(wrapped, name...)
	wrapped = append(wrapped, ':')
	wrapped = append(wrapped, body...)
	wrapped = append(wrapped, '}')
	tmp := dynamicpb.NewMessage(db.in)
	if err := protojson.Unmarshal(wrapped, tmp); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	req.Set(fd, tmp.Get(fd))
	return nil
}

// setFieldMask sets the FieldMask field mask of req to fm.
func setFieldMask(req *dynamicpb.Message, mask protoreflect.FieldDescriptor, fm *fieldmaskpb.FieldMask) {
	m := req.Mutable(mask).Message()
	paths := m.Mutable(mask.Message().Fields().ByName("paths")).List()
	for _, p := range fm.GetPaths() {
		paths.Append(protoreflect.ValueOfString(p))
	}
}

// setHTTPBody fills a google.api.HttpBody message with a raw body.
func setHTTPBody(m proto.Message, contentType string, data []byte) {
	pm := m.ProtoReflect()
	f := pm.Descriptor().Fields()
	if fd := f.ByName("content_type"); fd != nil {
		pm.Set(fd, protoreflect.ValueOfString(contentType))
	}
	if fd := f.ByName("data"); fd != nil {
		pm.Set(fd, protoreflect.ValueOfBytes(data))
	}
}

// rawBody is a google.api.HttpBody's content.
type rawBody struct {
	contentType string
	data        []byte
}

// httpBodyOf returns the content of a google.api.HttpBody answer.
func httpBodyOf(m proto.Message) (hb rawBody, ok bool) {
	pm := m.ProtoReflect()
	if pm.Descriptor().FullName() != httpBodyName {
		return hb, false
	}
	f := pm.Descriptor().Fields()
	if fd := f.ByName("content_type"); fd != nil {
		hb.contentType = pm.Get(fd).String()
	}
	if fd := f.ByName("data"); fd != nil {
		hb.data = pm.Get(fd).Bytes()
	}
	return hb, true
}

// writeHTTPBody answers with a raw body and its content type, and the
// exposed response metadata as headers, as grpc-gateway answers a
// google.api.HttpBody.
func (db *dynamicBinding) writeHTTPBody(ctx context.Context, w http.ResponseWriter, hb rawBody) {
	md, _ := runtime.ServerMetadataFromContext(ctx)
	db.d.addMetadata(w.Header(), md.HeaderMD)
	ct := hb.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(hb.data) //nolint:gosec // G705: the upstream's own body with the content type it chose, as an HttpBody answer is
}

// responseOf is what a binding answers with: the response, or its
// response_body field.
func (db *dynamicBinding) responseOf(m proto.Message) proto.Message {
	if db.resp == nil {
		return m
	}
	return responseBody{Message: m, field: db.resp, json: db.d.json}
}

// responseBody is a response whose answer is one of its fields, as
// grpc-gateway's generated response_… types are (runtime's responseBody
// interface).
type responseBody struct {
	proto.Message
	field protoreflect.FieldDescriptor
	json  restJSON
}

// XXX_ResponseBody is the field's value: a message, or the field's JSON.
func (rb responseBody) XXX_ResponseBody() any {
	pm := rb.ProtoReflect()
	fd := rb.field
	if fd.Message() != nil && fd.Cardinality() != protoreflect.Repeated && !fd.IsMap() {
		return pm.Get(fd).Message().Interface()
	}
	only := dynamicpb.NewMessage(pm.Descriptor())
	only.Set(fd, pm.Get(fd))
	b, err := rb.json.MarshalOptions.Marshal(only)
	if err != nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil
	}
	name := fd.JSONName()
	if rb.json.UseProtoNames {
		name = string(fd.Name())
	}
	if v, ok := obj[name]; ok {
		return v
	}
	return json.RawMessage("null")
}

// successWriter answers a successful call with the binding's status
// instead of 200 (and a 204 without a body).
type successWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *successWriter) WriteHeader(code int) {
	if !s.wroteHeader && code == http.StatusOK {
		code = s.code
	}
	s.wroteHeader = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *successWriter) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	if s.code == http.StatusNoContent {
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

func (s *successWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *successWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
