package openapi

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/edgegate/edgegate/schema"
)

// part is one piece of a google.api.http path template: literal text, or
// a variable.
type part struct {
	lit string
	// field is the variable's request field path ("book.name"), pattern
	// its segments ("shelves/*/books/*"; "*" when the template has none).
	field, pattern string
}

// parseTemplate splits a path template into literal text and variables.
func parseTemplate(tmpl string) ([]part, error) {
	if _, err := schema.PathShape(tmpl); err != nil {
		return nil, err
	}
	var parts []part
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			parts = append(parts, part{lit: tmpl})
			break
		}
		if i > 0 {
			parts = append(parts, part{lit: tmpl[:i]})
		}
		end := strings.IndexByte(tmpl[i:], '}') + i
		field, pattern, ok := strings.Cut(tmpl[i+1:end], "=")
		if !ok {
			pattern = "*"
		}
		parts = append(parts, part{field: field, pattern: pattern})
		tmpl = tmpl[end+1:]
	}
	return parts, nil
}

// pathParam is one parameter of an OpenAPI path.
type pathParam struct {
	name    string // in the OpenAPI path
	field   string // the request field it sets ("book.name")
	pattern string // the variable's pattern
	// wildcard is, in an expanded path, the parameter's place (from 1)
	// among the wildcards of its variable, wildcards their number; 0
	// in a collapsed path.
	wildcard, wildcards int
}

// route is one binding's place in the document.
type route struct {
	b     *schema.Binding
	parts []part
	// expanded: each wildcard of a variable is a parameter of its own and
	// the pattern's literal segments are in the path
	// (/v1/shelves/{name}/books/{name_2}); otherwise a variable is one
	// parameter (/v1/{name}).
	expanded bool
	path     string // the OpenAPI path
	key      string // path with every parameter as {}: OpenAPI tells no two of one key apart
	params   []pathParam
}

// layout computes r's path, key and parameters.
func (r *route) layout() {
	var path, key strings.Builder
	r.params = nil
	for _, p := range r.parts {
		if p.field == "" {
			path.WriteString(p.lit)
			key.WriteString(p.lit)
			continue
		}
		if !r.expanded {
			r.params = append(r.params, pathParam{name: p.field, field: p.field, pattern: p.pattern})
			path.WriteString("{" + p.field + "}")
			key.WriteString("{}")
			continue
		}
		segs := strings.Split(p.pattern, "/")
		n := 0
		for _, s := range segs {
			if s == "*" || s == "**" {
				n++
			}
		}
		k := 0
		for i, s := range segs {
			if i > 0 {
				path.WriteByte('/')
				key.WriteByte('/')
			}
			if s != "*" && s != "**" {
				path.WriteString(s)
				key.WriteString(s)
				continue
			}
			k++
			name := p.field
			if k > 1 {
				name = fmt.Sprintf("%s_%d", p.field, k)
			}
			r.params = append(r.params, pathParam{name: name, field: p.field, pattern: p.pattern, wildcard: k, wildcards: n})
			path.WriteString("{" + name + "}")
			key.WriteString("{}")
		}
	}
	r.path, r.key = path.String(), key.String()
}

// rename gives r's parameters names, in order (those of another route of
// the same key: OpenAPI wants one name at one place of a path).
func (r *route) rename(names []string) {
	for i := range r.params {
		if i < len(names) {
			r.params[i].name = names[i]
		}
	}
	var path strings.Builder
	i := 0
	for _, p := range r.parts {
		if p.field == "" {
			path.WriteString(p.lit)
			continue
		}
		if !r.expanded {
			path.WriteString("{" + r.params[i].name + "}")
			i++
			continue
		}
		for j, s := range strings.Split(p.pattern, "/") {
			if j > 0 {
				path.WriteByte('/')
			}
			if s == "*" || s == "**" {
				path.WriteString("{" + r.params[i].name + "}")
				i++
			} else {
				path.WriteString(s)
			}
		}
	}
	r.path = path.String()
}

// drop is a route left out of the document, for the route whose place it
// would take.
type drop struct{ r, by *route }

// arrange lays out the routes of the bindings so that no two share a key
// and a verb: bindings whose collapsed paths collide are expanded, and of
// expanded bindings that still collide (their patterns differ only in * and
// **) the first is kept and the others are dropped. Routes of one key then
// take the parameter names of the first of them.
func arrange(routes []*route) (kept []*route, dropped []drop) {
	for _, r := range routes {
		r.layout()
	}
	kept = routes
	for {
		seen := map[string]*route{}
		var conflict [2]*route
		for _, r := range kept {
			k := r.b.Verb + " " + r.key
			if prev := seen[k]; prev != nil {
				conflict = [2]*route{prev, r}
				break
			}
			seen[k] = r
		}
		if conflict[0] == nil {
			break
		}
		if conflict[0].expanded && conflict[1].expanded {
			dropped = append(dropped, drop{conflict[1], conflict[0]})
			kept = without(kept, conflict[1])
			continue
		}
		// Every route of the colliding key is expanded, so that the
		// routes of that key stay in one form.
		key := conflict[0].key
		for _, r := range kept {
			if r.key == key && !r.expanded {
				r.expanded = true
				r.layout()
			}
		}
	}
	first := map[string][]string{}
	for _, r := range kept {
		names, ok := first[r.key]
		if !ok {
			for _, p := range r.params {
				names = append(names, p.name)
			}
			first[r.key] = names
			continue
		}
		r.rename(names)
	}
	return kept, dropped
}

func without(rs []*route, r *route) []*route {
	out := make([]*route, 0, len(rs)-1)
	for _, x := range rs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// patternRegexp is the ECMA-262 regular expression of the values of a
// variable of pattern p: * is one segment, ** any number.
func patternRegexp(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		switch s {
		case "*":
			segs[i] = "[^/]+"
		case "**":
			segs[i] = ".*"
		default:
			segs[i] = regexp.QuoteMeta(s)
		}
	}
	return "^" + strings.Join(segs, "/") + "$"
}
