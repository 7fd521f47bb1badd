// Package static serves files at a path prefix (a mount), from a
// directory or from files embedded in the binary: index.html for a
// directory, an optional single-page-application fallback, MIME types by
// extension, ETag and Last-Modified with conditional requests, Range
// requests (http.ServeContent), a Cache-Control per mount, and the
// precompressed siblings of a file (.br, .zst, .gz) when the client
// accepts them.
//
// Nothing outside the mount's root is reachable: a path with a ".."
// segment, a NUL byte or a backslash is refused before the file system
// is asked, a directory is opened with os.OpenRoot (symbolic links that
// point outside the root are not followed), and a file or directory whose
// name starts with "." is hidden (404).
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/edgegate/edgegate/frontdoor"
	"github.com/edgegate/edgegate/frontdoor/compress"
)

// welcome is the gateway's own page, the default config's mount.
//
//go:embed welcome
var welcome embed.FS

// Welcome is the file set "welcome": the gateway's own page.
func Welcome() fs.FS {
	sub, _ := fs.Sub(welcome, "welcome")
	return sub
}

// DefaultCacheControl is a mount's Cache-Control unless it sets one:
// caches keep the file but revalidate it (with its ETag) on every use.
const DefaultCacheControl = "no-cache"

// Options are a mount's.
type Options struct {
	// Prefix is the mount's path prefix ("/site/"), starting and ending
	// with "/".
	Prefix string
	// FS is the files served; Close releases it when it is a directory.
	FS fs.FS
	// SPAFallback answers a GET of a path that is no file with the root's
	// index.html.
	SPAFallback bool
	// CacheControl of every answer; DefaultCacheControl when empty.
	CacheControl string
}

// Mount serves the files of one mount. It is safe for concurrent use.
type Mount struct {
	o     Options
	root  *os.Root // nil for an embedded file set
	etags sync.Map // name → ETag, of files without a modification time
}

// Dir returns the mount of the directory dir; its Close releases the
// directory.
func Dir(dir string, o Options) (*Mount, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	o.FS = root.FS()
	m := New(o)
	m.root = root
	return m, nil
}

// New returns the mount of o.FS.
func New(o Options) *Mount {
	if o.CacheControl == "" {
		o.CacheControl = DefaultCacheControl
	}
	return &Mount{o: o}
}

// Close releases the mount's directory.
func (m *Mount) Close() error {
	if m.root != nil {
		return m.root.Close()
	}
	return nil
}

// Prefix is the mount's path prefix.
func (m *Mount) Prefix() string { return m.o.Prefix }

// Matches reports whether the path p is the mount's: under its prefix, or
// the prefix without its final slash.
func (m *Mount) Matches(p string) bool {
	return strings.HasPrefix(p, m.o.Prefix) || p == strings.TrimSuffix(m.o.Prefix, "/")
}

// precompressed are the siblings looked for, in order of preference, by
// their encoding.
var precompressed = []struct{ enc, ext string }{
	{compress.Brotli, ".br"}, {compress.Zstd, ".zst"}, {compress.Gzip, ".gz"},
}

// ServeHTTP serves the file of r's path under the mount (GET and HEAD;
// 405 else): 404 for a path that is no file, a hidden one, or one that
// would leave the root; 400 for a path with a NUL byte or a backslash.
// Error answers are google.rpc.Status JSON.
func (m *Mount) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		frontdoor.Error(w, codes.Unimplemented, http.StatusMethodNotAllowed, "edgegate: method "+r.Method+" not allowed for static content")
		return
	}
	if r.URL.Path == strings.TrimSuffix(m.o.Prefix, "/") {
		http.Redirect(w, r, m.o.Prefix, http.StatusMovedPermanently)
		return
	}
	name, ok, why := m.name(r.URL.Path)
	if !ok {
		if why != "" {
			frontdoor.Error(w, codes.InvalidArgument, http.StatusBadRequest, "edgegate: "+why)
			return
		}
		m.notFound(w, r)
		return
	}
	f, st, err := m.open(name)
	if err == nil && st.IsDir() {
		_ = f.Close()
		name = path.Join(name, "index.html")
		f, st, err = m.open(name)
	}
	if err != nil && m.o.SPAFallback && r.Method == http.MethodGet || err != nil && m.o.SPAFallback && r.Method == http.MethodHead {
		name = "index.html"
		f, st, err = m.open(name)
	}
	if err != nil || st.IsDir() {
		if f != nil {
			_ = f.Close()
		}
		m.notFound(w, r)
		return
	}
	defer func() { _ = f.Close() }()
	m.serveFile(w, r, name, f, st)
}

func (m *Mount) notFound(w http.ResponseWriter, r *http.Request) {
	frontdoor.Error(w, codes.NotFound, http.StatusNotFound, "edgegate: no file "+strconv.Quote(r.URL.Path))
}

// name is the file name under the root of the request path p, or !ok:
// with why for a path refused as malformed (a NUL byte, a backslash), or
// without for one that names no servable file (a ".." or hidden segment).
func (m *Mount) name(p string) (name string, ok bool, why string) {
	rest := strings.TrimPrefix(p, m.o.Prefix)
	if strings.ContainsAny(rest, "\x00\\") {
		return "", false, "the path has a NUL byte or a backslash"
	}
	if rest == "" {
		return ".", true, ""
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(rest, "/"), "/") {
		if seg == "" || seg == ".." || strings.HasPrefix(seg, ".") {
			return "", false, ""
		}
	}
	name = strings.TrimSuffix(rest, "/")
	if !fs.ValidPath(name) {
		return "", false, ""
	}
	return name, true, ""
}

func (m *Mount) open(name string) (fs.File, fs.FileInfo, error) {
	f, err := m.o.FS.Open(name)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// serveFile answers with the file name (opened as f), or with its
// precompressed sibling when the client accepts that encoding.
func (m *Mount) serveFile(w http.ResponseWriter, r *http.Request, name string, f fs.File, st fs.FileInfo) {
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", m.o.CacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	accept := r.Header.Values("Accept-Encoding")
	for _, p := range precompressed {
		if compress.Negotiate(accept, []string{p.enc}) == "" {
			continue
		}
		sf, sst, err := m.open(name + p.ext)
		if err != nil || sst.IsDir() {
			if sf != nil {
				_ = sf.Close()
			}
			continue
		}
		defer func() { _ = sf.Close() }()
		h.Set("Content-Encoding", p.enc)
		m.serveContent(w, r, name+p.ext, sf, sst)
		return
	}
	m.serveContent(w, r, name, f, st)
}

// serveContent serves f with its ETag and Last-Modified: conditional
// requests (If-None-Match, If-Modified-Since, If-Match,
// If-Unmodified-Since, If-Range) and Range, by http.ServeContent.
func (m *Mount) serveContent(w http.ResponseWriter, r *http.Request, name string, f fs.File, st fs.FileInfo) {
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		frontdoor.Error(w, codes.Internal, http.StatusInternalServerError, "edgegate: the file cannot be read")
		return
	}
	mod := st.ModTime()
	if mod.IsZero() {
		tag, err := m.contentTag(name, rs)
		if err != nil {
			frontdoor.Error(w, codes.Internal, http.StatusInternalServerError, "edgegate: the file cannot be read")
			return
		}
		w.Header().Set("ETag", tag)
	} else {
		w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), mod.UnixNano()))
	}
	http.ServeContent(w, r, "", mod.Truncate(time.Second), rs)
}

// contentTag is the ETag of an embedded file (no modification time): a
// hash of its bytes, computed once.
func (m *Mount) contentTag(name string, rs io.ReadSeeker) (string, error) {
	if v, ok := m.etags.Load(name); ok {
		return v.(string), nil
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, rs); err != nil {
		return "", err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tag := `"` + hex.EncodeToString(sum.Sum(nil)[:12]) + `"`
	m.etags.Store(name, tag)
	return tag, nil
}

// ErrNoFiles is the error of a mount with neither a directory nor an
// embedded file set, or with both.
var ErrNoFiles = errors.New("set one of dir and embedded")
