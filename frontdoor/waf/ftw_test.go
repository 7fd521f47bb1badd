package waf_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/frontdoor/waf"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/internal/callinfo"
)

// The go-ftw test format (the CRS's regression tests): a file of tests,
// each a list of stages, each one request and what its answer and the
// WAF's log must show.
type ftwFile struct {
	RuleID int       `yaml:"rule_id"`
	Tests  []ftwTest `yaml:"tests"`
}

type ftwTest struct {
	TestID int        `yaml:"test_id"`
	Desc   string     `yaml:"desc"`
	Stages []ftwStage `yaml:"stages"`
}

type ftwStage struct {
	Input  ftwInput  `yaml:"input"`
	Output ftwOutput `yaml:"output"`
}

type ftwInput struct {
	Method              *string           `yaml:"method"`
	URI                 *string           `yaml:"uri"`
	Version             *string           `yaml:"version"`
	Headers             map[string]string `yaml:"headers"`
	Data                *string           `yaml:"data"`
	EncodedRequest      string            `yaml:"encoded_request"`
	AutocompleteHeaders *bool             `yaml:"autocomplete_headers"`
}

type ftwOutput struct {
	Status           ftwStatus `yaml:"status"`
	ResponseContains string    `yaml:"response_contains"`
	ExpectError      bool      `yaml:"expect_error"`
	Log              struct {
		ExpectIDs    []int  `yaml:"expect_ids"`
		NoExpectIDs  []int  `yaml:"no_expect_ids"`
		MatchRegex   string `yaml:"match_regex"`
		NoMatchRegex string `yaml:"no_match_regex"`
	} `yaml:"log"`
}

// ftwStatus is an expected status: one code, or any of a list.
type ftwStatus []int

func (s *ftwStatus) UnmarshalYAML(n *yaml.Node) error {
	var one int
	if err := n.Decode(&one); err == nil {
		*s = ftwStatus{one}
		return nil
	}
	var many []int
	if err := n.Decode(&many); err != nil {
		return err
	}
	*s = many
	return nil
}

// raw is the request of a stage as bytes on the wire, as go-ftw sends it:
// the encoded request as it is, else the request line, the headers (with
// Content-Length and Connection: close added unless autocomplete_headers
// is false) and the data.
func (in ftwInput) raw() []byte {
	if in.EncodedRequest != "" {
		b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(in.EncodedRequest, "\n", ""))
		if err == nil {
			return b
		}
	}
	method, uri, version := "GET", "/", "HTTP/1.1"
	if in.Method != nil {
		method = *in.Method
	}
	if in.URI != nil {
		uri = *in.URI
	}
	if in.Version != nil {
		version = *in.Version
	}
	var data string
	if in.Data != nil {
		data = expand(*in.Data)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", method, uri, version)
	keys := make([]string, 0, len(in.Headers))
	has := map[string]bool{}
	for k := range in.Headers {
		keys = append(keys, k)
		has[strings.ToLower(k)] = true
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, in.Headers[k])
	}
	if in.AutocompleteHeaders == nil || *in.AutocompleteHeaders {
		if data != "" && !has["content-length"] && !has["transfer-encoding"] {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(data))
		}
		if !has["connection"] {
			b.WriteString("Connection: close\r\n")
		}
	}
	b.WriteString("\r\n")
	b.WriteString(data)
	return b.Bytes()
}

// repeatTemplate is go-ftw's one data template the corpus uses:
// {{ "x" | repeat N }}, x N times.
var repeatTemplate = regexp.MustCompile(`\{\{\s*"([^"]*)"\s*\|\s*repeat\s+(\d+)\s*\}\}`)

func expand(data string) string {
	return repeatTemplate.ReplaceAllStringFunc(data, func(m string) string {
		sub := repeatTemplate.FindStringSubmatch(m)
		n, err := strconv.Atoi(sub[2])
		if err != nil || n > 1<<20 {
			return m
		}
		return strings.Repeat(sub[1], n)
	})
}

// ftwResult is what the WAF saw of one request.
type ftwResult struct {
	ids []int
	log string
}

// ftwServer is a real HTTP server on loopback: the WAF handler as the
// gateway runs it (Firewall.Serve, the body read whole first) in front of
// a backend in the manner of the CRS's test backend (/reflect answers the
// status, headers and body its JSON request asks for; every other path
// 200 "ok").
type ftwServer struct {
	addr    string
	mu      sync.Mutex
	results map[string]*ftwDone // by the client's address
}

// ftwDone is closed once the handler of a client's request has recorded
// what the WAF saw.
type ftwDone struct {
	ch  chan struct{}
	res ftwResult
}

func (s *ftwServer) done(addr string) *ftwDone {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.results[addr]
	if d == nil {
		d = &ftwDone{ch: make(chan struct{})}
		s.results[addr] = d
	}
	return d
}

func startFTWServer(t *testing.T, f *waf.Firewall) *ftwServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ftwServer{addr: ln.Addr().String(), results: map[string]*ftwDone{}}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve(f)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *ftwServer) serve(f *waf.Firewall) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		info := callinfo.New(callinfo.DoorREST)
		var log strings.Builder
		rw, done, ok := f.Serve(w, r, info, waf.Request{Body: body, Log: func(l string) { log.WriteString(l + "\n") }})
		if ok {
			reflectBackend(rw, r, body)
			done()
		}
		d := s.done(r.RemoteAddr)
		d.res = ftwResult{ids: info.WAFRules, log: log.String()}
		close(d.ch)
	}
}

// reflectBackend answers as the CRS's test backend does.
func reflectBackend(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path != "/reflect" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
		return
	}
	var spec struct {
		Status      int               `json:"status"`
		Headers     map[string]string `json:"headers"`
		Body        string            `json:"body"`
		EncodedBody string            `json:"encodedBody"`
	}
	_ = json.Unmarshal(body, &spec)
	for k, v := range spec.Headers {
		w.Header().Set(k, v)
	}
	out := []byte(spec.Body)
	if spec.EncodedBody != "" {
		if b, err := base64.StdEncoding.DecodeString(spec.EncodedBody); err == nil {
			out = b
		}
	}
	if spec.Status == 0 {
		spec.Status = http.StatusOK
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain")
	}
	w.WriteHeader(spec.Status)
	_, _ = w.Write(out)
}

// send sends one stage's request on a connection of its own and returns
// the answer's status (0 when there was none) and what the WAF saw.
func (s *ftwServer) send(raw []byte) (code int, body string, res ftwResult, err error) {
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		return 0, "", res, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write(raw); err != nil {
		return 0, "", res, err
	}
	// Nothing more is sent: a server waiting for more of a body (a
	// Content-Length past the data) reads its end at once.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	br := bufio.NewReader(c)
	resp, rerr := http.ReadResponse(br, nil)
	if rerr == nil {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		code = resp.StatusCode
		_ = resp.Body.Close()
	}
	// What the WAF saw is recorded when the handler ends; a request the
	// server refused itself (400) never reaches it, and the server closes
	// the connection.
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(eof)
	}()
	local := c.LocalAddr().String()
	d := s.done(local)
	defer func() { // the port may serve a later request
		s.mu.Lock()
		delete(s.results, local)
		s.mu.Unlock()
	}()
	select {
	case <-d.ch:
		res = d.res
	case <-eof:
		select {
		case <-d.ch:
			res = d.res
		default:
		}
	}
	return code, body, res, rerr
}

// check returns why a stage's outcome is not the expected one ("" when
// it is).
func (o ftwOutput) check(code int, body string, res ftwResult, err error) string {
	var why []string
	if o.ExpectError {
		if err == nil && code != http.StatusBadRequest {
			why = append(why, fmt.Sprintf("expected an error, got status %d", code))
		}
	} else if err != nil && len(o.Status) == 0 && len(o.Log.ExpectIDs) == 0 {
		why = append(why, "request failed: "+err.Error())
	}
	if len(o.Status) > 0 && !slices.Contains(o.Status, code) {
		why = append(why, fmt.Sprintf("status %d, want %v (matched %v)", code, []int(o.Status), res.ids))
	}
	if o.ResponseContains != "" && !regexp.MustCompile(o.ResponseContains).MatchString(body) {
		why = append(why, fmt.Sprintf("response does not contain %q", o.ResponseContains))
	}
	for _, id := range o.Log.ExpectIDs {
		if !slices.Contains(res.ids, id) {
			why = append(why, fmt.Sprintf("rule %d did not match (matched %v)", id, res.ids))
		}
	}
	for _, id := range o.Log.NoExpectIDs {
		if slices.Contains(res.ids, id) {
			why = append(why, fmt.Sprintf("rule %d matched", id))
		}
	}
	if o.Log.MatchRegex != "" && !regexp.MustCompile(o.Log.MatchRegex).MatchString(res.log) {
		why = append(why, fmt.Sprintf("log does not match %q", o.Log.MatchRegex))
	}
	if o.Log.NoMatchRegex != "" && regexp.MustCompile(o.Log.NoMatchRegex).MatchString(res.log) {
		why = append(why, fmt.Sprintf("log matches %q", o.Log.NoMatchRegex))
	}
	return strings.Join(why, "; ")
}

// ftwIgnored is testdata/ftw-ignored.yaml: the cases not run, each with
// its reason, by "RULE-TEST" (920100-4).
func ftwIgnored(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/ftw-ignored.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatalf("testdata/ftw-ignored.yaml: %v", err)
	}
	return out
}

// TestCRSRegression runs the OWASP CRS's own regression tests (the go-ftw
// corpus coraza-coreruleset ships under tests/, embedded there as
// tests.FS; go.mod pins its version) against the gateway's WAF
// handler, on a real HTTP server on loopback, at paranoia level 4 in
// detection-only mode (every rule runs; the log is checked), with the
// test setup of testdata/ftw.conf. The cases of testdata/ftw-ignored.yaml
// are skipped, each for the reason written there; every other case must
// pass. The pass rate is logged (-v) and quoted in the README.
func TestCRSRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("the CRS corpus takes a while")
	}
	files, err := fs.Glob(crstests.FS, "*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRS tests (%v)", err)
	}
	ignored := ftwIgnored(t)
	conf, err := filepath.Abs("testdata/ftw.conf")
	if err != nil {
		t.Fatal(err)
	}
	f := compile(t, &configv1.WAF{
		Mode:                configv1.WAFMode_WAF_MODE_DETECTION_ONLY,
		ParanoiaLevel:       proto.Uint32(4),
		InspectResponses:    proto.Bool(true),
		SetupDirectivesFile: proto.String(conf),
		MaxBodyBytes:        proto.Uint32(1 << 20),
	}, waf.NewCache())
	srv := startFTWServer(t, f)
	var total, passed, skipped atomic.Int64
	seen := map[string]bool{}
	var seenMu sync.Mutex
	start := time.Now()
	t.Run("corpus", func(t *testing.T) {
		for _, file := range files {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
				t.Parallel()
				b, err := fs.ReadFile(crstests.FS, file)
				if err != nil {
					t.Fatal(err)
				}
				var ff ftwFile
				if err := yaml.Unmarshal(b, &ff); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				for _, tc := range ff.Tests {
					name := fmt.Sprintf("%d-%d", ff.RuleID, tc.TestID)
					total.Add(1)
					seenMu.Lock()
					seen[name] = true
					seenMu.Unlock()
					if why, ok := ignored[name]; ok {
						skipped.Add(1)
						t.Logf("%s ignored: %s", name, why)
						continue
					}
					ok := true
					for i, st := range tc.Stages {
						code, body, res, err := srv.send(st.Input.raw())
						if why := st.Output.check(code, body, res, err); why != "" {
							t.Errorf("%s stage %d (%s): %s", name, i, tc.Desc, why)
							ok = false
						}
					}
					if ok {
						passed.Add(1)
					}
				}
			})
		}
	})
	for name := range ignored {
		if !seen[name] {
			t.Errorf("testdata/ftw-ignored.yaml lists %s, which is not in the corpus", name)
		}
	}
	run := total.Load() - skipped.Load()
	t.Logf("CRS regression: %d files, %d tests: %d passed, %d ignored, %d failed; pass rate %.1f%% of all tests (%.1f%% of those run), in %s",
		len(files), total.Load(), passed.Load(), skipped.Load(), run-passed.Load(),
		100*float64(passed.Load())/float64(total.Load()), 100*float64(passed.Load())/float64(max(run, 1)), time.Since(start).Round(time.Second))
}
