package static

import (
	"io/fs"
	"strings"
	"testing"
)

// FuzzName: whatever the request path, the name a mount opens is a valid
// fs path under its root, with no ".." and no hidden segment.
func FuzzName(f *testing.F) {
	for _, s := range []string{"/s/a.txt", "/s/../x", "/s/%2e%2e/x", "/s/a/./b", "/s/.git/config", "/s/a\x00b", "/s//x", "/s/"} {
		f.Add(s)
	}
	m := New(Options{Prefix: "/s/"})
	f.Fuzz(func(t *testing.T, p string) {
		name, ok, _ := m.name(p)
		if !ok {
			return
		}
		if !fs.ValidPath(name) {
			t.Fatalf("%q: name %q is not a valid path", p, name)
		}
		for seg := range strings.SplitSeq(name, "/") {
			if seg == ".." || name != "." && strings.HasPrefix(seg, ".") {
				t.Fatalf("%q: name %q has segment %q", p, name, seg)
			}
		}
	})
}
