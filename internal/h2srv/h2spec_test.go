package h2srv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2/hpack"
)

var (
	h2specOnce sync.Once
	h2specPath string
	h2specErr  error
)

// h2specBinary builds h2spec, pinned in tools/go.mod, once per run.
func h2specBinary(t *testing.T) string {
	t.Helper()
	h2specOnce.Do(func() {
		dir, err := os.MkdirTemp("", "h2srv-h2spec")
		if err != nil {
			h2specErr = err
			return
		}
		h2specPath = filepath.Join(dir, "h2spec")
		out, err := exec.Command("go", "build", "-C", "../../tools", "-o", h2specPath, "github.com/summerwind/h2spec/cmd/h2spec").CombinedOutput()
		if err != nil {
			h2specErr = fmt.Errorf("go build h2spec: %w\n%s", err, out)
		}
	})
	if h2specErr != nil {
		t.Fatal(h2specErr)
	}
	return h2specPath
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// h2specBody is the test handler's answer: h2spec's flow-control cases
// need a body of a few bytes at least.
const h2specBody = "h2srv answers h2spec with this body.\n"

// h2specHandler reads the request and answers :status 200 with a small
// body, as h2spec expects of the server under test.
var h2specHandler = HandlerFunc(func(st *Stream) {
	if _, err := io.Copy(io.Discard, st); err != nil {
		return
	}
	st.Cork()
	defer st.Uncork()
	if err := st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "text/plain"}}, false); err != nil {
		return
	}
	if _, err := io.WriteString(st, h2specBody); err != nil {
		return
	}
	_ = st.WriteTrailers(nil)
})

// h2spec passes at least 140 of its 145 cases against the engine, h2c
// and TLS with ALPN h2.
func TestH2spec(t *testing.T) {
	bin := h2specBinary(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			ts := startServer(t, &Server{Handler: h2specHandler}, useTLS)
			host, port, _ := strings.Cut(ts.Addr, ":")
			args := []string{"-h", host, "-p", port, "-o", "2", "-j", filepath.Join(t.TempDir(), "report.xml")}
			if useTLS {
				args = append(args, "-t", "-k")
			}
			out, _ := exec.Command(bin, args...).CombinedOutput()
			m := h2specSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("h2spec printed no summary:\n%s", out)
			}
			total, _ := strconv.Atoi(string(m[1]))
			passed, _ := strconv.Atoi(string(m[2]))
			var fails []string
			for line := range strings.SplitSeq(string(out), "\n") {
				if strings.Contains(line, "×") {
					fails = append(fails, strings.TrimSpace(line))
				}
			}
			t.Logf("h2spec: %d of %d passed; failed:\n%s", passed, total, strings.Join(fails, "\n"))
			if os.Getenv("H2SPEC_VERBOSE") != "" {
				t.Logf("%s", out)
			}
			if passed < 140 {
				t.Errorf("h2spec: %d of %d passed, want at least 140\n%s", passed, total, out)
			}
		})
	}
}
