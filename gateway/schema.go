package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/aggregate"
	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
)

// buildSchema builds the registry of cfg's routed APIs (table says what
// is routed): the compiled-in files, the descriptor sets cfg names (read
// now), and discovered, what the clusters' server reflection last served.
func (g *Gateway) buildSchema(cfg *configv1.Config, table *router.Table, discovered []schema.FileSet) (*schema.Registry, error) {
	reflected := map[string]bool{} // the clusters read by reflection
	for _, c := range cfg.GetClusters() {
		reflected[c.GetName()] = c.GetReflection() != nil
	}
	composites := aggregate.Methods(cfg)
	compRules, compPaths := aggregate.HTTPRules(cfg, false)
	rules := cfg.GetSchema().GetHttpRules()
	in := schema.Input{
		Compiled:        g.compiled,
		Rules:           append(slices.Clip(rules), compRules...),
		DefaultBindings: cfg.GetSchema().GetDefaultBindings(),
		Routed:          func(m string) bool { return table.Lookup(m) != nil || composites[m] },
		Pending: func(m string) bool {
			r := table.Lookup(m)
			return r != nil && reflected[r.Cluster]
		},
	}
	for i, path := range cfg.GetSchema().GetDescriptorSets() {
		set, err := readDescriptorSet(path)
		if err != nil {
			return nil, &config.FieldError{Path: fmt.Sprintf("schema.descriptor_sets[%d]", i), Err: err}
		}
		in.Sets = append(in.Sets, schema.FileSet{Source: schema.Source{Kind: schema.SourceFile, Name: path}, Files: set})
	}
	in.Sets = append(in.Sets, discovered...)
	reg, err := schema.Build(in)
	if err == nil && aggregate.HasRESTOnly(cfg) {
		// The composites without a method: their types are made from
		// the schema's, then the schema is built again with them.
		var fd protoreflect.FileDescriptor
		if fd, err = aggregate.RESTOnlyFile(cfg, reg); err != nil {
			return nil, err
		}
		compRules, compPaths = aggregate.HTTPRules(cfg, true)
		in.Compiled = append(slices.Clip(in.Compiled), schema.Compiled{File: fd})
		in.Rules = append(slices.Clip(rules), compRules...)
		reg, err = schema.Build(in)
	}
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			// A composite's binding is named by its own path.
			for i, p := range compPaths {
				rp := fmt.Sprintf("schema.http_rules[%d]", len(rules)+i)
				if fe.Path == rp || strings.HasPrefix(fe.Path, rp+".") {
					return nil, &config.FieldError{Path: p, Err: fe.Err}
				}
			}
		}
		if config.IsFieldError(err) || cfg.GetSchema() == nil {
			return nil, err
		}
		return nil, &config.FieldError{Path: "schema", Err: err}
	}
	return reg, nil
}

// readDescriptorSet reads a binary FileDescriptorSet file.
func readDescriptorSet(path string) (*descriptorpb.FileDescriptorSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		return nil, fmt.Errorf("%s is not a binary FileDescriptorSet (buf build -o FILE.binpb, protoc --descriptor_set_out): %w", path, err)
	}
	if len(set.GetFile()) == 0 {
		return nil, fmt.Errorf("%s holds no file", path)
	}
	return set, nil
}

// knownMethods are the methods metrics label by name: the registry's, the
// gateway's own services', and the exact-method routes'.
func (g *Gateway) knownMethods(snap *router.Snapshot) []string {
	var out []string
	for _, s := range snap.Schema.Services() {
		for _, m := range s.Methods {
			out = append(out, m.Full)
		}
	}
	if g.server != nil {
		for name, info := range g.server.GetServiceInfo() {
			for _, m := range info.Methods {
				out = append(out, "/"+name+"/"+m.Name)
			}
		}
	}
	for _, r := range snap.Table.Routes() {
		if r.Kind == "method" {
			out = append(out, "/"+r.Pattern)
		}
	}
	for _, r := range snap.Table.HTTPRoutes() {
		out = append(out, router.HTTPMethodPrefix+r.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// restDispatch is the REST door of the configuration in force: each
// request goes to its snapshot's REST handler, the client's forwarding
// headers recorded first (before grpc-gateway changes them).
type restDispatch struct {
	g    *Gateway
	next http.Handler // RecordHTTPForwarding of restCurrent
}

func (d restDispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.next.ServeHTTP(w, r) }

// AcceptsRawBody reports whether r is for a binding whose body is a
// google.api.HttpBody.
func (d restDispatch) AcceptsRawBody(r *http.Request) bool {
	raw, ok := d.g.doorsNow().rest.(interface{ AcceptsRawBody(*http.Request) bool })
	return ok && raw.AcceptsRawBody(r)
}

// MethodOf returns the method of the binding r is for in the REST door
// in force; "" when none.
func (d restDispatch) MethodOf(r *http.Request) string {
	m, ok := d.g.doorsNow().rest.(interface{ MethodOf(*http.Request) string })
	if !ok {
		return ""
	}
	return m.MethodOf(r)
}

// restCurrent serves a request with the REST handler in force.
type restCurrent struct{ g *Gateway }

func (c restCurrent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.g.doorsNow().rest.ServeHTTP(w, r)
}
