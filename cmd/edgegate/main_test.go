package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs the command line args and returns its exit code, stdout and
// stderr.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Without -c, validate checks the embedded default config, as serve and
// routes use it; the usage text and -c's help say so.
func TestValidateWithoutFileChecksEmbeddedDefault(t *testing.T) {
	code, out, errs := runCmd("validate")
	if code != 0 || !strings.HasPrefix(out, "ok: 1 listeners, 4 clusters, 5 routes\n") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want 0 and the embedded default's summary", code, out, errs)
	}
	if code, _, errs := runCmd("validate", "-c", filepath.Join(t.TempDir(), "absent.yaml")); code != 1 || !strings.Contains(errs, "absent.yaml") {
		t.Errorf("validate -c absent.yaml: exit %d, stderr %q; want 1 naming the file", code, errs)
	}
	if code, _, errs := runCmd("validate", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("validate extra: exit %d, stderr %q; want 2", code, errs)
	}
	_, usage, _ := runCmd("help")
	if !strings.Contains(usage, "edgegate validate [-c FILE]  check a config file (the embedded default without -c)") {
		t.Errorf("usage does not say validate's -c is optional:\n%s", usage)
	}
	if _, _, help := runCmd("validate", "-h"); !strings.Contains(help, "the embedded default when empty") {
		t.Errorf("validate -h:\n%s", help)
	}
}
