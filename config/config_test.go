package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/gateway"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

var update = flag.Bool("update", false, "rewrite golden files")

// canonicalJSON prints cfg as indented JSON whose spacing does not depend on
// protojson's deliberately unstable output.
func canonicalJSON(t *testing.T, cfg proto.Message) []byte {
	t.Helper()
	raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(cfg)
	if err != nil {
		t.Fatalf("protojson: %v", err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// checkGolden compares got with the golden file of in ("x.yaml" → "x.golden"),
// or rewrites the golden file with -update.
func checkGolden(t *testing.T, in string, got []byte) {
	t.Helper()
	golden := strings.TrimSuffix(in, ".yaml") + ".golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil { //nolint:gosec // G703: golden is the testdata/ file of a test input, rewritten only with -update
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run go test -update to accept)\n--- got ---\n%s\n--- want ---\n%s", in, golden, got, want)
	}
}

func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no testdata/%s/*.yaml", dir)
	}
	return files
}

func TestLoadValidGolden(t *testing.T) {
	for _, in := range yamlFiles(t, "valid") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(in, data)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			checkGolden(t, in, canonicalJSON(t, cfg))
		})
	}
}

// validate is what `edgegate validate` does: Load, then the gateway's
// build in a dry run (where each policy checks its own sections), its
// errors placed in the file.
func validate(path string, data []byte) (*configv1.Config, error) {
	cfg, err := config.Load(path, data)
	if err != nil {
		return nil, err
	}
	if err := gateway.Check(cfg, gateway.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		return nil, config.Place(path, data, err)
	}
	return cfg, nil
}

func TestLoadInvalidGolden(t *testing.T) {
	for _, in := range yamlFiles(t, "invalid") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := validate(in, data)
			if err == nil {
				t.Fatalf("Load succeeded, want an error; got\n%s", canonicalJSON(t, cfg))
			}
			if cfg != nil {
				t.Errorf("Load returned a config with its error")
			}
			if !config.IsConfigError(err) {
				t.Errorf("IsConfigError(%T) = false, want true", err)
			}
			// Every error names this file.
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, in+":") {
					t.Errorf("error line %q does not start with %q", line, in+":")
				}
			}
			// Several errors come in file order.
			if es, ok := errors.AsType[config.Errors](err); ok {
				for i := 1; i < len(es); i++ {
					a, b := es[i-1], es[i]
					if a.Line > b.Line || (a.Line == b.Line && a.Column > b.Column) {
						t.Errorf("errors not in file order: %v before %v", a, b)
					}
				}
			}
			checkGolden(t, in, []byte(err.Error()+"\n"))
		})
	}
}

// protoyaml does not validate a file without a YAML document; Load rejects
// it all the same.
func TestLoadRejectsEmptyDocument(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "\n\n", "---\n", "{}", "null\n"} {
		cfg, err := config.Load("empty.yaml", []byte(in))
		if err == nil {
			t.Errorf("Load(%q) succeeded with %d listeners, want an error", in, len(cfg.GetListeners()))
			continue
		}
		if !config.IsConfigError(err) || !strings.Contains(err.Error(), "listeners") {
			t.Errorf("Load(%q) = %v, want a config error about listeners", in, err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	in := filepath.Join("testdata", "valid", "minimal.yaml")
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := config.LoadFile(in)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	fromData, err := config.Load(in, data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !proto.Equal(fromFile, fromData) {
		t.Errorf("LoadFile and Load differ:\n%v\n%v", fromFile, fromData)
	}

	_, err = config.LoadFile(filepath.Join("testdata", "does-not-exist.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
	if config.IsConfigError(err) {
		t.Errorf("IsConfigError(%v) = true for a missing file, want false", err)
	}
}

func TestLoadDefault(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatalf("LoadDefault: %v", err)
	}
	if len(cfg.GetListeners()) == 0 || len(cfg.GetClusters()) == 0 || len(cfg.GetRoutes()) == 0 {
		t.Errorf("default config has %d listeners, %d clusters, %d routes; want at least one of each",
			len(cfg.GetListeners()), len(cfg.GetClusters()), len(cfg.GetRoutes()))
	}
	again, err := config.Load(config.DefaultPath, config.DefaultYAML)
	if err != nil {
		t.Fatalf("Load(DefaultYAML): %v", err)
	}
	if !proto.Equal(cfg, again) {
		t.Errorf("LoadDefault differs from Load(DefaultPath, DefaultYAML)")
	}
}

func TestLoadErrorType(t *testing.T) {
	one, err := os.ReadFile(filepath.Join("testdata", "invalid", "unknown_cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Load("one.yaml", one)
	var e *config.Error
	if !errors.As(err, &e) {
		t.Fatalf("Load = %T %v, want a *config.Error", err, err)
	}
	want := config.Error{File: "one.yaml", Line: 10, Column: 14, Path: "routes[1].cluster", Msg: `unknown cluster "users"`}
	if *e != want {
		t.Errorf("Load error = %+v, want %+v", *e, want)
	}

	several, err := os.ReadFile(filepath.Join("testdata", "invalid", "several_errors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Load("several.yaml", several)
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load = %T %v, want config.Errors", err, err)
	}
	if len(es) != 3 {
		t.Errorf("got %d errors, want 3: %v", len(es), err)
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  config.Error
		want string
	}{
		{config.Error{File: "f.yaml", Line: 3, Column: 5, Path: "routes[0].cluster", Msg: "bad"}, "f.yaml:3:5: routes[0].cluster: bad"},
		{config.Error{File: "f.yaml", Line: 3, Column: 5, Msg: "bad"}, "f.yaml:3:5: bad"},
		{config.Error{File: "f.yaml", Path: "listeners", Msg: "bad"}, "f.yaml: listeners: bad"},
		{config.Error{File: "f.yaml", Msg: "bad"}, "f.yaml: bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
	es := config.Errors{{File: "a", Msg: "x"}, {File: "a", Line: 1, Column: 2, Msg: "y"}}
	if got, want := es.Error(), "a: x\na:1:2: y"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

func loadMinimal(t *testing.T) *configv1.Config {
	t.Helper()
	cfg, err := config.LoadFile(filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLoadFillsDefaults(t *testing.T) {
	cfg := loadMinimal(t)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"listeners[0].name", cfg.GetListeners()[0].GetName(), "listener-0"},
		{"listeners[0].protocols", len(cfg.GetListeners()[0].GetProtocols()), 3},
		{"routes[0].name", cfg.GetRoutes()[0].GetName(), "route-0"},
		{"limits.max_concurrent_streams", cfg.GetLimits().GetMaxConcurrentStreams(), uint32(config.DefaultMaxConcurrentStreams)},
		{"limits.max_header_list_bytes", cfg.GetLimits().GetMaxHeaderListBytes(), uint32(config.DefaultMaxHeaderListBytes)},
		{"limits.max_message_bytes", cfg.GetLimits().GetMaxMessageBytes(), uint32(config.DefaultMaxMessageBytes)},
		{"limits.connection_timeout", cfg.GetLimits().GetConnectionTimeout().AsDuration(), config.DefaultConnectionTimeout},
		{"limits.keepalive.min_ping_interval", cfg.GetLimits().GetKeepalive().GetMinPingInterval().AsDuration(), config.DefaultMinPingInterval},
		{"limits.keepalive.max_connection_idle", cfg.GetLimits().GetKeepalive().GetMaxConnectionIdle().AsDuration(), config.DefaultMaxConnectionIdle},
		{"limits.keepalive.time", cfg.GetLimits().GetKeepalive().GetTime().AsDuration(), config.DefaultKeepaliveTime},
		{"limits.keepalive.timeout", cfg.GetLimits().GetKeepalive().GetTimeout().AsDuration(), config.DefaultKeepaliveTimeout},
		{"limits.keepalive.max_connection_age", cfg.GetLimits().GetKeepalive().GetMaxConnectionAge() == nil, true},
		{"shutdown_grace_period", cfg.GetShutdownGracePeriod().AsDuration(), config.DefaultShutdownGracePeriod},
		{"clusters[0].load_balancing", cfg.GetClusters()[0].GetLoadBalancing(), configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN},
		{"clusters[0].max_message_bytes", cfg.GetClusters()[0].GetMaxMessageBytes(), uint32(config.DefaultMaxMessageBytes)},
		{"clusters[0].connect_timeout", cfg.GetClusters()[0].GetConnectTimeout().AsDuration(), config.DefaultConnectTimeout},
		{"clusters[0].keepalive", cfg.GetClusters()[0].GetKeepalive() == nil, true},
		{"clusters[0].tls", cfg.GetClusters()[0].GetTls() == nil, true},
		{"http.read_header_timeout", cfg.GetHttp().GetReadHeaderTimeout().AsDuration(), config.DefaultReadHeaderTimeout},
		{"http.idle_timeout", cfg.GetHttp().GetIdleTimeout().AsDuration(), config.DefaultIdleTimeout},
		{"http.max_body_bytes", cfg.GetHttp().GetMaxBodyBytes(), uint32(config.DefaultMaxMessageBytes)},
		{"http.openapi_path", cfg.GetHttp().GetOpenapiPath(), config.DefaultOpenAPIPath},
		{"http.rest", cfg.GetHttp().GetRest() != nil, true},
		{"http.cors", cfg.GetHttp().GetCors() == nil, true},
		{"logging.format", cfg.GetLogging().GetFormat(), configv1.Logging_FORMAT_JSON},
		{"logging.level", cfg.GetLogging().GetLevel(), configv1.Logging_LEVEL_INFO},
		{"logging.access_log_sample_ratio", cfg.GetLogging().GetAccessLogSampleRatio(), 1.0},
		{"admin.address", cfg.GetAdmin().GetAddress(), config.DefaultAdminAddress},
		{"tracing", cfg.GetTracing() == nil, true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// Defaults that follow another field follow the configured value, not the
// default of that field; set values are kept.
func TestLoadDerivedDefaults(t *testing.T) {
	cfg, err := config.LoadFile(filepath.Join("testdata", "valid", "limits_logging.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.GetClusters()[0].GetMaxMessageBytes(); got != 65536 {
		t.Errorf("clusters[0].max_message_bytes = %d, want limits.max_message_bytes 65536", got)
	}
	if got := cfg.GetHttp().GetMaxBodyBytes(); got != 1024 {
		t.Errorf("http.max_body_bytes = %d, want the set 1024", got)
	}
	if got := cfg.GetHttp().GetCors().GetMaxAge().AsDuration(); got != config.DefaultCORSMaxAge {
		t.Errorf("http.cors.max_age = %v, want %v", got, config.DefaultCORSMaxAge)
	}
	if got := cfg.GetLimits().GetMaxHeaderListBytes(); got != 8192 {
		t.Errorf("limits.max_header_list_bytes (set as maxHeaderListBytes) = %d, want 8192", got)
	}

	cfg, err = config.LoadFile(filepath.Join("testdata", "valid", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*configv1.Cluster{}
	for _, c := range cfg.GetClusters() {
		byName[c.GetName()] = c
	}
	if got := byName["resolved"].GetKeepalive().GetTimeout().AsDuration(); got != config.DefaultKeepaliveTimeout {
		t.Errorf("resolved keepalive.timeout = %v, want %v", got, config.DefaultKeepaliveTimeout)
	}
	if got := byName["keepalive-full"].GetKeepalive().GetTimeout().AsDuration(); got != 5*time.Second {
		t.Errorf("keepalive-full keepalive.timeout = %v, want the set 5s", got)
	}
	if got := byName["secure"].GetLoadBalancing(); got != configv1.LoadBalancing_LOAD_BALANCING_PICK_FIRST {
		t.Errorf("secure load_balancing = %v, want PICK_FIRST", got)
	}
}

func TestLoadTracingDefaults(t *testing.T) {
	cfg, err := config.LoadFile(filepath.Join("testdata", "valid", "observability.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.GetTracing().GetServiceName(); got != config.DefaultServiceName {
		t.Errorf("tracing.service_name = %q, want %q", got, config.DefaultServiceName)
	}
	if got := cfg.GetTracing().GetSampleRatio(); got != 1 {
		t.Errorf("tracing.sample_ratio = %v, want 1", got)
	}
	if got := cfg.GetLogging().GetAccessLogSampleRatio(); got != 0.25 {
		t.Errorf("logging.access_log_sample_ratio = %v, want the set 0.25", got)
	}
}

// clusters[].reflection takes its defaults when present, keeps set values,
// and stays absent (discovery off) when absent.
func TestLoadReflectionDefaults(t *testing.T) {
	const doc = `
listeners:
  - address: :8080
clusters:
  - name: plain
    endpoints: [127.0.0.1:9000]
  - name: discovered
    endpoints: [127.0.0.1:9001]
    reflection: {}
  - name: tuned
    endpoints: [127.0.0.1:9002]
    reflection: {refresh_interval: 30s, timeout: 2s}
routes:
  - match: {default: true}
    cluster: plain
`
	cfg, err := config.Load("reflection.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*configv1.Cluster{}
	for _, c := range cfg.GetClusters() {
		byName[c.GetName()] = c
	}
	if r := byName["plain"].GetReflection(); r != nil {
		t.Errorf("plain reflection = %v, want absent", r)
	}
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"discovered refresh_interval", byName["discovered"].GetReflection().GetRefreshInterval().AsDuration(), config.DefaultReflectionRefresh},
		{"discovered timeout", byName["discovered"].GetReflection().GetTimeout().AsDuration(), config.DefaultReflectionTimeout},
		{"tuned refresh_interval", byName["tuned"].GetReflection().GetRefreshInterval().AsDuration(), 30 * time.Second},
		{"tuned timeout", byName["tuned"].GetReflection().GetTimeout().AsDuration(), 2 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestHash(t *testing.T) {
	a, b := loadMinimal(t), loadMinimal(t)
	if config.Hash(a) != config.Hash(b) {
		t.Error("Hash differs for the same configuration")
	}
	if h := config.Hash(a); len(h) != 64 {
		t.Errorf("Hash = %q, want 64 hex digits", h)
	}
	b.GetRoutes()[0].Cluster = "other"
	if config.Hash(a) == config.Hash(b) {
		t.Error("Hash is the same for different configurations")
	}
}

func TestClone(t *testing.T) {
	cfg := loadMinimal(t)
	c := config.Clone(cfg)
	if !proto.Equal(cfg, c) {
		t.Fatal("Clone differs from its source")
	}
	c.GetRoutes()[0].Cluster = "changed"
	c.GetListeners()[0].Name = "changed"
	if cfg.GetRoutes()[0].GetCluster() == "changed" || cfg.GetListeners()[0].GetName() == "changed" {
		t.Error("changing the clone changed the source")
	}
}
