package test

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticBuild runs the build of the container image
// (scripts/build-static.sh, which the Dockerfile runs) and checks the
// binary: an ELF with no interpreter and no shared libraries (static: it
// runs on distroless/static), built with CGO_ENABLED=0 and -trimpath (no
// path of the build machine in it), the version stamped; and that the
// Dockerfile runs that script and a non-root user.
func TestStaticBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgegate")
	cmd := exec.Command("../scripts/build-static.sh", bin, "v9.9.9-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-static.sh: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an interpreter (PT_INTERP): it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("shared libraries %v (%v), want none", libs, err)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := filepath.Abs(".."); strings.Contains(string(raw), wd) {
		t.Errorf("the binary holds the build path %s", wd)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v9.9.9-test") {
		t.Errorf("edgegate version: %v %q, want the stamped version", err, out)
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RUN scripts/build-static.sh /out/edgegate", "FROM gcr.io/distroless/static", "USER 65532:65532"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("the Dockerfile has no %q", want)
		}
	}
}
