package test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/gateway"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
)

// consoleGateway routes a gated echo upstream (behind an API key) and the
// notes API from a descriptor set (its comments kept); the console is on
// the admin server.
func consoleGateway(t *testing.T, key string) (*Gateway, *gatedEcho, string) {
	t.Helper()
	up := newGatedEcho()
	echoAddr := StartServer(t, func(s *grpc.Server) { testingv1.RegisterEchoServiceServer(s, up) })
	api := compileNotes(t, "notes/v1/notes.proto")
	notes := startNotes(t, api, "127.0.0.1:0", false, notesService)
	set := api.writeSet(t, t.TempDir())
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - {name: public, address: 127.0.0.1:0}
clusters:
  - {name: echo, endpoints: [%q]}
  - {name: notes, endpoints: [%q]}
routes:
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo, auth: {providers: [keys]}}
  - {name: notes, match: {package: notes.v1}, cluster: notes}
auth_providers:
  - name: keys
    api_key: {keys: [{sha256: %q, principal: console-user}]}
schema:
  descriptor_sets: [%q]
`, echoAddr, notes.addr, authint.HashKey(key), set))
	return gw, up, set
}

// TestConsole runs the console's flows in Chromium: the list of methods
// with their sources and bindings, a request built from the input
// message's template (field types and comments), a refused call, the
// auth field, a call with an error and its details, a server stream shown
// message by message (over gRPC-Web text and REST), and the
// copy-as-curl/grpcurl commands (which leave the token out).
func TestConsole(t *testing.T) {
	const key = "console-k3y"
	gw, up, set := consoleGateway(t, key)
	b := StartBrowser(t)
	admin := "http://" + gw.AdminAddr().String()
	b.Goto(t, admin+"/") // redirected to /console/
	b.Do(t, "waitCount", map[string]any{"sel": ".method", "n": 6}, nil)

	var services []string
	b.Do(t, "texts", map[string]any{"sel": ".service"}, &services)
	for _, want := range []string{"edgegate.testing.v1.EchoService · compiled", "notes.v1.NotesService · file:" + set} {
		if !contains(services, want) {
			t.Errorf("services %q, want %q", services, want)
		}
	}
	var listener string
	b.Do(t, "text", map[string]any{"sel": "#listener"}, &listener)
	if !strings.Contains(listener, "public ("+gw.Addr+")") {
		t.Errorf("listener line %q, want public (%s)", listener, gw.Addr)
	}

	t.Run("a request from the input message", func(t *testing.T) {
		b.Do(t, "click", map[string]any{"sel": `.method[data-full="/notes.v1.NotesService/CreateNote"]`}, nil)
		var fields, request, transports string
		b.Do(t, "text", map[string]any{"sel": "#fields"}, &fields)
		for _, want := range []string{"note.title", "string", "The note's title.", "note.createTime", "google.protobuf.Timestamp"} {
			if !strings.Contains(fields, want) {
				t.Errorf("fields %q, want %q in it", fields, want)
			}
		}
		b.Do(t, "value", map[string]any{"sel": "#request"}, &request)
		var tmpl map[string]any
		if err := json.Unmarshal([]byte(request), &tmpl); err != nil {
			t.Fatalf("request %q: %v", request, err)
		}
		if note, _ := tmpl["note"].(map[string]any); note == nil || note["title"] != "" || tmpl["parent"] != "" {
			t.Errorf("request template %s", request)
		}
		b.Do(t, "text", map[string]any{"sel": "#transport"}, &transports)
		if !strings.Contains(transports, "REST POST /v1/{parent=folders/*}/notes") {
			t.Errorf("transports %q, want the config's REST binding", transports)
		}
	})

	selectMethod := func(t *testing.T, full, transport, request string) {
		t.Helper()
		b.Do(t, "click", map[string]any{"sel": fmt.Sprintf(".method[data-full=%q]", full)}, nil)
		b.Do(t, "select", map[string]any{"sel": "#transport", "value": transport}, nil)
		b.Do(t, "fill", map[string]any{"sel": "#request", "value": request}, nil)
	}
	callAndWait := func(t *testing.T, status string) string {
		t.Helper()
		b.Do(t, "click", map[string]any{"sel": "#call"}, nil)
		b.Do(t, "waitText", map[string]any{"sel": "#status", "text": status}, nil)
		var got string
		b.Do(t, "text", map[string]any{"sel": "#status"}, &got)
		return got
	}
	messages := func(t *testing.T) []string {
		t.Helper()
		var out []string
		b.Do(t, "texts", map[string]any{"sel": "#messages li"}, &out)
		return out
	}

	t.Run("without the API key", func(t *testing.T) {
		selectMethod(t, "/edgegate.testing.v1.EchoService/Unary", "grpc-web", `{"message": "hi console"}`)
		if got := callAndWait(t, "UNAUTHENTICATED"); !strings.Contains(got, "(16)") {
			t.Errorf("status %q", got)
		}
	})
	b.Do(t, "select", map[string]any{"sel": "#auth-kind", "value": "apikey"}, nil)
	b.Do(t, "fill", map[string]any{"sel": "#auth", "value": key}, nil)

	for _, tr := range []string{"grpc-web", "grpc-web-text", "rest:0"} {
		t.Run("unary over "+tr, func(t *testing.T) {
			selectMethod(t, "/edgegate.testing.v1.EchoService/Unary", tr, `{"message": "hi console", "echoMetadata": true}`)
			callAndWait(t, "OK")
			if m := messages(t); len(m) != 1 || !strings.Contains(m[0], `"message":"hi console"`) {
				t.Errorf("messages %q", m)
			}
			var headers, timing string
			b.Do(t, "text", map[string]any{"sel": "#headers"}, &headers)
			b.Do(t, "text", map[string]any{"sel": "#timing"}, &timing)
			if !strings.Contains(headers, "content-type") {
				t.Errorf("headers %q", headers)
			}
			if !strings.HasPrefix(timing, "in ") || !strings.HasSuffix(timing, " ms") {
				t.Errorf("timing %q", timing)
			}
		})
	}

	t.Run("an error with details", func(t *testing.T) {
		selectMethod(t, "/edgegate.testing.v1.EchoService/Unary", "grpc-web",
			`{"failWith": {"code": 5, "message": "gone", "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message", "description": "unknown"}]}]}}`)
		if got := callAndWait(t, "NOT_FOUND"); got != "NOT_FOUND (5): gone" {
			t.Errorf("status %q", got)
		}
		var details string
		b.Do(t, "text", map[string]any{"sel": "#details"}, &details)
		if !strings.Contains(details, "google.rpc.BadRequest") || !strings.Contains(details, "unknown") {
			t.Errorf("details %q", details)
		}
	})

	for _, tr := range []string{"grpc-web-text", "rest:0"} {
		t.Run("a server stream shown as it arrives over "+tr, func(t *testing.T) {
			selectMethod(t, "/edgegate.testing.v1.EchoService/ServerStream", tr, `{"message": "gated", "repeat": 3}`)
			b.Do(t, "click", map[string]any{"sel": "#call"}, nil)
			// The upstream sends message i+1 only when released: the page
			// shows message i before it is.
			for n := 1; n <= 3; n++ {
				b.Do(t, "waitCount", map[string]any{"sel": "#messages li", "n": n}, nil)
				if m := messages(t); len(m) != n || !strings.Contains(m[n-1], fmt.Sprintf("#%d ", n-1)) {
					t.Fatalf("messages %q, want %d", m, n)
				}
				if n < 3 {
					up.release <- struct{}{}
				}
			}
			b.Do(t, "waitText", map[string]any{"sel": "#status", "text": "OK"}, nil)
			if path := os.Getenv("EDGEGATE_CONSOLE_SCREENSHOT"); path != "" && tr == "grpc-web-text" {
				b.Do(t, "screenshot", map[string]any{"path": path}, nil)
			}
		})
	}

	t.Run("copy as curl and grpcurl, the token left out", func(t *testing.T) {
		selectMethod(t, "/edgegate.testing.v1.EchoService/Unary", "rest:0", `{"message": "copied"}`)
		var cmd string
		b.Do(t, "click", map[string]any{"sel": "#copy-curl"}, nil)
		b.Do(t, "text", map[string]any{"sel": "#command"}, &cmd)
		want := fmt.Sprintf(`curl -X POST 'http://%s/v1/echo:unary' -H "x-api-key: $TOKEN" -H 'content-type: application/json' -d '{"message":"copied"}'`, gw.Addr)
		if cmd != want {
			t.Errorf("curl:\n%s\nwant\n%s", cmd, want)
		}
		b.Do(t, "click", map[string]any{"sel": "#copy-grpcurl"}, nil)
		b.Do(t, "text", map[string]any{"sel": "#command"}, &cmd)
		want = fmt.Sprintf(`grpcurl -plaintext -H "x-api-key: $TOKEN" -d '{"message":"copied"}' %s edgegate.testing.v1.EchoService/Unary`, gw.Addr)
		if cmd != want {
			t.Errorf("grpcurl:\n%s\nwant\n%s", cmd, want)
		}
		if strings.Contains(cmd, key) {
			t.Error("a copied command holds the API key")
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestConsoleAPI reads what the console's page reads: the methods with
// their templates and bindings, and the descriptors.
func TestConsoleAPI(t *testing.T) {
	gw, _, _ := consoleGateway(t, "k")
	code, body := adminGet(t, gw, "/console/api/methods")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got struct {
		Listener string `json:"listener"`
		CanCall  bool   `json:"can_call"`
		Methods  []struct {
			Full     string         `json:"full"`
			Kind     string         `json:"kind"`
			Route    string         `json:"route"`
			Cluster  string         `json:"cluster"`
			Comment  string         `json:"comment"`
			Template map[string]any `json:"template"`
			Bindings []struct{ Verb, Path, Source string }
		} `json:"methods"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Listener != "public" || !got.CanCall {
		t.Errorf("listener %q can_call %v", got.Listener, got.CanCall)
	}
	found := 0
	for _, m := range got.Methods {
		switch m.Full {
		case "/edgegate.testing.v1.EchoService/ServerStream":
			found++
			if m.Kind != "server_stream" || m.Route != "echo" || m.Cluster != "echo" || len(m.Bindings) != 1 || m.Bindings[0].Path != "/v1/echo:stream" {
				t.Errorf("%+v", m)
			}
			want := map[string]any{"message": "", "payload": "", "repeat": float64(0), "delay": "0s", "echoMetadata": false,
				"failWith": map[string]any{"code": float64(0), "message": "", "details": []any{map[string]any{"@type": ""}}}}
			if fmt.Sprint(m.Template) != fmt.Sprint(want) {
				t.Errorf("template %v, want %v", m.Template, want)
			}
		case "/notes.v1.NotesService/WatchNotes":
			found++
			if m.Comment != "WatchNotes streams a folder's notes." || m.Cluster != "notes" {
				t.Errorf("%+v", m)
			}
		}
	}
	if found != 2 {
		t.Errorf("methods %s", body)
	}
	code, body = adminGet(t, gw, "/console/api/descriptors")
	if code != 200 || !strings.Contains(body, "notes/v1/notes.proto") || !strings.Contains(body, "google/rpc/error_details.proto") {
		t.Errorf("descriptors: %d, %d bytes", code, len(body))
	}
	// Every asset is embedded.
	for _, p := range []string{"/console/", "/console/console.js", "/console/console.css"} {
		if code, body := adminGet(t, gw, p); code != 200 || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", p, code, len(body))
		}
	}
}

func TestConsoleConfig(t *testing.T) {
	up := StartEcho(t, "up")
	t.Run("disabled", func(t *testing.T) {
		gw := StartGateway(t, EchoConfig(up.Addr)+"admin: {address: 127.0.0.1:0, console: {disable: true}}\n")
		if code, _ := adminGet(t, gw, "/console/"); code != 404 {
			t.Errorf("/console/ %d, want 404", code)
		}
	})
	t.Run("unknown listener", func(t *testing.T) {
		yaml := EchoConfig(up.Addr) + "admin: {address: 127.0.0.1:0, console: {listener: nope}}\n"
		cfg, err := config.Load("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = gateway.Check(cfg)
		if err == nil || !strings.Contains(config.Place("test.yaml", []byte(yaml), err).Error(), `admin.console.listener: no listener named "nope"`) {
			t.Errorf("check: %v", err)
		}
	})
	t.Run("a gRPC-only listener", func(t *testing.T) {
		yaml := strings.Replace(EchoConfig(up.Addr), "  - address: 127.0.0.1:0\n", "  - {name: g, address: 127.0.0.1:0, protocols: [PROTOCOL_GRPC]}\n", 1) +
			"admin: {address: 127.0.0.1:0, console: {listener: g}}\n"
		cfg, err := config.Load("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := gateway.Check(cfg); err == nil || !strings.Contains(err.Error(), "serves native gRPC only") {
			t.Errorf("check: %v", err)
		}
	})
}
