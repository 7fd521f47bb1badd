package config_test

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/config"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/router"
)

// FuzzLoad checks that Load never panics and that what it accepts is a
// configuration the gateway can serve: at least one listener, every route's
// cluster defined, a route table that compiles.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(config.DefaultYAML)

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, panicked, stack, err := load("fuzz.yaml", data)
		if panicked != nil {
			t.Fatalf("Load panicked: %v\n%s", panicked, stack)
		}
		if err != nil && strings.Contains(err.Error(), "cannot parse the file") {
			t.Fatalf("the YAML parser panicked (Load recovered): %v", err)
		}
		if err != nil {
			if cfg != nil {
				t.Errorf("Load returned a config with error %v", err)
			}
			if !config.IsConfigError(err) {
				t.Errorf("Load error %T is not a config error: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Errorf("Load error does not name the file: %v", err)
			}
			return
		}
		if len(cfg.GetListeners()) == 0 {
			t.Fatalf("Load accepted a config without listeners:\n%s", data)
		}
		clusters := map[string]bool{}
		for _, c := range cfg.GetClusters() {
			clusters[c.GetName()] = true
		}
		for i, r := range cfg.GetRoutes() {
			if !clusters[r.GetCluster()] {
				t.Errorf("routes[%d] names unknown cluster %q", i, r.GetCluster())
			}
			if r.GetName() == "" {
				t.Errorf("routes[%d] has no name after defaults", i)
			}
		}
		for i, l := range cfg.GetListeners() {
			if l.GetName() == "" || len(l.GetProtocols()) == 0 {
				t.Errorf("listeners[%d] lacks its defaults: %v", i, l)
			}
		}
		tbl, err := router.Compile(cfg, nil)
		if err != nil {
			t.Fatalf("router.Compile of a loaded config: %v\n%s", err, data)
		}
		if got, want := len(tbl.Routes()), len(cfg.GetRoutes()); got != want {
			t.Errorf("compiled %d routes, want %d", got, want)
		}
	})
}

// load calls config.Load and returns the value it panicked with, and the
// stack of the panic, if it did.
func load(path string, data []byte) (cfg *configv1.Config, panicked any, stack string, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked, stack = p, string(debug.Stack())
		}
	}()
	cfg, err = config.Load(path, data)
	return cfg, nil, "", err
}
