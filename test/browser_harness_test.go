package test

// The browser harness: headless Chromium (the system's) driven by
// playwright-core through tools/browser/driver.mjs, pages bundled with the
// pinned esbuild, and an origin server for a test page on another origin
// than the gateway's. `make test-deps` installs Chromium and the npm
// packages (tools/browser/package-lock.json).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// browserDir is the npm package of the browser tools, relative to test/.
const browserDir = "../tools/browser"

// needBrowser fails t when the browser tools are not installed.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("the browser tests need tools/browser/node_modules: run make test-deps (%v)", err)
	}
	if _, err := exec.LookPath(chromiumPath()); err != nil {
		t.Fatalf("the browser tests need Chromium (%s): run make test-deps (%v)", chromiumPath(), err)
	}
}

func chromiumPath() string {
	if p := os.Getenv("EDGEGATE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

var (
	bundleMu sync.Mutex
	bundles  = map[string][]byte{}
)

// bundle is entry (a path under tools/browser) bundled by esbuild into
// one ES module, built once per run.
func bundle(t *testing.T, entry string) []byte {
	t.Helper()
	bundleMu.Lock()
	defer bundleMu.Unlock()
	if b, ok := bundles[entry]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), "bundle.js")
	cmd := exec.Command(filepath.Join("node_modules", ".bin", "esbuild"), entry, "--bundle", "--format=esm", "--target=es2022", "--log-level=warning", "--outfile="+out)
	cmd.Dir = browserDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild %s: %v\n%s", entry, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bundles[entry] = b
	return b
}

// descriptorSet is the files of descs and every file they import, in
// dependency order, as a binary google.protobuf.FileDescriptorSet.
func descriptorSet(t *testing.T, descs ...protoreflect.FileDescriptor) []byte {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, d := range descs {
		add(d)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testPageHTML loads the bundle at /page.js.
const testPageHTML = `<!doctype html><html><head><meta charset="utf-8"><title>edgegate browser test</title></head>
<body><p>edgegate browser test page</p><script type="module" src="/page.js"></script></body></html>`

// Origin is an HTTP server on loopback serving the test page (tools/browser/
// testpage), the descriptors it calls with, and extra handlers; its origin
// (scheme, host and port) differs from the gateway's.
type Origin struct {
	*httptest.Server
	URL string
}

// StartOrigin serves the test page with the descriptor set descs, and
// extra (path → handler) besides.
func StartOrigin(t *testing.T, descs []byte, extra map[string]http.HandlerFunc) *Origin {
	t.Helper()
	js := bundle(t, "testpage/page.js")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, testPageHTML)
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(js)
	})
	mux.HandleFunc("GET /descriptors.binpb", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(descs)
	})
	for p, h := range extra {
		mux.HandleFunc(p, h)
	}
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return &Origin{Server: s, URL: s.URL}
}

// Browser is one headless Chromium with one page, driven by driver.mjs.
// Its methods are for the test's goroutine.
type Browser struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    chan driverAnswer
	stderr *LogBuffer
	next   int
}

type driverAnswer struct {
	ID     int             `json:"id"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// StartBrowser starts Chromium; it is closed when the test ends, after a
// screenshot of the page into .cache/artifacts/<test>.png when the test
// failed.
func StartBrowser(t *testing.T) *Browser {
	t.Helper()
	needBrowser(t)
	cmd := exec.Command("node", "driver.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "EDGEGATE_CHROMIUM="+chromiumPath())
	b := &Browser{cmd: cmd, out: make(chan driverAnswer, 16), stderr: &LogBuffer{}}
	cmd.Stderr = b.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node driver.mjs: %v", err)
	}
	b.in = in
	go func() {
		defer close(b.out)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var a driverAnswer
			if json.Unmarshal(sc.Bytes(), &a) == nil {
				b.out <- a
			}
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			dir, _ := filepath.Abs(filepath.Join("..", ".cache", "artifacts"))
			if os.MkdirAll(dir, 0o750) == nil {
				path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
				if _, err := b.do(map[string]any{"op": "screenshot", "path": path, "full": true}); err == nil {
					t.Logf("screenshot of the page: %s", path)
				}
			}
			t.Logf("browser log:\n%s", b.stderr.String())
		}
		_ = b.in.Close()
		// The driver exits when its input ends; it is killed if it does not.
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(Patience):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return b
}

// do sends one command and waits for its answer.
func (b *Browser) do(cmd map[string]any) (json.RawMessage, error) {
	b.next++
	cmd["id"] = b.next
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	deadline := time.NewTimer(3 * Patience)
	defer deadline.Stop()
	for {
		select {
		case a, ok := <-b.out:
			if !ok {
				return nil, errors.New("driver: exited")
			}
			if a.ID != b.next {
				continue
			}
			if !a.OK {
				return nil, fmt.Errorf("%s: %s", cmd["op"], a.Error)
			}
			return a.Result, nil
		case <-deadline.C:
			return nil, fmt.Errorf("driver: no answer to %s within %v", line, 3*Patience)
		}
	}
}

// Do runs one driver command (see driver.mjs) and decodes its result into
// out when out is not nil; it fails the test on an error.
func (b *Browser) Do(t *testing.T, op string, args map[string]any, out any) {
	t.Helper()
	cmd := map[string]any{"op": op}
	for k, v := range args {
		cmd[k] = v
	}
	res, err := b.do(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			t.Fatalf("%s: result %s: %v", op, res, err)
		}
	}
}

// Goto opens url and waits for its page to be ready (window.edgegateReady).
func (b *Browser) Goto(t *testing.T, url string) {
	t.Helper()
	b.Do(t, "goto", map[string]any{"url": url}, nil)
}

// Call runs window.edgegate[fn](args) in the page and decodes its result
// into out.
func (b *Browser) Call(t *testing.T, fn string, args map[string]any, out any) {
	t.Helper()
	b.Do(t, "call", map[string]any{"fn": fn, "args": args}, out)
}
