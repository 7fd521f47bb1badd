package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// doc is a parsed YAML document, kept to find where a field path stands.
type doc struct{ root *yaml.Node }

// posError is a structural error at a place in the file.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return e.msg }

// parseDoc parses data as exactly one YAML document whose mappings have no
// repeated key (protoyaml would silently ignore later documents and merge
// repeated keys).
func parseDoc(data []byte) (doc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil && !errors.Is(err, io.EOF) {
		return doc{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return doc{}, &posError{line: extra.Line, col: extra.Column, msg: "a second YAML document: the file must hold one"}
	}
	d := doc{root: &n}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		d.root = n.Content[0]
	}
	if err := noRepeatedKeys(d.root); err != nil {
		return doc{}, err
	}
	return d, nil
}

func noRepeatedKeys(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				return &posError{line: k.Line, col: k.Column, msg: fmt.Sprintf("key %q repeated", k.Value)}
			}
			seen[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if err := noRepeatedKeys(c); err != nil {
			return err
		}
	}
	return nil
}

// position returns the line and column of the YAML node at path (for
// example "routes[3].match.service"), or of the nearest ancestor present in
// the file; 0, 0 when nothing of it is.
func (d doc) position(path string) (line, col int) {
	n := d.root
	if n == nil {
		return 0, 0
	}
	line, col = n.Line, n.Column
	for _, seg := range splitPath(path) {
		next := child(n, seg)
		if next == nil {
			break
		}
		n = next
		line, col = n.Line, n.Column
	}
	return line, col
}

// node returns the YAML node at path (keys in proto or lowerCamel form), or
// nil when the file does not have it.
func (d doc) node(path string) *yaml.Node {
	n := d.root
	for _, seg := range splitPath(path) {
		if n == nil {
			return nil
		}
		n = child(n, seg)
	}
	return n
}

// child returns the node of the key or index seg below n, or nil. For a
// key, it returns the value node; keys are matched by proto name or its
// lowerCamel JSON form.
func child(n *yaml.Node, seg string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k == seg || k == jsonName(seg) {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

// splitPath turns "routes[3].match.service" into routes, 3, match, service.
func splitPath(path string) []string {
	var out []string
	for part := range strings.SplitSeq(path, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part, ']')
			if j < i {
				break
			}
			out = append(out, part[i+1:j])
			part = part[j+1:]
		}
	}
	return out
}

func jsonName(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}

// pathAt returns the field path of the node at line:col ("routes[0].timeout"),
// or "" when no node starts there. A key's position gives its field's path.
func (d doc) pathAt(line, col int) string {
	var walk func(n *yaml.Node, path string) (string, bool)
	walk = func(n *yaml.Node, path string) (string, bool) {
		if n.Line == line && n.Column == col && n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			return path, true
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line && k.Column == col {
					return p, true
				}
				if r, ok := walk(v, p); ok {
					return r, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if r, ok := walk(c, fmt.Sprintf("%s[%d]", path, i)); ok {
					return r, true
				}
			}
		}
		if n.Line == line && n.Column == col {
			return path, true
		}
		return "", false
	}
	if d.root == nil {
		return ""
	}
	p, _ := walk(d.root, "")
	return p
}
