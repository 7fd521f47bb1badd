package openapi

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

const (
	statusName = "google.rpc.Status"
	anyName    = "google.protobuf.Any"
	httpBody   = "google.api.HttpBody"
)

// ref is a reference to the component schema name.
func ref(name string) *schemaObj { return &schemaObj{Ref: "#/components/schemas/" + name} }

// messageRef is the schema of a value of message md: a well-known type's
// own schema, or a reference to md's component (defined by flush).
func (g *generator) messageRef(md protoreflect.MessageDescriptor) *schemaObj {
	if s := g.wellKnown(md.FullName()); s != nil {
		return s
	}
	g.define(md)
	return ref(string(md.FullName()))
}

// enumRef is the schema of a value of enum ed: a reference to its
// component, or null for google.protobuf.NullValue.
func (g *generator) enumRef(ed protoreflect.EnumDescriptor) *schemaObj {
	if ed.FullName() == "google.protobuf.NullValue" {
		return &schemaObj{Type: "null"}
	}
	g.define(ed)
	return ref(string(ed.FullName()))
}

// define queues the component of a message or an enum.
func (g *generator) define(d protoreflect.Descriptor) {
	name := string(d.FullName())
	if g.queued[name] {
		return
	}
	g.queued[name] = true
	g.queue = append(g.queue, d)
}

// flush defines the queued components, and those they reference.
func (g *generator) flush() {
	for len(g.queue) > 0 {
		d := g.queue[0]
		g.queue = g.queue[1:]
		switch d := d.(type) {
		case protoreflect.MessageDescriptor:
			g.schemas[string(d.FullName())] = g.messageSchema(d, nil)
		case protoreflect.EnumDescriptor:
			g.schemas[string(d.FullName())] = g.enumSchema(d)
		}
	}
}

// useBuiltin defines the component google.rpc.Status or
// google.protobuf.Any, which are always the same: Status is the error body
// of every operation, whatever the registry's files say of it.
func (g *generator) useBuiltin(name string) {
	if g.schemas[name] != nil {
		return
	}
	switch name {
	case anyName:
		g.schemas[name] = &schemaObj{
			Type:        "object",
			Description: "A message of any type: its type URL in @type and its fields (or, for a well-known type, its JSON in value).",
			Properties: map[string]*schemaObj{
				"@type": {Type: "string", Description: "The type URL, type.googleapis.com/ and the message's full name."},
			},
			AdditionalProperties: true,
		}
	case statusName:
		g.useBuiltin(anyName)
		g.schemas[name] = &schemaObj{
			Type:        "object",
			Description: "The error of a failed call: its gRPC status code, a message for developers and the error details.",
			Properties: map[string]*schemaObj{
				"code":    {Type: "integer", Format: "int32", Description: "The gRPC status code (google.rpc.Code)."},
				"message": {Type: "string", Description: "A message for developers, in English."},
				"details": {Type: "array", Items: ref(anyName), Description: "The error details (google.rpc.ErrorInfo, BadRequest, …)."},
			},
		}
	}
}

// wellKnown is the schema of a value of a well-known type, as the proto3
// JSON mapping writes it, or nil for any other message.
func (g *generator) wellKnown(name protoreflect.FullName) *schemaObj {
	nullable := func(t string) any { return []string{t, "null"} }
	switch name {
	case "google.protobuf.Timestamp":
		return &schemaObj{Type: "string", Format: "date-time"}
	case "google.protobuf.Duration":
		return &schemaObj{Type: "string", Format: "google-duration", Pattern: durationPattern}
	case "google.protobuf.FieldMask":
		return &schemaObj{Type: "string", Format: "google-fieldmask"}
	case "google.protobuf.Struct":
		return &schemaObj{Type: "object"}
	case "google.protobuf.Value":
		return &schemaObj{}
	case "google.protobuf.ListValue":
		return &schemaObj{Type: "array", Items: &schemaObj{}}
	case "google.protobuf.Empty":
		return &schemaObj{Type: "object"}
	case "google.protobuf.DoubleValue":
		return &schemaObj{Type: nullable("number"), Format: "double"}
	case "google.protobuf.FloatValue":
		return &schemaObj{Type: nullable("number"), Format: "float"}
	case "google.protobuf.Int64Value":
		return &schemaObj{Type: nullable("string"), Format: "int64"}
	case "google.protobuf.UInt64Value":
		return &schemaObj{Type: nullable("string"), Format: "uint64"}
	case "google.protobuf.Int32Value":
		return &schemaObj{Type: nullable("integer"), Format: "int32"}
	case "google.protobuf.UInt32Value":
		return &schemaObj{Type: nullable("integer"), Format: "uint32", Minimum: new(int64(0)), Maximum: new(int64(1<<32 - 1))}
	case "google.protobuf.BoolValue":
		return &schemaObj{Type: nullable("boolean")}
	case "google.protobuf.StringValue":
		return &schemaObj{Type: nullable("string")}
	case "google.protobuf.BytesValue":
		return &schemaObj{Type: nullable("string"), Format: "byte", ContentEncoding: "base64"}
	case anyName, statusName:
		g.useBuiltin(string(name))
		return ref(string(name))
	}
	return nil
}

// durationPattern is google.protobuf.Duration in JSON: seconds with up to
// nine decimals, and "s".
const durationPattern = `^-?[0-9]+(\.[0-9]{1,9})?s$`

// scalarSchema is the schema of a value of a scalar kind in the proto3
// JSON mapping: 64-bit integers as strings, bytes as base64.
func scalarSchema(k protoreflect.Kind) *schemaObj {
	switch k {
	case protoreflect.BoolKind:
		return &schemaObj{Type: "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return &schemaObj{Type: "integer", Format: "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return &schemaObj{Type: "integer", Format: "uint32", Minimum: new(int64(0)), Maximum: new(int64(1<<32 - 1))}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return &schemaObj{Type: "string", Format: "int64"}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return &schemaObj{Type: "string", Format: "uint64"}
	case protoreflect.FloatKind:
		return &schemaObj{Type: "number", Format: "float"}
	case protoreflect.DoubleKind:
		return &schemaObj{Type: "number", Format: "double"}
	case protoreflect.StringKind:
		return &schemaObj{Type: "string"}
	case protoreflect.BytesKind:
		return &schemaObj{Type: "string", Format: "byte", ContentEncoding: "base64"}
	}
	return nil
}

// valueSchema is the schema of one value of fd (an element, for a
// repeated field).
func (g *generator) valueSchema(fd protoreflect.FieldDescriptor) *schemaObj {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return g.messageRef(fd.Message())
	case protoreflect.EnumKind:
		return g.enumRef(fd.Enum())
	}
	return scalarSchema(fd.Kind())
}

// bareFieldSchema is the schema of fd's value: an array for a repeated
// field, an object for a map.
func (g *generator) bareFieldSchema(fd protoreflect.FieldDescriptor) *schemaObj {
	switch {
	case fd.IsMap():
		return &schemaObj{Type: "object", AdditionalProperties: g.valueSchema(fd.MapValue()), PropertyNames: mapKeyNames(fd.MapKey().Kind())}
	case fd.IsList():
		return &schemaObj{Type: "array", Items: g.valueSchema(fd)}
	}
	s := g.valueSchema(fd)
	if g.o.EmitUnpopulated && fd.Message() != nil && fd.ContainingOneof() == nil {
		s = orNull(s)
	}
	return s
}

// orNull is s, or null: an unset message field with
// Options.EmitUnpopulated.
func orNull(s *schemaObj) *schemaObj {
	switch t := s.Type.(type) {
	case string:
		if t != "null" {
			s.Type = []string{t, "null"}
		}
		return s
	case []string:
		return s
	}
	if s.Ref == "" {
		return s // {}: anything, null too
	}
	return &schemaObj{AnyOf: []*schemaObj{s, {Type: "null"}}}
}

// mapKeyNames constrains the property names of a map of key kind k (JSON
// object keys are strings: an integer key is its decimal text).
func mapKeyNames(k protoreflect.Kind) *schemaObj {
	switch k {
	case protoreflect.BoolKind:
		return &schemaObj{Enum: []any{"true", "false"}}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return &schemaObj{Pattern: "^-?[0-9]+$"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return &schemaObj{Pattern: "^[0-9]+$"}
	}
	return nil
}

// fieldSchema is the schema of field fd of a message schema: its value's,
// with its comments, oneof, deprecation and field behaviour.
func (g *generator) fieldSchema(fd protoreflect.FieldDescriptor) *schemaObj {
	s := g.bareFieldSchema(fd)
	g.annotateField(s, fd)
	return s
}

// annotateField adds to s what fd says of itself.
func (g *generator) annotateField(s *schemaObj, fd protoreflect.FieldDescriptor) {
	desc := comments(fd)
	if note := g.oneofNote(fd); note != "" {
		desc = joinParagraphs(desc, note)
	}
	if desc != "" {
		s.Description = desc
	}
	s.Deprecated = s.Deprecated || fieldDeprecated(fd)
	for _, b := range fieldBehaviors(fd) {
		switch b {
		case annotations.FieldBehavior_OUTPUT_ONLY:
			s.ReadOnly = true
		case annotations.FieldBehavior_INPUT_ONLY:
			s.WriteOnly = true
		}
	}
}

// oneofNote says which oneof fd is a member of, or "".
func (g *generator) oneofNote(fd protoreflect.FieldDescriptor) string {
	od := fd.ContainingOneof()
	if od == nil || od.IsSynthetic() {
		return ""
	}
	var names []string
	fields := od.Fields()
	for i := range fields.Len() {
		names = append(names, "`"+g.jsonName(fields.Get(i))+"`")
	}
	return fmt.Sprintf("Member of oneof `%s`: at most one of %s is set.", od.Name(), strings.Join(names, ", "))
}

// messageSchema is the object schema of message md, less the fields at
// the paths of exclude (proto field names, relative to md): a message
// field with excluded fields of its own is inlined, less those.
func (g *generator) messageSchema(md protoreflect.MessageDescriptor, exclude [][]string) *schemaObj {
	s := &schemaObj{Type: "object", Properties: map[string]*schemaObj{}, Description: comments(md), Deprecated: messageDeprecated(md)}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		excluded, sub := splitPaths(exclude, string(fd.Name()))
		if excluded {
			continue
		}
		var fs *schemaObj
		if len(sub) > 0 && isPlainMessage(fd) {
			fs = g.messageSchema(fd.Message(), sub)
			g.annotateField(fs, fd)
		} else {
			fs = g.fieldSchema(fd)
		}
		name := g.jsonName(fd)
		s.Properties[name] = fs
		if isRequired(fd) {
			s.Required = append(s.Required, name)
		}
	}
	return s
}

// splitPaths reports whether paths holds name itself, and returns the
// rest of those that start with name.
func splitPaths(paths [][]string, name string) (whole bool, sub [][]string) {
	for _, p := range paths {
		if len(p) == 0 || p[0] != name {
			continue
		}
		if len(p) == 1 {
			whole = true
		} else {
			sub = append(sub, p[1:])
		}
	}
	return whole, sub
}

// isPlainMessage reports whether fd is a singular field of a message that
// is not a well-known type.
func isPlainMessage(fd protoreflect.FieldDescriptor) bool {
	if fd.Message() == nil || fd.IsList() || fd.IsMap() {
		return false
	}
	return !isWellKnown(fd.Message().FullName())
}

// isWellKnown reports whether message name has a schema of its own
// (wellKnown), not one of its fields.
func isWellKnown(name protoreflect.FullName) bool {
	switch name {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
		"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Empty",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
		anyName, statusName:
		return true
	}
	return false
}

// enumSchema is the component of enum ed: its value names (or numbers,
// with Options.EnumsAsNumbers), described by its comments and its values'.
func (g *generator) enumSchema(ed protoreflect.EnumDescriptor) *schemaObj {
	s := &schemaObj{Description: comments(ed)}
	if opts, ok := ed.Options().(*descriptorpb.EnumOptions); ok && opts.GetDeprecated() {
		s.Deprecated = true
	}
	var lines []string
	values := ed.Values()
	seen := map[protoreflect.EnumNumber]bool{}
	for i := range values.Len() {
		v := values.Get(i)
		if g.o.EnumsAsNumbers {
			if !seen[v.Number()] {
				seen[v.Number()] = true
				s.Enum = append(s.Enum, int32(v.Number()))
			}
		} else {
			s.Enum = append(s.Enum, string(v.Name()))
		}
		if c := comments(v); c != "" {
			lines = append(lines, fmt.Sprintf("- %s (%d): %s", v.Name(), v.Number(), strings.ReplaceAll(c, "\n", " ")))
		}
	}
	if g.o.EnumsAsNumbers {
		s.Type, s.Format = "integer", "int32"
	} else {
		s.Type = "string"
	}
	if len(lines) > 0 {
		s.Description = joinParagraphs(s.Description, strings.Join(lines, "\n"))
	}
	return s
}

// jsonName is fd's name in JSON: its json_name (lowerCamel by default),
// or with Options.UseProtoNames its name in the .proto.
func (g *generator) jsonName(fd protoreflect.FieldDescriptor) string {
	if g.o.UseProtoNames {
		return fd.TextName()
	}
	return fd.JSONName()
}

// isRequired reports whether fd is REQUIRED (google.api.field_behavior)
// or a proto2 required field.
func isRequired(fd protoreflect.FieldDescriptor) bool {
	return fd.Cardinality() == protoreflect.Required || slices.Contains(fieldBehaviors(fd), annotations.FieldBehavior_REQUIRED)
}

// fieldBehaviors is fd's google.api.field_behavior. Options parsed
// without the extension known (it is then an unknown field) are parsed
// again with the extensions linked into the binary.
func fieldBehaviors(fd protoreflect.FieldDescriptor) []annotations.FieldBehavior {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return nil
	}
	if !proto.HasExtension(opts, annotations.E_FieldBehavior) && len(opts.ProtoReflect().GetUnknown()) > 0 {
		b, err := proto.Marshal(opts)
		if err != nil {
			return nil
		}
		again := &descriptorpb.FieldOptions{}
		if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, again); err != nil {
			return nil
		}
		opts = again
	}
	fb, _ := proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	return fb
}

func fieldDeprecated(fd protoreflect.FieldDescriptor) bool {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	return ok && opts.GetDeprecated()
}

func messageDeprecated(md protoreflect.MessageDescriptor) bool {
	opts, ok := md.Options().(*descriptorpb.MessageOptions)
	return ok && opts.GetDeprecated()
}

// comments is d's leading comment (or, without one, its trailing
// comment) as its source info has it, without the comment markers'
// indentation; "" when the file has no source info.
func comments(d protoreflect.Descriptor) string {
	f := d.ParentFile()
	if f == nil {
		return ""
	}
	loc := f.SourceLocations().ByDescriptor(d)
	c := loc.LeadingComments
	if strings.TrimSpace(c) == "" {
		c = loc.TrailingComments
	}
	lines := strings.Split(c, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimRight(l, " \t\r"), " ")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// joinParagraphs joins the non-empty ones of ps with blank lines.
func joinParagraphs(ps ...string) string {
	var out []string
	for _, p := range ps {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}
