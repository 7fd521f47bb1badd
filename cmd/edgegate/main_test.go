package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/tlsconf"
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

// validate prints where the config listens, in the form scripts/run.sh
// (make run) reads: every listener with its defaults, then the admin server.
func TestValidatePrintsAddresses(t *testing.T) {
	_, out, _ := runCmd("validate")
	if want := "ok: 1 listeners, 4 clusters, 5 routes\nlistener public 127.0.0.1:8080 plaintext grpc grpc-web rest\nadmin 127.0.0.1:9901\n"; out != want {
		t.Errorf("validate (embedded default):\n%s\nwant:\n%s", out, want)
	}
	dir := t.TempDir()
	certs, err := tlsconf.WriteDevCerts(dir, []string{"localhost"}, false)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.yaml")
	yaml := fmt.Sprintf(`listeners:
  - address: ":9000"
    protocols: [PROTOCOL_GRPC]
  - name: web
    address: 127.0.0.1:9443
    protocols: [PROTOCOL_REST, PROTOCOL_GRPC_WEB]
    tls: {certificates: [{cert_file: %q, key_file: %q}]}
admin: {disable: true}
clusters: [{name: b, endpoints: ["127.0.0.1:1"]}]
routes: [{match: {default: true}, cluster: b}]
`, certs.ServerCert, certs.ServerKey)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("validate", "-c", file)
	if want := "ok: 2 listeners, 1 clusters, 1 routes\nlistener listener-0 :9000 plaintext grpc\nlistener web 127.0.0.1:9443 tls rest grpc-web\nadmin off\n"; code != 0 || out != want {
		t.Errorf("validate -c: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
}
