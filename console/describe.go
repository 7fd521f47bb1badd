package console

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/edgegate/edgegate/schema"
)

// methodJSON is one method as api/methods lists it.
type methodJSON struct {
	Service  string        `json:"service"`
	Method   string        `json:"method"`
	Full     string        `json:"full"`
	Kind     string        `json:"kind"` // unary, server_stream, client_stream, bidi_stream
	Source   string        `json:"source"`
	Route    string        `json:"route,omitempty"`
	Cluster  string        `json:"cluster,omitempty"`
	Comment  string        `json:"comment,omitempty"`
	Input    string        `json:"input"`
	Output   string        `json:"output"`
	Template any           `json:"template"`
	Fields   []fieldJSON   `json:"fields"`
	Bindings []bindingJSON `json:"bindings"`
}

type bindingJSON struct {
	Verb   string `json:"verb"`
	Path   string `json:"path"`
	Body   string `json:"body,omitempty"`
	Source string `json:"source"`
}

// fieldJSON is one field of the input message (nested ones by their JSON
// path, "a.b"): its type as the .proto says it and its comment.
type fieldJSON struct {
	Path    string `json:"path"`
	Type    string `json:"type"`
	Comment string `json:"comment,omitempty"`
}

type methodsJSON struct {
	Listener string       `json:"listener,omitempty"`
	Address  string       `json:"address,omitempty"`
	CanCall  bool         `json:"can_call"`
	Methods  []methodJSON `json:"methods"`
}

func describe(o Options) methodsJSON {
	out := methodsJSON{Listener: o.Listener, Address: o.Address, CanCall: o.Door != nil, Methods: []methodJSON{}}
	for _, svc := range o.Registry().Services() {
		for _, m := range svc.Methods {
			if !m.Routed {
				continue
			}
			d := m.Desc
			mj := methodJSON{
				Service: string(svc.Desc.FullName()), Method: string(d.Name()), Full: m.Full,
				Kind: kind(d), Source: svc.Source.String(), Comment: comment(d),
				Input: string(d.Input().FullName()), Output: string(d.Output().FullName()),
				Bindings: []bindingJSON{},
			}
			if o.Route != nil {
				mj.Route, mj.Cluster, _ = o.Route(m.Full)
			}
			var fields []fieldJSON
			mj.Template = template(d.Input(), "", &fields, map[protoreflect.FullName]bool{})
			mj.Fields = fields
			for _, b := range m.Bindings {
				mj.Bindings = append(mj.Bindings, bindingJSON{Verb: b.Verb, Path: b.Path, Body: b.Body, Source: schema.BindingSource(b)})
			}
			out.Methods = append(out.Methods, mj)
		}
	}
	return out
}

func kind(d protoreflect.MethodDescriptor) string {
	switch {
	case d.IsStreamingClient() && d.IsStreamingServer():
		return "bidi_stream"
	case d.IsStreamingClient():
		return "client_stream"
	case d.IsStreamingServer():
		return "server_stream"
	}
	return "unary"
}

// comment is a descriptor's leading comment (or trailing one), when its
// file kept source info (a descriptor set built with it; compiled-in
// files have none).
func comment(d protoreflect.Descriptor) string {
	loc := d.ParentFile().SourceLocations().ByDescriptor(d)
	c := strings.TrimSpace(loc.LeadingComments)
	if c == "" {
		c = strings.TrimSpace(loc.TrailingComments)
	}
	return c
}

// wellKnown are the JSON forms of the well-known types a template shows.
var wellKnown = map[protoreflect.FullName]any{
	"google.protobuf.Timestamp":   "1970-01-01T00:00:00Z",
	"google.protobuf.Duration":    "0s",
	"google.protobuf.FieldMask":   "",
	"google.protobuf.Struct":      map[string]any{},
	"google.protobuf.Value":       nil,
	"google.protobuf.ListValue":   []any{},
	"google.protobuf.Any":         map[string]any{"@type": ""},
	"google.protobuf.Empty":       map[string]any{},
	"google.protobuf.StringValue": "",
	"google.protobuf.BytesValue":  "",
	"google.protobuf.BoolValue":   false,
	"google.protobuf.Int32Value":  0,
	"google.protobuf.UInt32Value": 0,
	"google.protobuf.Int64Value":  "0",
	"google.protobuf.UInt64Value": "0",
	"google.protobuf.FloatValue":  0,
	"google.protobuf.DoubleValue": 0,
}

// template is md as a proto3 JSON object with every field at its zero
// value (a repeated field with one element, a map empty, an enum its first
// value, a message its own template; a message inside itself null), and
// the fields it lists into fields.
func template(md protoreflect.MessageDescriptor, prefix string, fields *[]fieldJSON, open map[protoreflect.FullName]bool) any {
	if v, ok := wellKnown[md.FullName()]; ok {
		return v
	}
	if open[md.FullName()] {
		return nil
	}
	open[md.FullName()] = true
	defer delete(open, md.FullName())
	obj := map[string]any{}
	fs := md.Fields()
	for i := range fs.Len() {
		fd := fs.Get(i)
		path := prefix + fd.JSONName()
		*fields = append(*fields, fieldJSON{Path: path, Type: typeName(fd), Comment: comment(fd)})
		var v any
		switch {
		case fd.IsMap():
			v = map[string]any{}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			v = template(fd.Message(), path+".", fields, open)
		default:
			v = scalar(fd)
		}
		if fd.IsList() {
			if v == nil {
				v = []any{}
			} else {
				v = []any{v}
			}
		}
		obj[fd.JSONName()] = v
	}
	return obj
}

func scalar(fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return false
	case protoreflect.StringKind, protoreflect.BytesKind:
		return ""
	case protoreflect.EnumKind:
		if vs := fd.Enum().Values(); vs.Len() > 0 {
			return string(vs.Get(0).Name())
		}
		return 0
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "0" // proto3 JSON: 64-bit integers are strings
	}
	return 0
}

// typeName is a field's type as the .proto spells it: "string",
// "repeated int32", "map<string, shop.Book>", "shop.Genre".
func typeName(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "map<" + kindName(fd.MapKey()) + ", " + kindName(fd.MapValue()) + ">"
	}
	t := kindName(fd)
	if fd.IsList() {
		t = "repeated " + t
	}
	if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
		t += " (oneof " + string(fd.ContainingOneof().Name()) + ")"
	}
	return t
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}
