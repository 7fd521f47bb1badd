package openapi

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// operation is the operation of route r, whose operationId is id and tag
// tag.
func (g *generator) operation(r *route, id, tag string) *operation {
	b := r.b
	md := b.Method.Desc
	op := &operation{Tags: []string{tag}, OperationID: id, Method: b.Method.Full, Responses: map[string]*response{}}
	// The summary is the comment's first sentence, the description the
	// whole comment when it says more.
	if c := comments(md); c != "" {
		op.Summary = summary(c)
		if c != op.Summary {
			op.Description = c
		}
	}
	if opts, ok := md.Options().(*descriptorpb.MethodOptions); ok && opts.GetDeprecated() {
		op.Deprecated = true
	}
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		op.Streaming = "bidi"
	case md.IsStreamingClient():
		op.Streaming = "client"
	case md.IsStreamingServer():
		op.Streaming = "server"
	}
	in := md.Input()
	var bound [][]string
	for _, p := range r.params {
		op.Parameters = append(op.Parameters, g.pathParameter(in, p))
		bound = append(bound, strings.Split(p.field, "."))
	}
	if b.Body != "*" {
		if b.Body != "" {
			bound = append(bound, []string{b.Body})
		}
		op.Parameters = append(op.Parameters, g.queryParameters(in, "", bound, false, map[protoreflect.FullName]bool{in.FullName(): true})...)
	}
	if b.Body != "" {
		op.RequestBody = g.requestBody(r, md.IsStreamingClient())
	}
	g.responses(op, r)
	return op
}

// summary is the first sentence of a comment.
func summary(c string) string {
	para, _, _ := strings.Cut(c, "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	for i := 0; i < len(para); i++ {
		if para[i] == '.' && (i+1 == len(para) || para[i+1] == ' ') {
			return para[:i+1]
		}
	}
	return para
}

// findField is the field at path (proto names) from message md, or nil.
func findField(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for _, name := range strings.Split(path, ".") {
		if md == nil {
			return nil
		}
		fd = md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

// pathParameter is the parameter of p, a variable of a request of
// message in.
func (g *generator) pathParameter(in protoreflect.MessageDescriptor, p pathParam) *parameter {
	par := &parameter{Name: p.name, In: "path", Required: true}
	fd := findField(in, p.field)
	var s *schemaObj
	if fd != nil {
		s = g.paramSchema(fd)
		par.Description = comments(fd)
		par.Deprecated = fieldDeprecated(fd)
	}
	if s == nil {
		s = &schemaObj{Type: "string"}
	}
	var note string
	switch {
	case p.wildcard > 0:
		note = fmt.Sprintf("Wildcard %d of %d of the request field `%s` (`%s`).", p.wildcard, p.wildcards, p.field, p.pattern)
		if strings.Split(p.pattern, "/")[wildcardIndex(p.pattern, p.wildcard)] == "*" {
			s.Pattern = "^[^/]+$"
		}
	case p.pattern != "*":
		note = fmt.Sprintf("The request field `%s`, of the pattern `%s`: its slashes are path separators, sent as they are.", p.field, p.pattern)
		s.Pattern = patternRegexp(p.pattern)
	case p.name != p.field:
		note = fmt.Sprintf("The request field `%s`.", p.field)
	}
	par.Description = joinParagraphs(par.Description, note)
	par.Schema = s
	return par
}

// wildcardIndex is the index among the segments of pattern of its n-th
// wildcard (from 1).
func wildcardIndex(pattern string, n int) int {
	k := 0
	for i, s := range strings.Split(pattern, "/") {
		if s == "*" || s == "**" {
			k++
			if k == n {
				return i
			}
		}
	}
	return 0
}

// paramSchema is the schema of fd's value in a path or a query
// parameter (grpc-gateway's parsing of parameters): a scalar, an enum by
// the names of its values, or a well-known type of a text form; nil for
// a type that has none.
func (g *generator) paramSchema(fd protoreflect.FieldDescriptor) *schemaObj {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		s := &schemaObj{Type: "string"}
		values := fd.Enum().Values()
		for i := range values.Len() {
			s.Enum = append(s.Enum, string(values.Get(i).Name()))
		}
		return s
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch name := fd.Message().FullName(); name {
		case "google.protobuf.Timestamp", "google.protobuf.Duration":
			return g.wellKnown(name)
		case "google.protobuf.FieldMask":
			s := g.wellKnown(name)
			s.Description = "Field paths, comma-separated, in the names of the .proto (snake_case)."
			return s
		case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
			"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
			"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
			// A parameter is never null.
			s := g.wellKnown(name)
			s.Type = s.Type.([]string)[0]
			return s
		}
		return nil
	}
	return scalarSchema(fd.Kind())
}

// queryParameters are the query parameters of the fields of message md,
// named with prefix, but for the fields at the paths of bound (bound by the
// path or the body) and the other members of their oneofs: scalars and
// enums, repeated ones as repeated parameters, maps of scalars as
// name[key]=value, well-known types of a text form, Struct and Value as
// JSON text, and the fields of a message field as prefix.field; repeated
// messages and recursion have none. on is the messages being walked.
func (g *generator) queryParameters(md protoreflect.MessageDescriptor, prefix string, bound [][]string, deprecated bool, on map[protoreflect.FullName]bool) []*parameter {
	var out []*parameter
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		whole, sub := splitPaths(bound, string(fd.Name()))
		if whole || boundOneof(md, fd, bound) {
			continue
		}
		name := prefix + g.jsonName(fd)
		dep := deprecated || fieldDeprecated(fd)
		par := &parameter{Name: name, In: "query", Description: comments(fd), Deprecated: dep, Required: isRequired(fd)}
		switch {
		case fd.IsMap():
			k, v := fd.MapKey(), fd.MapValue()
			vs := g.paramSchema(v)
			if vs == nil {
				continue
			}
			par.Style, par.Explode = "deepObject", new(true)
			par.Schema = &schemaObj{Type: "object", AdditionalProperties: vs, PropertyNames: mapKeyNames(k.Kind())}
			par.Description = joinParagraphs(par.Description, fmt.Sprintf("Entries as `%s[key]=value`.", name))
		case fd.IsList():
			vs := g.paramSchema(fd)
			if vs == nil {
				continue
			}
			par.Explode = new(true)
			par.Schema = &schemaObj{Type: "array", Items: vs}
		case isPlainMessage(fd):
			if len(sub) == 0 && on[fd.Message().FullName()] {
				continue
			}
			on[fd.Message().FullName()] = true
			out = append(out, g.queryParameters(fd.Message(), name+".", sub, dep, on)...)
			delete(on, fd.Message().FullName())
			continue
		case fd.Message() != nil && (fd.Message().FullName() == "google.protobuf.Struct" || fd.Message().FullName() == "google.protobuf.Value"):
			par.Content = map[string]*mediaType{"application/json": {Schema: g.wellKnown(fd.Message().FullName())}}
		default:
			par.Schema = g.paramSchema(fd)
			if par.Schema == nil {
				continue
			}
		}
		if par.Schema != nil && par.Schema.Description != "" {
			par.Description = joinParagraphs(par.Description, par.Schema.Description)
			par.Schema.Description = ""
		}
		out = append(out, par)
	}
	return out
}

// boundOneof reports whether another member of fd's oneof is bound: the
// gateway takes one member of a oneof.
func boundOneof(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, bound [][]string) bool {
	od := fd.ContainingOneof()
	if od == nil || od.IsSynthetic() {
		return false
	}
	for _, p := range bound {
		if len(p) == 0 || p[0] == string(fd.Name()) {
			continue
		}
		if other := md.Fields().ByName(protoreflect.Name(p[0])); other != nil && other.ContainingOneof() == od {
			return true
		}
	}
	return false
}

// isHTTPBodyField reports whether fd is a singular google.api.HttpBody.
func isHTTPBodyField(fd protoreflect.FieldDescriptor) bool {
	return fd != nil && fd.Message() != nil && fd.Message().FullName() == httpBody && !fd.IsList()
}

// requestBody is the request body of route r: the request less its
// path-bound fields (body "*"), or the body field's value less those. A
// client stream's body is its messages, one after another.
func (g *generator) requestBody(r *route, stream bool) *requestBody {
	b := r.b
	in := b.Method.Desc.Input()
	var exclude [][]string
	for _, p := range r.params {
		exclude = append(exclude, strings.Split(p.field, "."))
	}
	rb := &requestBody{}
	if !stream && (b.Body == "*" && in.FullName() == httpBody || b.Body != "*" && isHTTPBodyField(in.Fields().ByName(protoreflect.Name(b.Body)))) {
		// The REST door takes a google.api.HttpBody's data raw.
		rb.Description = "The data of the google.api.HttpBody, as it is: its content_type is the request's Content-Type."
		rb.Content = map[string]*mediaType{"*/*": {}}
		return rb
	}
	var s *schemaObj
	if b.Body == "*" {
		if len(exclude) == 0 || isWellKnown(in.FullName()) {
			s = g.messageRef(in)
		} else {
			s = g.messageSchema(in, exclude)
		}
	} else {
		fd := in.Fields().ByName(protoreflect.Name(b.Body))
		if fd == nil {
			s = &schemaObj{}
		} else {
			_, sub := splitPaths(exclude, b.Body)
			if len(sub) > 0 && isPlainMessage(fd) {
				s = g.messageSchema(fd.Message(), sub)
			} else {
				s = g.bareFieldSchema(fd)
			}
			rb.Description = joinParagraphs(fmt.Sprintf("The request field `%s`.", g.jsonName(fd)), comments(fd))
		}
	}
	ct := "application/json"
	if stream {
		ct = g.o.StreamContentType
		rb.Description = joinParagraphs(rb.Description, "The stream of requests: one JSON value after another (newline-delimited).")
	}
	rb.Content = map[string]*mediaType{ct: {Schema: s}}
	return rb
}

// responses sets the responses of op, of route r: the answer at the
// binding's success status, and the error as default.
func (g *generator) responses(op *operation, r *route) {
	b := r.b
	md := b.Method.Desc
	out := md.Output()
	var s *schemaObj
	raw := false
	what := "a message " + string(out.FullName())
	switch fd := out.Fields().ByName(protoreflect.Name(b.ResponseBody)); {
	case b.ResponseBody == "" && out.FullName() == httpBody:
		raw = true
	case b.ResponseBody == "":
		s = g.messageRef(out)
	case fd == nil:
		s = &schemaObj{}
	case fd.Message() != nil && fd.Message().FullName() == httpBody && !fd.IsList():
		raw = true
	default:
		s = g.bareFieldSchema(fd)
		what = fmt.Sprintf("the field `%s` of a message %s", g.jsonName(fd), out.FullName())
	}
	status := b.SuccessStatus
	if status == 0 {
		status = 200
	}
	ok := &response{}
	switch {
	case raw:
		ok.Description = "The data of the google.api.HttpBody, of its content_type."
		if md.IsStreamingServer() {
			ok.Description = "The data of the google.api.HttpBody messages of the stream, one after another, of the first one's content_type."
		}
		ok.Content = map[string]*mediaType{"*/*": {}}
	case md.IsStreamingServer():
		ok.Description = fmt.Sprintf("A stream of answers, each one %s: newline-delimited JSON records, or Server-Sent Events when the request accepts text/event-stream. A failure ends the stream with an error record (an \"event: error\" event).", what)
		ok.Content = map[string]*mediaType{
			g.o.StreamContentType: {Schema: &schemaObj{
				Description: "One record per line: {\"result\": answer}, or a last {\"error\": google.rpc.Status} when the stream fails.",
				OneOf:       []*schemaObj{{Type: "object", Properties: map[string]*schemaObj{"result": s}, Required: []string{"result"}}, g.errorRecord()},
			}},
			"text/event-stream": {Schema: &schemaObj{
				Type:        "string",
				Description: "Server-Sent Events: a \"data:\" event per answer, its JSON; a failure ends the stream with an \"event: error\" event whose data is a google.rpc.Status.",
			}},
		}
	case status == 204:
		ok.Description = "Done."
	default:
		ok.Description = "The answer: " + what + "."
		ok.Content = map[string]*mediaType{"application/json": {Schema: s}}
	}
	op.Responses[strconv.Itoa(status)] = ok
	g.useBuiltin(statusName)
	if md.IsStreamingServer() {
		op.Responses["default"] = &response{
			Description: "A failure before the first answer: one error record, with the HTTP status of its code.",
			Content:     map[string]*mediaType{g.o.StreamContentType: {Schema: g.errorRecord()}},
		}
	} else {
		op.Responses["default"] = &response{
			Description: "A failure: a google.rpc.Status, with the HTTP status of its code.",
			Content:     map[string]*mediaType{"application/json": {Schema: ref(statusName)}},
		}
	}
}

func (g *generator) errorRecord() *schemaObj {
	g.useBuiltin(statusName)
	return &schemaObj{Type: "object", Properties: map[string]*schemaObj{"error": ref(statusName)}, Required: []string{"error"}}
}
