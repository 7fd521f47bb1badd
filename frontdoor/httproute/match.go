package httproute

import (
	"net"
	"net/http"
	"strings"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// matcher is a compiled HTTPRouteMatch.
type matcher struct {
	hosts   []string // lower case; "*.x" for x's subdomains
	prefix  string   // "" for none; without a final "/"
	tmpl    []segment
	methods map[string]bool
	headers map[string]string // canonical name → value; "*": present
}

// segment is one segment of a path template: a literal, a variable
// ("{id}") or the rest of the path ("{rest...}" or "**", last only).
type segment struct {
	lit  string
	vari bool
	rest bool
}

func newMatcher(m *configv1.HTTPRouteMatch, path string) (*matcher, error) {
	out := &matcher{}
	if m.GetPathPrefix() == "" && m.GetPathTemplate() == "" {
		return nil, config.FieldErrorf(path, "set path_prefix or path_template")
	}
	if m.GetPathPrefix() != "" && m.GetPathTemplate() != "" {
		return nil, config.FieldErrorf(path, "set one of path_prefix and path_template")
	}
	for _, h := range m.GetHosts() {
		out.hosts = append(out.hosts, strings.ToLower(h))
	}
	out.prefix = strings.TrimSuffix(m.GetPathPrefix(), "/")
	if m.GetPathPrefix() == "/" {
		out.prefix = "/"
	}
	if t := m.GetPathTemplate(); t != "" {
		segs := strings.Split(strings.TrimPrefix(t, "/"), "/")
		for i, s := range segs {
			switch {
			case s == "**" || strings.HasPrefix(s, "{") && strings.HasSuffix(s, "...}"):
				if i != len(segs)-1 {
					return nil, config.FieldErrorf(path+".path_template", "%q may only end the template", s)
				}
				out.tmpl = append(out.tmpl, segment{rest: true})
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
				out.tmpl = append(out.tmpl, segment{vari: true})
			case strings.ContainsAny(s, "{}*"):
				return nil, config.FieldErrorf(path+".path_template", "segment %q is neither a literal nor {name}", s)
			default:
				out.tmpl = append(out.tmpl, segment{lit: s})
			}
		}
	}
	if len(m.GetMethods()) > 0 {
		out.methods = map[string]bool{}
		for _, x := range m.GetMethods() {
			out.methods[x] = true
		}
	}
	if len(m.GetHeaders()) > 0 {
		out.headers = map[string]string{}
		for k, v := range m.GetHeaders() {
			out.headers[http.CanonicalHeaderKey(k)] = v
		}
	}
	return out, nil
}

// matches reports whether r is for the route.
func (m *matcher) matches(r *http.Request) bool {
	if m.methods != nil && !m.methods[r.Method] {
		return false
	}
	if len(m.hosts) > 0 && !m.hostMatches(r.Host) {
		return false
	}
	for k, want := range m.headers {
		vs := r.Header.Values(k)
		if len(vs) == 0 || want != "*" && vs[0] != want {
			return false
		}
	}
	p := r.URL.Path
	if m.prefix != "" {
		return m.prefix == "/" || p == m.prefix || strings.HasPrefix(p, m.prefix+"/")
	}
	return m.templateMatches(p)
}

func (m *matcher) hostMatches(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range m.hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1 {
			return true
		}
	}
	return false
}

func (m *matcher) templateMatches(p string) bool {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, t := range m.tmpl {
		if t.rest {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if t.vari && segs[i] == "" || !t.vari && segs[i] != t.lit {
			return false
		}
	}
	return len(segs) == len(m.tmpl)
}
