package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/config"
)

func readTestdata(t *testing.T, path ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRegressions pins bugs found by the fuzz test and by review.
func TestRegressions(t *testing.T) {
	t.Run("empty or comment-only file is an error", func(t *testing.T) {
		for _, in := range []string{"", "# only a comment\n", "\n\n"} {
			if _, err := config.Load("empty.yaml", []byte(in)); err == nil || !strings.Contains(err.Error(), "listeners") {
				t.Errorf("Load(%q) = %v, want an error about listeners", in, err)
			}
		}
	})
	t.Run("errors in file order", func(t *testing.T) {
		_, err := config.Load("several.yaml", readTestdata(t, "invalid", "several_errors.yaml"))
		es, ok := err.(config.Errors) //nolint:errorlint // Load's contract is an Errors itself, not one wrapped: the test checks exactly that
		if !ok {
			t.Fatalf("Load = %T %v, want config.Errors", err, err)
		}
		for i := 1; i < len(es); i++ {
			a, b := es[i-1], es[i]
			if a.Line > b.Line || (a.Line == b.Line && a.Column > b.Column) {
				t.Errorf("errors out of file order:\n%v", err)
			}
		}
	})
	t.Run("lone CR and bare document marker: an error, no panic", func(t *testing.T) {
		for _, in := range []string{
			"\r0",
			"listeners:\r  - address: :8080\rclusters:\r  - name: Bad\r    endpoints: [a:1]\r",
			"---",
			"--- # no configuration yet",
		} {
			cfg, panicked, stack, err := load("bad.yaml", []byte(in))
			if panicked != nil {
				t.Fatalf("Load(%q) panicked: %v\n%s", in, panicked, stack)
			}
			if err == nil || cfg != nil || strings.Contains(err.Error(), "cannot parse the file") {
				t.Errorf("Load(%q) = %v, want a plain configuration error", in, err)
			}
		}
	})
	t.Run("CRLF files load", func(t *testing.T) {
		in := "listeners:\r\n  - address: 127.0.0.1:8080\r\n"
		if _, err := config.Load("crlf.yaml", []byte(in)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("duplicate default message has no trailing space", func(t *testing.T) {
		_, err := config.Load("two.yaml", readTestdata(t, "invalid", "two_defaults.yaml"))
		if err == nil || strings.HasSuffix(err.Error(), " ") {
			t.Fatalf("%q", err)
		}
	})
	t.Run("zero durations mean the default", func(t *testing.T) {
		in := "listeners: [{address: ':8080'}]\nlimits: {connection_timeout: 0s}\nshutdown_grace_period: 0s\n"
		cfg, err := config.Load("zero.yaml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.GetLimits().GetConnectionTimeout().AsDuration(); got != config.DefaultConnectionTimeout {
			t.Errorf("connection_timeout %v, want the default", got)
		}
		if got := cfg.GetShutdownGracePeriod().AsDuration(); got != config.DefaultShutdownGracePeriod {
			t.Errorf("shutdown_grace_period %v, want the default", got)
		}
	})
	t.Run("a second document is an error", func(t *testing.T) {
		in := "listeners: [{address: ':8080'}]\n---\nlisteners: [{address: ':9090'}]\n"
		_, err := config.Load("two-docs.yaml", []byte(in))
		if err == nil || err.Error() != "two-docs.yaml:2:1: a second YAML document: the file must hold one" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a repeated key is an error", func(t *testing.T) {
		in := "listeners: [{address: ':8080'}]\nlisteners: [{address: ':9090'}]\n"
		_, err := config.Load("dup.yaml", []byte(in))
		if err == nil || err.Error() != `dup.yaml:2:1: key "listeners" repeated` {
			t.Fatalf("%v", err)
		}
	})
	t.Run("YAML syntax errors have a line", func(t *testing.T) {
		_, err := config.Load("syntax.yaml", []byte("listeners:\n  - address: [unclosed\n"))
		if err == nil {
			t.Fatal("loaded")
		}
		if e, ok := errors.AsType[*config.Error](err); !ok || e.Line == 0 {
			t.Fatalf("%v: want a line", err)
		}
	})
}
