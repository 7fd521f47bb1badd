// Package aggregate serves composite endpoints: methods the gateway
// answers itself by calling several routed methods (legs) and merging
// their answers into one typed response.
//
// A configuration's composites are compiled against its schema registry
// (Compile): every method, field path and mapping is checked there, the
// legs' dependencies are ordered (a cycle is an error), and two legs
// writing one field are refused, so that an answer never depends on which
// leg answered first. A call (Composite.Serve) runs each leg as a call of
// its own method through a grpc.ClientConnInterface (the gateway's
// in-process connection: the whole chain, then the proxy), legs with no
// dependency at once, the others as soon as what they read is there.
package aggregate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/schema"
)

// Defaults of a composite's settings.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxItems       = 100
	DefaultFanConcurrency = 8
)

// Composite is one compiled composite endpoint. It is never modified
// after Compile and is safe for concurrent use.
type Composite struct {
	// Name is the composite's name from the configuration.
	Name string
	// Method is the method it serves, "/pkg.Service/Method".
	Method string
	// Route is the name of the route whose policies its call passes; ""
	// for none.
	Route string
	// Timeout bounds every call.
	Timeout time.Duration
	// Legs are its legs, in configuration order.
	Legs []*Leg

	in, out   protoreflect.MessageDescriptor
	errsField protoreflect.FieldDescriptor // map<string, google.rpc.Status>, or nil
}

// Leg is one compiled leg of a composite.
type Leg struct {
	// Name is the leg's name.
	Name string
	// Method is the method it calls, "/pkg.Service/Method".
	Method string
	// Optional reports whether the call goes on when the leg fails.
	Optional bool
	// Timeout, when positive, bounds the leg within the call's deadline.
	Timeout time.Duration
	// After are the names of the legs whose answers it reads.
	After []string
	// FanOut is the repeated field it is called once per item of; "" for
	// none.
	FanOut string

	index    int
	deps     []int
	in, out  protoreflect.MessageDescriptor
	request  []setter
	response []merge
	fan      *fanOut
}

// fanOut is a compiled fan_out.
type fanOut struct {
	over        source
	maxItems    int
	concurrency int
}

// setter sets one field of a leg's request.
type setter struct {
	dst []protoreflect.FieldDescriptor
	src source
}

// merge copies part of a leg's answer into the composite's response.
type merge struct {
	dst []protoreflect.FieldDescriptor
	src []protoreflect.FieldDescriptor // in the leg's answer; empty: all of it
}

// The kinds of a source.
const (
	fromRequest = iota
	fromLeg
	fromItem
	fromPrincipalID
	fromClaim
	fromValue
)

// source is where a value comes from.
type source struct {
	kind  int
	leg   int // fromLeg
	path  []protoreflect.FieldDescriptor
	claim string // fromClaim
	value string // fromValue
	// fd is the field the value is, nil for the whole message (desc) or a
	// value that is not a field (a claim, a constant, a scalar item).
	fd   protoreflect.FieldDescriptor
	desc protoreflect.MessageDescriptor
	// item is the fan-out's item when the value is one item of a list: the
	// list's field, read as singular.
	item bool
}

// Set is the compiled composites of one configuration, by method.
type Set struct {
	list     []*Composite
	byMethod map[string]*Composite
	pending  []string
}

// Pending returns the names of the composites left out because a method
// they name has no descriptors yet (its cluster's server reflection was
// not read); a rebuild once it is read compiles them.
func (s *Set) Pending() []string {
	if s == nil {
		return nil
	}
	return s.pending
}

// Lookup returns the composite serving fullMethod ("/pkg.Service/Method"),
// or nil. A nil Set has none.
func (s *Set) Lookup(fullMethod string) *Composite {
	if s == nil {
		return nil
	}
	return s.byMethod["/"+strings.TrimPrefix(fullMethod, "/")]
}

// List returns the composites in configuration order.
func (s *Set) List() []*Composite {
	if s == nil {
		return nil
	}
	return s.list
}

// Methods returns the methods the composites of cfg serve,
// "/pkg.Service/Method", before anything is compiled (the schema must
// count them as routed).
func Methods(cfg *configv1.Config) map[string]bool {
	out := map[string]bool{}
	for _, c := range cfg.GetComposites() {
		out[methodOf(c)] = true
	}
	return out
}

// HTTPRules returns the REST bindings of cfg's composites as the schema's
// http rules, and for each the field path of the composite it comes from;
// those of composites without a method only when restOnly is set (the
// schema has their types only once RESTOnlyFile made them).
func HTTPRules(cfg *configv1.Config, restOnly bool) ([]*configv1.HttpRule, []string) {
	var rules []*configv1.HttpRule
	var paths []string
	for i, c := range cfg.GetComposites() {
		if c.GetHttp() == nil || (c.GetMethod() == "" && !restOnly) {
			continue
		}
		rules = append(rules, httpRule(methodOf(c)[1:], c.GetHttp()))
		paths = append(paths, fmt.Sprintf("composites[%d].http", i))
	}
	return rules, paths
}

// httpRule is h as the schema's http rule of method.
func httpRule(method string, h *configv1.CompositeHTTP) *configv1.HttpRule {
	r := &configv1.HttpRule{Method: method, Body: h.GetBody()}
	switch p := h.GetPattern().(type) {
	case *configv1.CompositeHTTP_Get:
		r.Pattern = &configv1.HttpRule_Get{Get: p.Get}
	case *configv1.CompositeHTTP_Post:
		r.Pattern = &configv1.HttpRule_Post{Post: p.Post}
	case *configv1.CompositeHTTP_Put:
		r.Pattern = &configv1.HttpRule_Put{Put: p.Put}
	case *configv1.CompositeHTTP_Patch:
		r.Pattern = &configv1.HttpRule_Patch{Patch: p.Patch}
	case *configv1.CompositeHTTP_Delete:
		r.Pattern = &configv1.HttpRule_Delete{Delete: p.Delete}
	}
	return r
}

// template is the path template of h (only one of its verbs is set).
func template(h *configv1.CompositeHTTP) string {
	return h.GetGet() + h.GetPost() + h.GetPut() + h.GetPatch() + h.GetDelete()
}

// Routes says what the route table routes: whether a method has a route,
// whether a route of that name exists, and whether a method's descriptors
// are still to come (its cluster's server reflection not read yet).
type Routes interface {
	Routed(fullMethod string) bool
	HasRoute(name string) bool
	Pending(fullMethod string) bool
}

// errPending leaves out a composite whose methods' descriptors are still
// to come.
var errPending = errors.New("pending")

// Compile compiles cfg's composites against reg, the schema of cfg (in
// which the composites' methods count as routed). Every error is a
// *config.FieldError at its field path ("composites[0].legs[2].request[1].from"),
// all of them joined.
func Compile(cfg *configv1.Config, reg *schema.Registry, routes Routes) (*Set, error) {
	s := &Set{byMethod: map[string]*Composite{}}
	var errs []error
	names := map[string]bool{}
	for i, cc := range cfg.GetComposites() {
		p := fmt.Sprintf("composites[%d]", i)
		if names[cc.GetName()] {
			errs = append(errs, config.FieldErrorf(p+".name", "duplicate composite name %q", cc.GetName()))
		}
		names[cc.GetName()] = true
		if cc.GetMethod() == "" {
			cc = restOnly(cc)
		}
		c, err := compileOne(cc, p, reg, routes)
		if errors.Is(err, errPending) {
			s.pending = append(s.pending, cc.GetName())
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev := s.byMethod[c.Method]; prev != nil {
			errs = append(errs, config.FieldErrorf(p+".method", "composite %q serves %s already", prev.Name, c.Method[1:]))
			continue
		}
		if routes.Routed(c.Method) {
			errs = append(errs, config.FieldErrorf(p+".method", "%s is routed to a cluster: a composite's method must not be", c.Method[1:]))
			continue
		}
		s.byMethod[c.Method] = c
		s.list = append(s.list, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// unaryMethod returns the unary method full ("/pkg.Service/Method") of
// reg, or an error saying why it is not one.
func unaryMethod(reg *schema.Registry, full string) (protoreflect.MethodDescriptor, error) {
	m := reg.Method(full)
	if m == nil {
		return nil, fmt.Errorf("unknown method %s: no service of the schema has it", full[1:])
	}
	if m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer() {
		return nil, fmt.Errorf("%s streams: only unary methods can be composed", full[1:])
	}
	return m.Desc, nil
}

func compileOne(cc *configv1.Composite, p string, reg *schema.Registry, routes Routes) (*Composite, error) {
	c := &Composite{
		Name:    cc.GetName(),
		Method:  "/" + strings.TrimPrefix(cc.GetMethod(), "/"),
		Route:   cc.GetRoute(),
		Timeout: DefaultTimeout,
	}
	if d := cc.GetTimeout(); d != nil {
		c.Timeout = d.AsDuration()
	}
	md, err := unaryMethod(reg, c.Method)
	if err != nil {
		return nil, &config.FieldError{Path: p + ".method", Err: err}
	}
	for _, lc := range cc.GetLegs() {
		m := "/" + strings.TrimPrefix(lc.GetMethod(), "/")
		if reg.Method(m) == nil && routes.Pending(m) {
			return nil, errPending
		}
	}
	c.in, c.out = md.Input(), md.Output()
	var errs []error
	bad := func(path, format string, args ...any) { errs = append(errs, config.FieldErrorf(path, format, args...)) }
	if c.Route != "" && !routes.HasRoute(c.Route) {
		bad(p+".route", "unknown route %q", c.Route)
	}
	if f := cc.GetErrorsField(); f != "" {
		fd := c.out.Fields().ByName(protoreflect.Name(f))
		switch {
		case fd == nil:
			bad(p+".errors_field", "%s has no field %q", c.out.FullName(), f)
		case !fd.IsMap() || fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Message() == nil ||
			fd.MapValue().Message().FullName() != "google.rpc.Status":
			bad(p+".errors_field", "%s.%s is not a map<string, google.rpc.Status>", c.out.FullName(), f)
		default:
			c.errsField = fd
		}
	}
	byName := map[string]int{}
	for j, lc := range cc.GetLegs() {
		if _, dup := byName[lc.GetName()]; dup {
			bad(fmt.Sprintf("%s.legs[%d].name", p, j), "duplicate leg name %q", lc.GetName())
		}
		byName[lc.GetName()] = j
	}
	// Each leg's method first: a source naming another leg reads its
	// answer's type.
	c.Legs = make([]*Leg, len(cc.GetLegs()))
	for j, lc := range cc.GetLegs() {
		l := &Leg{Name: lc.GetName(), Method: "/" + strings.TrimPrefix(lc.GetMethod(), "/"), Optional: lc.GetOptional(), index: j}
		if d := lc.GetTimeout(); d != nil {
			l.Timeout = d.AsDuration()
		}
		c.Legs[j] = l
		lp := fmt.Sprintf("%s.legs[%d].method", p, j)
		if !routes.Routed(l.Method) {
			bad(lp, "%s has no route: a leg calls a routed method", l.Method[1:])
			continue
		}
		lmd, err := unaryMethod(reg, l.Method)
		if err != nil {
			errs = append(errs, &config.FieldError{Path: lp, Err: err})
			continue
		}
		l.in, l.out = lmd.Input(), lmd.Output()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	claims := map[string]string{} // response field path → the mapping that writes it
	for j, lc := range cc.GetLegs() {
		l := c.Legs[j]
		lp := fmt.Sprintf("%s.legs[%d]", p, j)
		var item *source
		if fo := lc.GetFanOut(); fo != nil {
			src, err := c.parseSource(fo.GetOver(), byName, nil, lp+".fan_out.over")
			if err == nil && (src.fd == nil || !src.fd.IsList()) {
				err = config.FieldErrorf(lp+".fan_out.over", "%q is not a repeated field", fo.GetOver())
			}
			if err != nil {
				errs = append(errs, err)
			} else {
				l.FanOut = fo.GetOver()
				l.fan = &fanOut{over: src, maxItems: DefaultMaxItems, concurrency: DefaultFanConcurrency}
				if n := fo.GetMaxItems(); n > 0 {
					l.fan.maxItems = int(n)
				}
				if n := fo.GetConcurrency(); n > 0 {
					l.fan.concurrency = int(n)
				}
				item = &source{kind: fromItem, fd: src.fd, item: true}
				if src.kind == fromLeg {
					l.deps = append(l.deps, src.leg)
				}
			}
		}
		for k, f := range lc.GetRequest() {
			fp := fmt.Sprintf("%s.request[%d]", lp, k)
			dst, err := fieldPath(l.in, f.GetField())
			if err != nil {
				errs = append(errs, &config.FieldError{Path: fp + ".field", Err: err})
				continue
			}
			var src source
			switch {
			case f.GetFrom() != "" && f.GetValue() != "":
				bad(fp, "from and value: give one")
				continue
			case f.GetFrom() == "":
				src = source{kind: fromValue, value: f.GetValue()}
			default:
				if src, err = c.parseSource(f.GetFrom(), byName, item, fp+".from"); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if src.kind == fromLeg {
				if src.leg == j {
					bad(fp+".from", "leg %q reads its own answer", l.Name)
					continue
				}
				l.deps = append(l.deps, src.leg)
			}
			if err := assignable(dst[len(dst)-1], src); err != nil {
				errs = append(errs, &config.FieldError{Path: fp, Err: err})
				continue
			}
			l.request = append(l.request, setter{dst: dst, src: src})
		}
		for k, f := range lc.GetResponse() {
			fp := fmt.Sprintf("%s.response[%d]", lp, k)
			if f.GetValue() != "" {
				bad(fp+".value", "a response mapping reads the leg's answer: use from")
				continue
			}
			dst, err := fieldPath(c.out, f.GetField())
			if err != nil {
				errs = append(errs, &config.FieldError{Path: fp + ".field", Err: err})
				continue
			}
			if c.errsField != nil && dst[0] == c.errsField {
				bad(fp+".field", "%q is the errors_field", f.GetField())
				continue
			}
			var srcPath []protoreflect.FieldDescriptor
			src := source{kind: fromLeg, leg: j, desc: l.out}
			if f.GetFrom() != "" {
				if srcPath, err = fieldPath(l.out, f.GetFrom()); err != nil {
					errs = append(errs, &config.FieldError{Path: fp + ".from", Err: err})
					continue
				}
				src.fd = srcPath[len(srcPath)-1]
			}
			d := dst[len(dst)-1]
			if l.fan != nil && !d.IsList() {
				bad(fp+".field", "%q is not a repeated field: a fan-out leg's answers are a list", f.GetField())
				continue
			}
			if err := assignable(d, src); err != nil {
				errs = append(errs, &config.FieldError{Path: fp, Err: err})
				continue
			}
			name := f.GetField()
			for other, by := range claims {
				if other == name || strings.HasPrefix(other, name+".") || strings.HasPrefix(name, other+".") {
					bad(fp+".field", "%q is written by %s already: two legs may not write one field", name, by)
				}
			}
			claims[name] = fmt.Sprintf("leg %q (%s)", l.Name, fp)
			l.response = append(l.response, merge{dst: dst, src: srcPath})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, l := range c.Legs {
		slices.Sort(l.deps)
		l.deps = slices.Compact(l.deps)
		for _, d := range l.deps {
			l.After = append(l.After, c.Legs[d].Name)
		}
	}
	if cyc := cycle(c.Legs); cyc != nil {
		names := make([]string, len(cyc))
		for i, l := range cyc {
			names[i] = l.Name
		}
		return nil, config.FieldErrorf(fmt.Sprintf("%s.legs[%d]", p, cyc[0].index), "legs depend on each other in a cycle: %s", strings.Join(names, " → "))
	}
	return c, nil
}

// parseSource compiles a source expression; item is the fan-out's item
// (nil outside a fan-out leg). path is the expression's field path, for
// errors.
func (c *Composite) parseSource(expr string, legs map[string]int, item *source, path string) (source, error) {
	head, rest, _ := strings.Cut(expr, ".")
	switch head {
	case "request":
		if rest == "" {
			return source{kind: fromRequest, desc: c.in}, nil
		}
		fds, err := fieldPath(c.in, rest)
		if err != nil {
			return source{}, &config.FieldError{Path: path, Err: err}
		}
		return source{kind: fromRequest, path: fds, fd: fds[len(fds)-1]}, nil
	case "legs":
		name, sub, _ := strings.Cut(rest, ".")
		j, ok := legs[name]
		if !ok {
			return source{}, config.FieldErrorf(path, "unknown leg %q", name)
		}
		l := c.Legs[j]
		if l.out == nil {
			return source{}, config.FieldErrorf(path, "leg %q has no known method", name)
		}
		if sub == "" {
			return source{kind: fromLeg, leg: j, desc: l.out}, nil
		}
		fds, err := fieldPath(l.out, sub)
		if err != nil {
			return source{}, &config.FieldError{Path: path, Err: err}
		}
		return source{kind: fromLeg, leg: j, path: fds, fd: fds[len(fds)-1]}, nil
	case "principal":
		switch {
		case rest == "id":
			return source{kind: fromPrincipalID}, nil
		case strings.HasPrefix(rest, "claims.") && len(rest) > len("claims."):
			return source{kind: fromClaim, claim: strings.TrimPrefix(rest, "claims.")}, nil
		}
		return source{}, config.FieldErrorf(path, "%q: the principal has id and claims.NAME", expr)
	case "item":
		if item == nil {
			return source{}, config.FieldErrorf(path, "%q: item is the item of a fan-out, and the leg has none", expr)
		}
		if rest == "" {
			return *item, nil
		}
		md := item.fd.Message()
		if md == nil {
			return source{}, config.FieldErrorf(path, "%q: the items of %s are not messages", expr, item.fd.FullName())
		}
		fds, err := fieldPath(md, rest)
		if err != nil {
			return source{}, &config.FieldError{Path: path, Err: err}
		}
		return source{kind: fromItem, path: fds, fd: fds[len(fds)-1]}, nil
	}
	return source{}, config.FieldErrorf(path, "%q: a source starts with request., legs.NAME., principal. or item", expr)
}

// fieldPath resolves a dotted path of field names in md: every field but
// the last is a singular message.
func fieldPath(md protoreflect.MessageDescriptor, path string) ([]protoreflect.FieldDescriptor, error) {
	var out []protoreflect.FieldDescriptor
	cur := md
	parts := strings.Split(path, ".")
	for i, name := range parts {
		if cur == nil {
			return nil, fmt.Errorf("unknown field path %q: %s is not a message", path, strings.Join(parts[:i], "."))
		}
		fd := cur.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = cur.Fields().ByJSONName(name)
		}
		if fd == nil {
			return nil, fmt.Errorf("unknown field path %q: %s has no field %q", path, cur.FullName(), name)
		}
		out = append(out, fd)
		cur = nil
		if i < len(parts)-1 {
			if fd.IsList() || fd.IsMap() || fd.Message() == nil {
				return nil, fmt.Errorf("unknown field path %q: %s is not a singular message field", path, fd.Name())
			}
			cur = fd.Message()
		}
	}
	return out, nil
}

// kindOf describes what a field holds, for errors.
func kindOf(fd protoreflect.FieldDescriptor) string {
	s := fd.Kind().String()
	if fd.Message() != nil {
		s = string(fd.Message().FullName())
	} else if fd.Enum() != nil {
		s = string(fd.Enum().FullName())
	}
	if fd.IsList() {
		return "repeated " + s
	}
	return s
}

// assignable checks that src's value can set dst: messages of one type,
// a list from a list or from one element, a scalar from any scalar (by
// its text).
func assignable(dst protoreflect.FieldDescriptor, src source) error {
	if dst.IsMap() {
		return fmt.Errorf("%s is a map: maps are not mapped", dst.Name())
	}
	var sd protoreflect.MessageDescriptor // src is a message of this type
	srcList := false
	switch {
	case src.fd != nil && src.fd.IsMap():
		return fmt.Errorf("%s is a map: maps are not mapped", src.fd.Name())
	case src.fd != nil:
		sd = src.fd.Message()
		srcList = src.fd.IsList() && !src.item
	case src.desc != nil:
		sd = src.desc
	}
	dd := dst.Message()
	if srcList && !dst.IsList() {
		return fmt.Errorf("cannot set %s (%s) from a repeated field", dst.Name(), kindOf(dst))
	}
	switch {
	case dd == nil && sd == nil:
		return nil
	case dd != nil && sd != nil && dd.FullName() == sd.FullName():
		return nil
	case dd != nil && sd != nil:
		return fmt.Errorf("cannot set %s (%s) from a %s", dst.Name(), kindOf(dst), sd.FullName())
	case dd != nil:
		return fmt.Errorf("cannot set %s (%s) from a scalar", dst.Name(), kindOf(dst))
	default:
		return fmt.Errorf("cannot set %s (%s) from a %s", dst.Name(), kindOf(dst), sd.FullName())
	}
}

// cycle returns the legs of a dependency cycle, or nil when there is none.
func cycle(legs []*Leg) []*Leg {
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(legs))
	var stack []*Leg
	var found []*Leg
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = open
		stack = append(stack, legs[i])
		for _, d := range legs[i].deps {
			switch state[d] {
			case open:
				at := slices.Index(stack, legs[d])
				found = append(slices.Clone(stack[at:]), legs[d])
				return true
			case unseen:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return false
	}
	for i := range legs {
		if state[i] == unseen && visit(i) {
			return found
		}
	}
	return nil
}
