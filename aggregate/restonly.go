package aggregate

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/schema"
)

// A composite without a method is served on its REST binding alone. Its
// request and response types are made from the configuration, in a file
// of their own that the schema registers like a compiled-in one (REST
// door, OpenAPI, reflection): service edgegate.composite.v1.Composites,
// one method per such composite, named after it. Its request has a string
// field per path variable and per `request.NAME` its legs read (repeated
// when a fan-out goes over it); its response a field per leg, holding
// the leg's answer (a list for a fan-out), named as the leg, and an
// "errors" map of the failed optional legs' google.rpc.Status.
const (
	restOnlyPackage = "edgegate.composite.v1"
	restOnlyService = restOnlyPackage + ".Composites"
	restOnlyFile    = "edgegate/composite/v1/composites.proto"
	statusFile      = "google/rpc/status.proto"
)

// restOnlyMethod is the method of the REST-only composite named name:
// "book-page" → "/edgegate.composite.v1.Composites/BookPage".
func restOnlyMethod(name string) string {
	return "/" + restOnlyService + "/" + camel(name)
}

func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// methodOf is the method a composite serves: its own, or the one made for
// it.
func methodOf(c *configv1.Composite) string {
	if c.GetMethod() == "" {
		return restOnlyMethod(c.GetName())
	}
	return "/" + strings.TrimPrefix(c.GetMethod(), "/")
}

// HasRESTOnly reports whether cfg has a composite without a method.
func HasRESTOnly(cfg *configv1.Config) bool {
	return slices.ContainsFunc(cfg.GetComposites(), func(c *configv1.Composite) bool { return c.GetMethod() == "" })
}

// RESTOnlyFile returns the file of the types of cfg's REST-only
// composites, resolved against reg (the schema without it, which gives the
// legs' answer types); nil when there are none. A leg whose method reg
// does not know has no field (Compile reports it).
func RESTOnlyFile(cfg *configv1.Config, reg *schema.Registry) (protoreflect.FileDescriptor, error) {
	if !HasRESTOnly(cfg) {
		return nil, nil
	}
	f := &descriptorpb.FileDescriptorProto{
		Name:    proto.String(restOnlyFile),
		Package: proto.String(restOnlyPackage),
		Syntax:  proto.String("proto3"),
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Composites")}},
	}
	deps := map[string]bool{statusFile: true}
	seen := map[string]int{}
	for i, cc := range cfg.GetComposites() {
		if cc.GetMethod() != "" {
			continue
		}
		p := fmt.Sprintf("composites[%d]", i)
		name := camel(cc.GetName())
		if j, dup := seen[name]; dup {
			return nil, config.FieldErrorf(p+".name", "composite %q and composite %q are both served as %s", cfg.GetComposites()[j].GetName(), cc.GetName(), restOnlyMethod(cc.GetName())[1:])
		}
		seen[name] = i
		if cc.GetHttp() == nil {
			return nil, config.FieldErrorf(p+".http", "a composite without a method needs its REST binding")
		}
		in, err := restOnlyRequest(cc, name+"Request")
		if err != nil {
			return nil, &config.FieldError{Path: p, Err: err}
		}
		out := &descriptorpb.DescriptorProto{Name: proto.String(name + "Response")}
		for j, lc := range cc.GetLegs() {
			if lc.GetName() == "errors" {
				return nil, config.FieldErrorf(fmt.Sprintf("%s.legs[%d].name", p, j), `"errors" is the answer's key of the failed legs: name the leg otherwise`)
			}
			if len(lc.GetResponse()) > 0 {
				return nil, config.FieldErrorf(fmt.Sprintf("%s.legs[%d].response", p, j), "a composite without a method answers each leg under its name: response mappings need a method")
			}
			m := reg.Method("/" + strings.TrimPrefix(lc.GetMethod(), "/"))
			if m == nil {
				continue
			}
			o := m.Desc.Output()
			deps[o.ParentFile().Path()] = true
			label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
			if lc.GetFanOut() != nil {
				label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
			}
			out.Field = append(out.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String(lc.GetName()), JsonName: proto.String(lc.GetName()), Number: proto.Int32(int32(j + 1)),
				Label: label.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String("." + string(o.FullName())),
			})
		}
		out.NestedType = []*descriptorpb.DescriptorProto{{
			Name:    proto.String("ErrorsEntry"),
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("key"), JsonName: proto.String("key"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
				{Name: proto.String("value"), JsonName: proto.String("value"), Number: proto.Int32(2), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".google.rpc.Status")},
			},
		}}
		out.Field = append(out.Field, &descriptorpb.FieldDescriptorProto{
			Name: proto.String("errors"), JsonName: proto.String("errors"), Number: proto.Int32(int32(len(cc.GetLegs()) + 1)),
			Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
			TypeName: proto.String("." + restOnlyPackage + "." + name + "Response.ErrorsEntry"),
		})
		f.MessageType = append(f.MessageType, in, out)
		f.Service[0].Method = append(f.Service[0].Method, &descriptorpb.MethodDescriptorProto{
			Name: proto.String(name), InputType: proto.String("." + restOnlyPackage + "." + name + "Request"), OutputType: proto.String("." + restOnlyPackage + "." + name + "Response"),
		})
	}
	for d := range deps {
		f.Dependency = append(f.Dependency, d)
	}
	slices.Sort(f.Dependency)
	fd, err := protodesc.NewFile(f, reg.Files())
	if err != nil {
		return nil, fmt.Errorf("composites: %w", err)
	}
	return fd, nil
}

// restOnlyRequest is the request type of a REST-only composite: a string
// field per path variable and per request.NAME its legs read, repeated
// for a fan-out's.
func restOnlyRequest(cc *configv1.Composite, name string) (*descriptorpb.DescriptorProto, error) {
	fields := map[string]bool{} // name → repeated
	for _, m := range templateVar(template(cc.GetHttp())) {
		fields[m] = false
	}
	field := func(expr string, repeated bool) {
		rest, ok := strings.CutPrefix(expr, "request.")
		if !ok || rest == "" {
			return
		}
		top, _, _ := strings.Cut(rest, ".")
		fields[top] = fields[top] || repeated
	}
	for _, lc := range cc.GetLegs() {
		for _, f := range lc.GetRequest() {
			field(f.GetFrom(), false)
		}
		if fo := lc.GetFanOut(); fo != nil {
			field(fo.GetOver(), true)
		}
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		if !validIdent(n) {
			return nil, fmt.Errorf("request field %q is not a field name", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	msg := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	for i, n := range names {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if fields[n] {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		msg.Field = append(msg.Field, &descriptorpb.FieldDescriptorProto{
			Name: proto.String(n), JsonName: proto.String(n), Number: proto.Int32(int32(i + 1)),
			Label: label.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
		})
	}
	return msg, nil
}

func validIdent(s string) bool {
	for i, r := range s {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// templateVar returns the top-level field names of a path template's
// variables: "/v1/{book=shelves/*}/x/{id}" → book, id.
func templateVar(tmpl string) []string {
	var out []string
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return out
		}
		v, _, _ := strings.Cut(tmpl[i+1:i+j], "=")
		top, _, _ := strings.Cut(v, ".")
		out = append(out, top)
		tmpl = tmpl[i+j+1:]
	}
}

// restOnly returns a copy of cc, a composite without a method, as the
// composite of its made method: each leg's whole answer to the field of
// its name, the failed legs to "errors".
func restOnly(cc *configv1.Composite) *configv1.Composite {
	c := proto.CloneOf(cc)
	c.Method = restOnlyMethod(cc.GetName())[1:]
	c.ErrorsField = "errors"
	for _, l := range c.GetLegs() {
		l.Response = []*configv1.CompositeField{{Field: l.GetName()}}
	}
	return c
}
