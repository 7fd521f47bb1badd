// Package openapi writes the OpenAPI 3.1 document of a schema.Registry:
// the REST door's operations, one per binding, as the gateway serves them
// (grpc-gateway's transcoding and the proto3 JSON mapping).
//
// Paths. A path template's variable is one path parameter named after its
// field, /v1/{name=shelves/*/books/*} → /v1/{name}; the parameter's
// description names the pattern and its schema has it as a regular
// expression: the value's slashes are path separators, sent unescaped.
// Custom verbs stay in the path (/v1/orders/{order_id}:track). Bindings
// of one verb whose paths OpenAPI cannot tell apart (/v1/{name=shelves/*}
// and /v1/{name=shelves/*/books/*}) get expanded paths instead, each
// wildcard a parameter and the pattern's literals in the path
// (/v1/shelves/{name}, /v1/shelves/{name}/books/{name_2}). Paths of one
// shape take the parameter names of the first binding of that shape
// (OpenAPI allows one name at one place), the field they set named in
// their description. A binding that even so collides with one before it
// (their patterns differ only in * and **) is left out and listed in
// x-edgegate-omitted. Verbs that OpenAPI has no field for (custom kinds)
// are in the path's x-edgegate-methods.
//
// Operations. operationId is Service_Method, Service_Method_2 for the
// method's second binding and so on (the service's full name, dots as
// underscores, when two routed services share a name); the tag is the
// service; the summary is the method comment's first sentence.
// x-edgegate-method is the gRPC method, x-edgegate-streaming "server",
// "client" or "bidi" for a streaming one. Parameters are the path's, then
// a query parameter per request field that neither the path nor the body
// binds, as grpc-gateway reads them: scalars, enums by value name,
// repeated ones as repeated parameters (explode), a message field's fields
// as field.subfield, maps of scalars as field[key]=value (deepObject),
// Timestamp, Duration, FieldMask and wrappers as text, Struct and Value as
// JSON text; repeated messages and recursion have none, nor the other
// members of a bound field's oneof. The request body is the request less
// its path-bound fields (body "*") or the body field's value less them; a
// client stream's is its messages, one after another. The answer is at the
// binding's success status (200 by default; 204 has no content): the
// response message or its response_body field, as application/json; for a
// server stream, newline-delimited records {"result": …} and a last
// {"error": …} on failure (Options.StreamContentType) or text/event-stream;
// for a google.api.HttpBody, its data, of any media type. The default
// response is the error, a google.rpc.Status (an {"error": …} record for a
// server stream).
//
// Schemas. components/schemas has every message and enum the operations
// reach, by full name, as the door writes their JSON: lowerCamel names (or
// the .proto's, Options.UseProtoNames), 64-bit integers as strings, bytes
// as base64, enums as the names of their values (or their numbers,
// Options.EnumsAsNumbers), maps as additionalProperties, a oneof's members
// noted in their descriptions, unset message fields as null with
// Options.EmitUnpopulated; Timestamp, Duration, FieldMask, Struct, Value,
// ListValue, Empty and the wrappers (which admit null) inline, Any and
// google.rpc.Status as components of their own. The door reads more than
// it writes (numbers for 64-bit integers and enums, null for any field),
// which the schemas do not say. REQUIRED fields
// (google.api.field_behavior, and proto2's required) are the schema's
// required list, OUTPUT_ONLY ones readOnly, INPUT_ONLY ones writeOnly.
// Descriptions are the leading comments (or else trailing ones) of
// services, methods, messages, fields and enums and their values when the
// descriptors carry source info, as descriptor sets built with it do;
// compiled-in descriptors have none, and then there are no descriptions.
//
// The output is deterministic: object keys sorted, paths and operations in
// a fixed order.
package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/edgegate/edgegate/schema"
)

// Options are the choices of the document.
type Options struct {
	// Title and Version are info's; "edgegate" and "0.0.0" when empty.
	Title, Version string
	// UseProtoNames names fields as the .proto does, not in lowerCamel
	// (the REST door's use_proto_names).
	UseProtoNames bool
	// EnumsAsNumbers has enums as their numbers in bodies (the REST door's
	// enums_as_numbers); parameters take names either way.
	EnumsAsNumbers bool
	// EmitUnpopulated has message fields admit null, as the REST door
	// writes an unset one with emit_unpopulated.
	EmitUnpopulated bool
	// StreamContentType is the media type of newline-delimited JSON
	// streams; "application/x-ndjson" when empty.
	StreamContentType string
}

// generator is the state of one Generate.
type generator struct {
	o       Options
	schemas map[string]*schemaObj
	queue   []protoreflect.Descriptor
	queued  map[string]bool
}

// Generate returns the OpenAPI 3.1 document (JSON) of every binding of r.
// A nil r has none. It fails only for a binding whose path template does
// not parse, which a built Registry has none of.
func Generate(r *schema.Registry, o Options) ([]byte, error) {
	if o.Title == "" {
		o.Title = "edgegate"
	}
	if o.Version == "" {
		o.Version = "0.0.0"
	}
	if o.StreamContentType == "" {
		o.StreamContentType = "application/x-ndjson"
	}
	g := &generator{o: o, schemas: map[string]*schemaObj{}, queued: map[string]bool{}}
	doc := &document{OpenAPI: "3.1.0", Info: info{Title: o.Title, Version: o.Version}, Paths: map[string]*pathItem{}}
	var services []*schema.Service
	var bindings []*schema.Binding
	if r != nil {
		services, bindings = r.Services(), r.Bindings()
	}
	short := map[protoreflect.Name]int{}
	for _, s := range services {
		short[s.Desc.Name()]++
	}
	// serviceName is a service's tag and operationId prefix.
	serviceName := func(s *schema.Service) (tag, prefix string) {
		if short[s.Desc.Name()] > 1 {
			return string(s.Desc.FullName()), strings.ReplaceAll(string(s.Desc.FullName()), ".", "_")
		}
		return string(s.Desc.Name()), string(s.Desc.Name())
	}
	var routes []*route
	for _, b := range bindings {
		parts, err := parseTemplate(b.Path)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %s %s: %w", b.Method.Full[1:], b.Verb, b.Path, err)
		}
		routes = append(routes, &route{b: b, parts: parts})
	}
	kept, dropped := arrange(routes)
	ids := map[string]bool{}
	tagged := map[*schema.Service]bool{}
	for _, rt := range kept {
		svc := rt.b.Method.Service
		tag, prefix := serviceName(svc)
		id := prefix + "_" + string(rt.b.Method.Desc.Name())
		if i := slices.Index(rt.b.Method.Bindings, rt.b); i > 0 {
			id = fmt.Sprintf("%s_%d", id, i+1)
		}
		for n, base := 2, id; ids[id]; n++ {
			id = fmt.Sprintf("%s_%d", base, n)
		}
		ids[id] = true
		tagged[svc] = true
		pi := doc.Paths[rt.path]
		if pi == nil {
			pi = &pathItem{}
			doc.Paths[rt.path] = pi
		}
		pi.set(rt.b.Verb, g.operation(rt, id, tag))
	}
	for _, s := range services {
		if tagged[s] {
			name, _ := serviceName(s)
			doc.Tags = append(doc.Tags, tag{Name: name, Description: comments(s.Desc)})
		}
	}
	for _, d := range dropped {
		doc.Omitted = append(doc.Omitted, omitted{
			Method: d.r.b.Method.Full, Verb: d.r.b.Verb, Path: d.r.b.Path,
			Reason: fmt.Sprintf("OpenAPI cannot tell its path from that of %s %s (%s)", d.by.b.Verb, d.by.b.Path, d.by.b.Method.Full),
		})
	}
	g.useBuiltin(statusName)
	g.flush()
	doc.Components.Schemas = g.schemas
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return buf.Bytes(), nil
}
