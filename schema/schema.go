// Package schema is the gateway's registry of the APIs it routes, one per
// configuration: the services, their methods and their REST bindings, from
// three sources —
//
//   - compiled in: Go code generated from the protos of proto/ registers
//     itself (RegisterCompiled, written by protoc-gen-edgegate), with its
//     grpc-gateway REST handlers;
//   - descriptor sets: binary FileDescriptorSet files the configuration
//     names (schema.descriptor_sets), as `buf build -o` or `protoc
//     --include_imports --descriptor_set_out` write them;
//   - server reflection: what an upstream cluster serves, discovered with
//     grpc.reflection.v1 (clusters[].reflection; package schema/discover).
//
// A Registry is immutable. It holds only the services with a routed
// method, and every consumer reads it: the REST door (its bindings), the
// gRPC-Web door and the proxy (which methods are unary), retries (which
// methods are safe), metrics (method labels), the gateway's reflection
// service, OpenAPI, and `edgegate routes`. Descriptors are its input,
// never the global registry.
package schema

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// SourceKind is where a service's descriptors come from.
type SourceKind int

// The sources, in the order a service found in several is taken from.
const (
	SourceCompiled SourceKind = iota
	SourceFile
	SourceReflection
)

// Source names where a service's descriptors come from.
type Source struct {
	Kind SourceKind
	// Name is the file's path (SourceFile) or the cluster's name
	// (SourceReflection); empty for SourceCompiled.
	Name string
}

// String is the source as `edgegate routes` shows it: "compiled",
// "file:PATH", "reflection:CLUSTER".
func (s Source) String() string {
	switch s.Kind {
	case SourceFile:
		return "file:" + s.Name
	case SourceReflection:
		return "reflection:" + s.Name
	}
	return "compiled"
}

// RESTRegistrar registers the generated grpc-gateway REST handlers of one
// service on mux, calling cc (a generated Register…HandlerClient).
type RESTRegistrar func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error

// Compiled is one proto file compiled into the binary, as its generated
// code registers it.
type Compiled struct {
	// File is the file's descriptor (the generated File_… variable).
	File protoreflect.FileDescriptor
	// REST are the generated REST registrations of the file's services,
	// by service full name; a service without bindings has none.
	REST map[string]RESTRegistrar
}

var compiled struct {
	mu    sync.Mutex
	files []Compiled
}

// RegisterCompiled records a compiled-in proto file. Generated code calls
// it from init (protoc-gen-edgegate); registering a file twice keeps the
// first.
func RegisterCompiled(c Compiled) {
	compiled.mu.Lock()
	defer compiled.mu.Unlock()
	for _, have := range compiled.files {
		if have.File.Path() == c.File.Path() {
			return
		}
	}
	compiled.files = append(compiled.files, c)
}

// CompiledFiles returns the compiled-in files registered so far, in
// registration order.
func CompiledFiles() []Compiled {
	compiled.mu.Lock()
	defer compiled.mu.Unlock()
	return slices.Clone(compiled.files)
}

// FileSet is a set of files from one source.
type FileSet struct {
	Source Source
	Files  *descriptorpb.FileDescriptorSet
}

// Input is what a Registry is built from.
type Input struct {
	// Compiled are the compiled-in files (CompiledFiles()).
	Compiled []Compiled
	// Sets are the descriptor sets of files and discovered clusters.
	Sets []FileSet
	// Rules are the configuration's extra bindings (schema.http_rules).
	Rules []*configv1.HttpRule
	// DefaultBindings adds POST /{package.Service}/{Method} (body "*") for
	// every routed method without another binding.
	DefaultBindings bool
	// Routed reports whether a method ("/pkg.Service/Method") has a route.
	Routed func(fullMethod string) bool
	// Pending (may be nil) reports whether a method's descriptors may come
	// later: its cluster serves them by reflection, not read yet. A rule
	// for such a method, not in the registry, is left out, not an error.
	Pending func(fullMethod string) bool
}

// Registry is the APIs of one configuration. It is immutable and safe for
// concurrent use.
type Registry struct {
	files    *protoregistry.Files
	types    *dynamicpb.Types
	services []*Service
	byName   map[string]*Service
	methods  map[string]*Method
	bindings []*Binding
}

// Service is one routed service.
type Service struct {
	Desc   protoreflect.ServiceDescriptor
	Source Source
	// REST registers its generated REST handlers; nil unless compiled in
	// with bindings.
	REST    RESTRegistrar
	Methods []*Method
}

// Method is one method of a routed service.
type Method struct {
	Desc protoreflect.MethodDescriptor
	// Full is "/pkg.Service/Method".
	Full    string
	Service *Service
	// Routed is whether the method has a route (a service is listed when
	// one of its methods has).
	Routed   bool
	Bindings []*Binding
}

// Unary reports whether the method takes one request and gives one
// answer.
func (m *Method) Unary() bool {
	return !m.Desc.IsStreamingClient() && !m.Desc.IsStreamingServer()
}

// Safe reports whether the method is marked NO_SIDE_EFFECTS or
// IDEMPOTENT (idempotency_level) and takes one request message: a call of
// it may be retried.
func (m *Method) Safe() bool {
	if m.Desc.IsStreamingClient() {
		return false
	}
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		return true
	}
	return false
}

// NoSideEffects reports whether the method is marked NO_SIDE_EFFECTS
// (idempotency_level): an answer of it may be cached.
func (m *Method) NoSideEffects() bool {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	return opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
}

// BindingOrigin is where a REST binding comes from.
type BindingOrigin int

// The origins of a binding.
const (
	// FromAnnotation is the method's google.api.http option.
	FromAnnotation BindingOrigin = iota
	// FromConfig is schema.http_rules.
	FromConfig
	// FromDefault is schema.default_bindings.
	FromDefault
)

// Binding is one REST binding of a routed method.
type Binding struct {
	Method *Method
	// Verb is the HTTP method ("GET", …, or a custom verb); Path the
	// google.api.http path template ("/v1/{name=shelves/*/books/*}").
	Verb, Path string
	// Body is the request field the body maps to ("*": the whole
	// request; "": no body); ResponseBody the response field the answer
	// is ("": the whole response).
	Body, ResponseBody string
	// SuccessStatus is the HTTP status of a successful answer; 0: 200.
	SuccessStatus int
	Origin        BindingOrigin
}

// Files returns the registry's files: every file of every source, with
// its dependencies (a protodesc.Resolver for the gateway's reflection
// service, and for JSON of the registry's types). A nil Registry has none.
func (r *Registry) Files() *protoregistry.Files {
	if r == nil {
		return &protoregistry.Files{}
	}
	return r.files
}

// Types returns dynamic types of the registry's files (resolving Any in
// JSON).
func (r *Registry) Types() *dynamicpb.Types {
	if r == nil {
		return dynamicpb.NewTypes(&protoregistry.Files{})
	}
	return r.types
}

// Services returns the routed services, sorted by name; a nil Registry
// has none.
func (r *Registry) Services() []*Service {
	if r == nil {
		return nil
	}
	return r.services
}

// Service returns the routed service of full name name, or nil.
func (r *Registry) Service(name string) *Service {
	if r == nil {
		return nil
	}
	return r.byName[name]
}

// Method returns the method of fullMethod ("/pkg.Service/Method") of a
// routed service, or nil. A nil Registry has none.
func (r *Registry) Method(fullMethod string) *Method {
	if r == nil {
		return nil
	}
	return r.methods[fullMethod]
}

// IsUnary reports whether fullMethod is a known unary method.
func (r *Registry) IsUnary(fullMethod string) bool {
	m := r.Method(fullMethod)
	return m != nil && m.Unary()
}

// Bindings returns every REST binding of the routed methods, in service
// and method order; a nil Registry has none.
func (r *Registry) Bindings() []*Binding {
	if r == nil {
		return nil
	}
	return r.bindings
}

// BindingSource is where a binding comes from, as `edgegate routes` shows
// it: its service's source ("compiled", "file:PATH", "reflection:CLUSTER"),
// and for a binding of the configuration "+config" or "+default".
func BindingSource(b *Binding) string {
	s := b.Method.Service.Source.String()
	switch b.Origin {
	case FromConfig:
		s += "+config"
	case FromDefault:
		s += "+default"
	}
	return s
}

// Build builds the registry of in. A service that two sources describe
// differently, or two bindings that claim one verb and path, are errors
// naming both sources.
func Build(in Input) (*Registry, error) {
	r := &Registry{files: &protoregistry.Files{}, byName: map[string]*Service{}, methods: map[string]*Method{}}
	routed := in.Routed
	if routed == nil {
		routed = func(string) bool { return true }
	}
	// Files, by path: the first source of a file wins; another source with
	// a different file of the same path is a conflict when it defines a
	// service.
	type fileOf struct {
		fd     protoreflect.FileDescriptor
		source Source
		rest   map[string]RESTRegistrar
	}
	var files []fileOf
	seen := map[string]fileOf{}
	add := func(fd protoreflect.FileDescriptor, src Source, rest map[string]RESTRegistrar) error {
		if prev, ok := seen[fd.Path()]; ok {
			if fd.Services().Len() > 0 && !sameFile(prev.fd, fd) {
				return fmt.Errorf("schema: %s and %s describe %s differently", prev.source, src, fd.Path())
			}
			return nil
		}
		if err := r.files.RegisterFile(fd); err != nil {
			return fmt.Errorf("schema: %s: %w", src, err)
		}
		f := fileOf{fd, src, rest}
		seen[fd.Path()] = f
		files = append(files, f)
		return nil
	}
	for _, c := range in.Compiled {
		if err := addWithDeps(c.File, Source{Kind: SourceCompiled}, func(fd protoreflect.FileDescriptor, src Source) error {
			if fd == c.File {
				return add(fd, src, c.REST)
			}
			return add(fd, src, nil)
		}); err != nil {
			return nil, err
		}
	}
	for _, set := range in.Sets {
		fds, err := protodesc.NewFiles(set.Files)
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", set.Source, err)
		}
		var errAdd error
		// In the set's own order, dependencies first (NewFiles checked
		// that every dependency is in the set).
		for _, fdp := range set.Files.GetFile() {
			fd, err := fds.FindFileByPath(fdp.GetName())
			if err != nil {
				return nil, fmt.Errorf("schema: %s: %w", set.Source, err)
			}
			if errAdd = add(fd, set.Source, nil); errAdd != nil {
				return nil, errAdd
			}
		}
	}
	r.types = dynamicpb.NewTypes(r.files)
	// Services: from the first file that defines each; a service defined
	// in two files of different paths is a conflict too.
	for _, f := range files {
		svcs := f.fd.Services()
		for i := range svcs.Len() {
			sd := svcs.Get(i)
			name := string(sd.FullName())
			if prev, ok := r.byName[name]; ok {
				return nil, fmt.Errorf("schema: %s and %s both define service %s", prev.Source, f.source, name)
			}
			s := &Service{Desc: sd, Source: f.source, REST: f.rest[name]}
			any := false
			ms := sd.Methods()
			for j := range ms.Len() {
				md := ms.Get(j)
				m := &Method{Desc: md, Full: "/" + name + "/" + string(md.Name()), Service: s}
				m.Routed = routed(m.Full)
				any = any || m.Routed
				s.Methods = append(s.Methods, m)
			}
			if any {
				r.byName[name] = s
				r.services = append(r.services, s)
				for _, m := range s.Methods {
					r.methods[m.Full] = m
				}
			}
		}
	}
	slices.SortFunc(r.services, func(a, b *Service) int { return strings.Compare(string(a.Desc.FullName()), string(b.Desc.FullName())) })
	if err := r.bind(in); err != nil {
		return nil, err
	}
	return r, nil
}

// addWithDeps calls add for fd's dependencies (depth first) and then fd.
func addWithDeps(fd protoreflect.FileDescriptor, src Source, add func(protoreflect.FileDescriptor, Source) error) error {
	imports := fd.Imports()
	for i := range imports.Len() {
		if err := addWithDeps(imports.Get(i).FileDescriptor, src, add); err != nil {
			return err
		}
	}
	return add(fd, src)
}

// sameFile reports whether a and b are the same file, comments aside.
func sameFile(a, b protoreflect.FileDescriptor) bool {
	if a == b {
		return true
	}
	pa, pb := protodesc.ToFileDescriptorProto(a), protodesc.ToFileDescriptorProto(b)
	pa.SourceCodeInfo, pb.SourceCodeInfo = nil, nil
	ba, err1 := proto.MarshalOptions{Deterministic: true}.Marshal(pa)
	bb, err2 := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	return err1 == nil && err2 == nil && bytes.Equal(ba, bb)
}

// bind finds the REST bindings of the routed methods: their annotations,
// the configuration's rules, and the default bindings; two bindings of one
// verb and path shape are an error.
func (r *Registry) bind(in Input) error {
	type claim struct {
		b   *Binding
		src string
	}
	claims := map[string]claim{}
	bindOne := func(m *Method, b *Binding, src string) error {
		shape, err := PathShape(b.Path)
		if err != nil {
			return fmt.Errorf("schema: %s: %s binding %s %s: %w", src, m.Full[1:], b.Verb, b.Path, err)
		}
		key := b.Verb + " " + shape
		if prev, ok := claims[key]; ok {
			if prev.b.Method == m && prev.b.Origin == FromAnnotation && b.Origin == FromConfig && prev.b.Path == b.Path {
				// A rule for an annotated binding sets what it adds to it.
				prev.b.SuccessStatus = b.SuccessStatus
				return nil
			}
			return fmt.Errorf("schema: %s %s is claimed by %s (%s) and by %s (%s)", b.Verb, b.Path, prev.b.Method.Full[1:], prev.src, m.Full[1:], src)
		}
		b.Method = m
		claims[key] = claim{b, src}
		m.Bindings = append(m.Bindings, b)
		return nil
	}
	for _, s := range r.services {
		for _, m := range s.Methods {
			if !m.Routed {
				continue
			}
			rule, _ := proto.GetExtension(m.Desc.Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule == nil {
				continue
			}
			for _, hr := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				verb, path := annotationPattern(hr)
				if verb == "" {
					continue
				}
				b := &Binding{Verb: verb, Path: path, Body: hr.GetBody(), ResponseBody: hr.GetResponseBody(), Origin: FromAnnotation}
				if err := bindOne(m, b, s.Source.String()); err != nil {
					return err
				}
			}
		}
	}
	for i, hr := range in.Rules {
		full := "/" + strings.TrimPrefix(hr.GetMethod(), "/")
		m := r.methods[full]
		path := fmt.Sprintf("schema.http_rules[%d]", i)
		if m == nil && in.Pending != nil && in.Pending(full) {
			continue
		}
		if m == nil || !m.Routed {
			return config.FieldErrorf(path+".method", "%s is not a routed method of a known service", full[1:])
		}
		verb, tmpl := ruleVerbPath(hr)
		b := &Binding{Verb: verb, Path: tmpl, Body: hr.GetBody(), ResponseBody: hr.GetResponseBody(), SuccessStatus: int(hr.GetSuccessStatus()), Origin: FromConfig}
		if err := bindOne(m, b, path); err != nil {
			return &config.FieldError{Path: path, Err: err}
		}
	}
	if in.DefaultBindings {
		for _, s := range r.services {
			for _, m := range s.Methods {
				if !m.Routed || len(m.Bindings) > 0 || m.Desc.IsStreamingClient() {
					continue
				}
				b := &Binding{Verb: http.MethodPost, Path: "/" + string(s.Desc.FullName()) + "/" + string(m.Desc.Name()), Body: "*", Origin: FromDefault}
				if err := bindOne(m, b, "schema.default_bindings"); err != nil {
					return err
				}
			}
		}
	}
	for _, s := range r.services {
		for _, m := range s.Methods {
			r.bindings = append(r.bindings, m.Bindings...)
		}
	}
	return nil
}

func annotationPattern(r *annotations.HttpRule) (verb, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

func ruleVerbPath(r *configv1.HttpRule) (verb, path string) {
	switch {
	case r.GetGet() != "":
		return http.MethodGet, r.GetGet()
	case r.GetPost() != "":
		return http.MethodPost, r.GetPost()
	case r.GetPut() != "":
		return http.MethodPut, r.GetPut()
	case r.GetPatch() != "":
		return http.MethodPatch, r.GetPatch()
	case r.GetDelete() != "":
		return http.MethodDelete, r.GetDelete()
	}
	return r.GetCustom().GetKind(), r.GetCustom().GetPath()
}

// PathShape is a path template with its variables replaced by their
// patterns ("/v1/{name=shelves/*}/books/{id}:get" → "/v1/shelves/*/books/*:get"):
// two templates of one shape match the same paths. It returns an error
// for a template that does not parse.
func PathShape(tmpl string) (string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return "", fmt.Errorf("template %q does not start with /", tmpl)
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '{' {
			if c == '}' {
				return "", fmt.Errorf("template %q: } without {", tmpl)
			}
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(tmpl[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("template %q: { without }", tmpl)
		}
		v := tmpl[i+1 : i+end]
		name, pattern, ok := strings.Cut(v, "=")
		if !ok {
			pattern = "*"
		}
		if name == "" || pattern == "" || strings.ContainsAny(pattern, "{}") {
			return "", fmt.Errorf("template %q: bad variable {%s}", tmpl, v)
		}
		b.WriteString(pattern)
		i += end
	}
	return b.String(), nil
}
