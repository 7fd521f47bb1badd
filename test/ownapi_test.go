package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/edgegate/edgegate/config"
)

const (
	notesService = "notes.v1.NotesService"
	tagsService  = "notes.v1.TagsService"
)

// notesConfig routes the notes package to the cluster notes at addr;
// cluster adds to the cluster, extra to the file.
func notesConfig(addr, cluster, extra string) string {
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: notes
    endpoints: [%q]
%s
routes:
  - name: notes
    match: {package: notes.v1}
    cluster: notes
schema:
  http_rules:
    - {method: notes.v1.NotesService/CreateNote, post: "/v1/{parent=folders/*}/notes", body: note, success_status: 201}
    - {method: notes.v1.NotesService/DeleteNote, delete: "/v1/{name=folders/*/notes/*}", success_status: 204}
    - {method: notes.v1.NotesService/Archive, post: "/v1/folders/{folder}:archive", body: "*"}
%s`, addr, cluster, extra)
}

// An API the gateway was not built with, from a descriptor set the test
// builds from testdata/notes: every door.
func TestOwnAPIFromDescriptorSet(t *testing.T) {
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", false, notesService)
	set := api.writeSet(t, t.TempDir())
	gw := StartGateway(t, notesConfig(up.addr, "", "  descriptor_sets: ["+fmt.Sprintf("%q", set)+"]\n"))
	checkNotesDoors(t, gw, api, "file:"+set)
}

// The same API read from the upstream's server reflection alone.
func TestOwnAPIFromReflection(t *testing.T) {
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", true, notesService)
	gw := StartGateway(t, notesConfig(up.addr, "    reflection: {}\n", ""))
	checkNotesDoors(t, gw, api, "reflection:notes")
	if code, st := readySchema(t, gw, "notes"); code != 200 || st["status"] != "ok" || len(fmt.Sprint(st["hash"])) != 64 || st["fetched"] == nil {
		t.Errorf("/readyz: %d %v", code, st)
	}
}

// checkNotesDoors calls the notes API through the three doors of gw and
// reads its reflection and routes; source is its bindings' source.
func checkNotesDoors(t *testing.T, gw *Gateway, api *notesAPI, source string) {
	base := "http://" + gw.Addr
	t.Run("native gRPC", func(t *testing.T) {
		cc := Dial(t, gw.Addr)
		n := dynamicpb.NewMessage(api.method("/notes.v1.NotesService/GetNote").Output())
		req := api.message("notes.v1.GetNoteRequest", map[string]any{"name": "folders/work/notes/1"})
		if err := cc.Invoke(Ctx(t, Patience), "/notes.v1.NotesService/GetNote", req, n); err != nil || getString(n, "title") != "Plan" {
			t.Fatalf("GetNote: %v %v", n, err)
		}
		req = api.message("notes.v1.GetNoteRequest", map[string]any{"name": "folders/work/notes/9"})
		err := cc.Invoke(Ctx(t, Patience), "/notes.v1.NotesService/GetNote", req, n)
		if st := status.Convert(err); st.Code() != codes.NotFound || len(st.Details()) != 1 {
			t.Errorf("GetNote of a missing note: %v %v", st, st.Details())
		}
		s, err := cc.NewStream(Ctx(t, Patience), &grpc.StreamDesc{ServerStreams: true}, "/notes.v1.NotesService/WatchNotes")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendMsg(api.message("notes.v1.WatchNotesRequest", map[string]any{"parent": "folders/work"})); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseSend()
		var names []string
		for {
			m := dynamicpb.NewMessage(api.method("/notes.v1.NotesService/WatchNotes").Output())
			if err := s.RecvMsg(m); err != nil {
				break
			}
			names = append(names, getString(m, "name"))
		}
		if !slices.Equal(names, []string{"folders/work/notes/1", "folders/work/notes/2"}) {
			t.Errorf("WatchNotes: %v", names)
		}
	})
	t.Run("gRPC-Web", func(t *testing.T) {
		get := notesWebClient(api, base, "/notes.v1.NotesService/GetNote")
		resp, err := get.CallUnary(Ctx(t, Patience), connect.NewRequest(api.message("notes.v1.GetNoteRequest", map[string]any{"name": "folders/work/notes/2"})))
		if err != nil || getString(resp.Msg, "title") != "Lunch" {
			t.Fatalf("GetNote: %v %v", resp, err)
		}
		_, err = get.CallUnary(Ctx(t, Patience), connect.NewRequest(api.message("notes.v1.GetNoteRequest", map[string]any{"name": "folders/x/notes/9"})))
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || len(ce.Details()) != 1 {
			t.Errorf("GetNote of a missing note: %v", err)
		}
		watch := notesWebClient(api, base, "/notes.v1.NotesService/WatchNotes")
		st, err := watch.CallServerStream(Ctx(t, Patience), connect.NewRequest(api.message("notes.v1.WatchNotesRequest", map[string]any{"parent": "folders/home"})))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.Close() }()
		var names []string
		for st.Receive() {
			names = append(names, getString(st.Msg(), "name"))
		}
		if st.Err() != nil || !slices.Equal(names, []string{"folders/home/notes/3"}) {
			t.Errorf("WatchNotes: %v %v", names, st.Err())
		}
	})
	t.Run("REST", func(t *testing.T) {
		for _, tc := range []struct {
			name, verb, path, body string
			code                   int
			want                   map[string]any // JSON path ("a.b") → value
		}{
			{"path", "GET", "/v1/folders/work/notes/1", "", 200, map[string]any{
				"name": "folders/work/notes/1", "title": "Plan", "tags": []any{"a", "b"}, "priority": "PRIORITY_HIGH",
				"createTime": "2026-11-30T12:00:00Z", "labels.team": "edge", "text": "ship it",
			}},
			{"query", "GET", "/v1/folders/work/notes?tag=b&pageSize=1", "", 200, map[string]any{"notes.0.name": "folders/work/notes/1", "notes.1": nil}},
			{"query, enum by name and field name", "GET", "/v1/folders/work/notes?min_priority=PRIORITY_HIGH", "", 200, map[string]any{"notes.0.title": "Plan", "notes.1": nil}},
			{"additional binding", "GET", "/v1/notes?tag=c", "", 200, map[string]any{"notes.0.title": "Milk", "notes.1": nil}},
			{"body field, success status of a rule", "POST", "/v1/folders/home/notes", `{"title":"Bread","tags":["c"],"priority":"PRIORITY_LOW"}`, 201, map[string]any{
				"name": "folders/home/notes/4", "title": "Bread", "createTime": "2026-12-01T00:00:00Z",
			}},
			{"PATCH, mask from the body", "PATCH", "/v1/folders/home/notes/3", `{"text":"two litres"}`, 200, map[string]any{"title": "Milk", "text": "two litres"}},
			{"body * of a config rule", "POST", "/v1/folders/work:archive", `{}`, 200, map[string]any{"archived": 2.0}},
			{"not found, with details", "GET", "/v1/folders/work/notes/9", "", 404, map[string]any{
				"code": 5.0, "message": "no note folders/work/notes/9", "details.0.@type": "type.googleapis.com/google.rpc.ResourceInfo", "details.0.resourceName": "folders/work/notes/9",
			}},
			{"invalid argument, with details", "POST", "/v1/folders/home/notes", `{"text":"untitled"}`, 400, map[string]any{
				"code": 3.0, "details.0.@type": "type.googleapis.com/google.rpc.BadRequest", "details.0.fieldViolations.0.field": "note.title",
			}},
			{"unknown body field", "POST", "/v1/folders/home/notes", `{"titel":"x"}`, 400, map[string]any{"code": 3.0}},
			{"wrong field type in the query", "GET", "/v1/folders/work/notes?pageSize=many", "", 400, map[string]any{"code": 3.0}},
			{"no binding", "GET", "/v1/folders/work/tags", "", 404, map[string]any{"code": 5.0}},
			{"custom verb", "SEARCH", "/v1/notes", `{"query":"pla"}`, 200, map[string]any{"notes.0.title": "Plan", "notes.1": nil}},
			{"path variable of any depth", "GET", "/v1/tree/folders/work/notes", "", 200, map[string]any{"notes.0.title": "Plan", "notes.1.title": "Lunch", "notes.2": nil}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := doHTTP(t, nil, tc.verb, base+tc.path, tc.body, nil)
				if r.code != tc.code {
					t.Fatalf("%s %s: %d %s, want %d", tc.verb, tc.path, r.code, r.body, tc.code)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				for path, want := range tc.want {
					if got := jsonAt(t, r.body, path); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s = %v, want %v in %s", path, got, want, r.body)
					}
				}
			})
		}
		t.Run("delete, success status 204", func(t *testing.T) {
			r := doHTTP(t, nil, "DELETE", base+"/v1/folders/home/notes/4", "", nil)
			if r.code != 204 || len(r.body) != 0 {
				t.Fatalf("%d %q", r.code, r.body)
			}
			if r := doHTTP(t, nil, "GET", base+"/v1/folders/home/notes/4", "", nil); r.code != 404 {
				t.Errorf("after the delete: %d %s", r.code, r.body)
			}
		})
		t.Run("HttpBody request, raw", func(t *testing.T) {
			r := doHTTP(t, nil, "POST", base+"/v1/folders/home/notes:import", "# Eggs\n\nsix\n", map[string]string{"Content-Type": "text/markdown"})
			if r.code != 200 || jsonAt(t, r.body, "title") != "Eggs" || jsonAt(t, r.body, "text") != "six" {
				t.Fatalf("%d %s", r.code, r.body)
			}
		})
		t.Run("HttpBody answer", func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+"/v1/folders/work/notes/1:export", "", nil)
			if r.code != 200 || r.header.Get("Content-Type") != "text/markdown" || string(r.body) != "# Plan\n\nship it\n" {
				t.Fatalf("%d %q %q", r.code, r.header.Get("Content-Type"), r.body)
			}
		})
		t.Run("server streaming, NDJSON", func(t *testing.T) {
			r := doHTTP(t, nil, "GET", base+"/v1/folders/work/notes:watch", "", nil)
			lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
			if r.code != 200 || len(lines) != 2 {
				t.Fatalf("%d %q", r.code, r.body)
			}
			for i, want := range []string{"Plan", "Lunch"} {
				if got := jsonAt(t, []byte(lines[i]), "result.title"); got != want {
					t.Errorf("line %d: %s, want title %s", i, lines[i], want)
				}
			}
		})
		t.Run("server streaming, SSE", func(t *testing.T) {
			req, _ := http.NewRequestWithContext(Ctx(t, Patience), "GET", base+"/v1/folders/work/notes:watch", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			var titles []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					titles = append(titles, fmt.Sprint(jsonAt(t, []byte(data), "title")))
				}
			}
			if resp.Header.Get("Content-Type") != "text/event-stream" || strings.Join(titles, ",") != "Plan,Lunch" {
				t.Fatalf("%q %v", resp.Header.Get("Content-Type"), titles)
			}
		})
	})
	t.Run("reflection through the gateway", func(t *testing.T) {
		grpcurl := filepath.Join(binaries(t), "grpcurl")
		out, err := exec.Command(grpcurl, "-plaintext", gw.Addr, "list").CombinedOutput()
		if err != nil || !strings.Contains(string(out), notesService+"\n") {
			t.Fatalf("grpcurl list: %v\n%s", err, out)
		}
		out, err = exec.Command(grpcurl, "-plaintext", gw.Addr, "describe", notesService+".GetNote").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "rpc GetNote ( .notes.v1.GetNoteRequest ) returns ( .notes.v1.Note )") {
			t.Fatalf("grpcurl describe: %v\n%s", err, out)
		}
		out, err = exec.Command(grpcurl, "-plaintext", "-d", `{"name":"folders/work/notes/2"}`, gw.Addr, notesService+"/GetNote").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"title": "Lunch"`) {
			t.Fatalf("grpcurl call: %v\n%s", err, out)
		}
	})
	t.Run("OpenAPI", func(t *testing.T) {
		r := doHTTP(t, nil, "GET", base+"/openapi.json", "", nil)
		if r.code != 200 || jsonAt(t, r.body, "openapi") != "3.1.0" {
			t.Fatalf("%d %.300s", r.code, r.body)
		}
		if got := jsonAt(t, r.body, "paths./v1/{name}.get.summary"); got != "GetNote returns one note." {
			t.Errorf("GetNote's summary %v, want its comment", got)
		}
		if got := jsonAt(t, r.body, "paths./v1/folders/{folder}:archive.post.x-edgegate-method"); got != "notes.v1.NotesService/Archive" && got != "/notes.v1.NotesService/Archive" {
			t.Errorf("the config rule's operation: %v", got)
		}
		if ct, _ := jsonAt(t, r.body, "paths./v1/{parent}/notes:import.post.requestBody.content").(map[string]any); ct["*/*"] == nil {
			t.Errorf("ImportNote's request body %v, want raw (*/*)", ct)
		}
		schemas, _ := jsonAt(t, r.body, "components.schemas").(map[string]any)
		note, _ := schemas["notes.v1.Note"].(map[string]any)
		if got := fmt.Sprint(note["required"]); got != "[title]" {
			t.Errorf("Note's required fields %v, want [title] (REQUIRED)", got)
		}
	})
	t.Run("routes", func(t *testing.T) {
		_, body := adminGet(t, gw, "/routes")
		var routes struct {
			REST []struct{ HTTP, Path, Method, Cluster, Source string }
		}
		if err := json.Unmarshal([]byte(body), &routes); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range routes.REST {
			got = append(got, r.HTTP+" "+r.Path+" "+r.Method+" "+r.Cluster+" "+r.Source)
		}
		for _, want := range []string{
			"GET /v1/{name=folders/*/notes/*} /notes.v1.NotesService/GetNote notes " + source,
			"POST /v1/folders/{folder}:archive /notes.v1.NotesService/Archive notes " + source + "+config",
		} {
			if !slices.Contains(got, want) {
				t.Errorf("/routes lacks %q:\n%s", want, strings.Join(got, "\n"))
			}
		}
		if len(got) != 12 {
			t.Errorf("/routes has %d REST bindings, want the 12 of the notes API:\n%s", len(got), strings.Join(got, "\n"))
		}
	})
}

// notesWebClient is a gRPC-Web client (connect-go) of one method of api,
// with dynamic messages.
func notesWebClient(api *notesAPI, base, method string) *connect.Client[dynamicpb.Message, dynamicpb.Message] {
	md := api.method(method)
	return connect.NewClient[dynamicpb.Message, dynamicpb.Message](http.DefaultClient, base+method,
		connect.WithGRPCWeb(), connect.WithSchema(md),
		connect.WithResponseInitializer(func(spec connect.Spec, msg any) error {
			m, ok := msg.(*dynamicpb.Message)
			if !ok {
				return fmt.Errorf("%T is not a dynamic message", msg)
			}
			*m = *dynamicpb.NewMessage(spec.Schema.(protoreflect.MethodDescriptor).Output())
			return nil
		}))
}

// readySchema returns /readyz's status code and what it says of the
// descriptors of cluster.
func readySchema(t *testing.T, gw *Gateway, cluster string) (int, map[string]any) {
	t.Helper()
	code, body := adminGet(t, gw, "/readyz")
	st, _ := jsonAt(t, []byte(body), "schema."+cluster).(map[string]any)
	return code, st
}

// jsonAt is the value at path ("a.0.b": fields and list indexes) of the
// JSON document b; nil when there is none.
func jsonAt(t *testing.T, b []byte, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// A reload picks up a service the upstream added, read again from its
// reflection: its REST routes appear without a restart. The interval is
// an hour, so the reload is what reads it.
func TestOwnAPIReloadAddsAService(t *testing.T) {
	notes := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, notes, "127.0.0.1:0", true, notesService)
	yaml := notesConfig(up.addr, "    reflection: {refresh_interval: 1h}\n", "")
	gw := StartGateway(t, yaml)
	base := "http://" + gw.Addr
	if r := doHTTP(t, nil, "GET", base+"/v1/tags", "", nil); r.code != 404 {
		t.Fatalf("before: %d %s", r.code, r.body)
	}
	both := compileNotes(t, "notes/v1/notes.proto", "notes/v1/tags.proto")
	up.stop()
	startNotes(t, both, up.addr, true, notesService, tagsService)
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// The reload reads the cluster again; when its connection has not yet
	// seen the restart, that read fails and the watch reads again a second
	// later (not an hour later).
	Eventually(t, 10*time.Second, func() error {
		if r := doHTTP(t, nil, "GET", base+"/v1/tags", "", nil); r.code != 200 || fmt.Sprint(jsonAt(t, r.body, "tags")) != "[a b c]" {
			return fmt.Errorf("after the reload: %d %s", r.code, r.body)
		}
		return nil
	})
	if r := doHTTP(t, nil, "GET", base+"/v1/folders/work/notes/1", "", nil); r.code != 200 {
		t.Errorf("the first service after the reload: %d %s", r.code, r.body)
	}
	gw.Logs.WaitContains(t, `"msg":"schema from reflection changed"`)
}

// A service the upstream adds is found by the next background read, and
// served without a reload.
func TestOwnAPIRefreshAddsAService(t *testing.T) {
	notes := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, notes, "127.0.0.1:0", true, notesService)
	gw := StartGateway(t, notesConfig(up.addr, "    reflection: {refresh_interval: 1s}\n", ""))
	base := "http://" + gw.Addr
	both := compileNotes(t, "notes/v1/notes.proto", "notes/v1/tags.proto")
	up.stop()
	startNotes(t, both, up.addr, true, notesService, tagsService)
	Eventually(t, 10*time.Second, func() error {
		if r := doHTTP(t, nil, "GET", base+"/v1/tags", "", nil); r.code != 200 {
			return fmt.Errorf("GET /v1/tags: %d %s", r.code, r.body)
		}
		return nil
	})
	gw.Logs.WaitContains(t, `"msg":"schema rebuilt from reflection"`)
}

// An upstream that serves no reflection: a clear log line, /readyz says
// so (and stays ready: native gRPC needs no descriptors), the metric is 0,
// and the other services keep serving on every door.
func TestOwnAPIUpstreamWithoutReflection(t *testing.T) {
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", false, notesService)
	echo := StartEcho(t, "echo")
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: notes
    endpoints: [%q]
    reflection: {}
  - name: echo
    endpoints: [%q]
routes:
  - {name: notes, match: {package: notes.v1}, cluster: notes}
  - {name: echo, match: {service: edgegate.testing.v1.EchoService}, cluster: echo}
`, up.addr, echo.Addr))
	gw.Logs.WaitContains(t, "cluster does not serve gRPC server reflection")
	if !strings.Contains(gw.Logs.String(), `"msg":"schema from reflection unavailable, no set yet"`) {
		t.Errorf("no warning line:\n%s", gw.Logs.String())
	}
	Eventually(t, 10*time.Second, func() error {
		if code, _ := adminGet(t, gw, "/readyz"); code != 200 {
			return fmt.Errorf("/readyz: %d", code)
		}
		return nil
	})
	if code, st := readySchema(t, gw, "notes"); code != 200 || st["status"] != "never" ||
		!strings.HasPrefix(fmt.Sprint(st["error"]), "cluster does not serve gRPC server reflection") || st["since"] == nil {
		t.Errorf("/readyz: %d %v", code, st)
	}
	if m := sample(scrape(t, gw), "edgegate_schema_reflection_up", map[string]string{"cluster": "notes"}); m == nil || m.GetGauge().GetValue() != 0 {
		t.Errorf("edgegate_schema_reflection_up = %v, want 0", m)
	}
	base := "http://" + gw.Addr
	if r := doHTTP(t, nil, "POST", base+"/v1/echo:unary", `{"message":"hi"}`, nil); r.code != 200 {
		t.Errorf("REST echo: %d %s", r.code, r.body)
	}
	// Native gRPC of the notes service needs no descriptors.
	n := dynamicpb.NewMessage(api.method("/notes.v1.NotesService/GetNote").Output())
	if err := Dial(t, gw.Addr).Invoke(Ctx(t, Patience), "/notes.v1.NotesService/GetNote",
		api.message("notes.v1.GetNoteRequest", map[string]any{"name": "folders/work/notes/1"}), n); err != nil || getString(n, "title") != "Plan" {
		t.Errorf("native GetNote: %v %v", n, err)
	}
	if r := doHTTP(t, nil, "GET", base+"/v1/folders/work/notes/1", "", nil); r.code != 404 {
		t.Errorf("REST of the unread service: %d %s, want 404", r.code, r.body)
	}
}

// `edgegate routes` and `edgegate openapi` read the clusters with server
// reflection: the discovered bindings are listed with their source, and
// described; a cluster that cannot be read is a warning on stderr.
func TestOwnAPICommands(t *testing.T) {
	bin := filepath.Join(binaries(t), "edgegate")
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", true, notesService)
	file := WriteFile(t, t.TempDir(), "notes.yaml", []byte(notesConfig(up.addr, "    reflection: {}\n", "")))
	out, err := exec.Command(bin, "routes", "-c", file).CombinedOutput()
	flat := strings.Join(strings.Fields(string(out)), " ")
	if err != nil || !strings.Contains(flat, "GET /v1/{name=folders/*/notes/*} → notes.v1.NotesService/GetNote → notes reflection:notes") ||
		!strings.Contains(flat, "POST /v1/folders/{folder}:archive → notes.v1.NotesService/Archive → notes reflection:notes+config") {
		t.Fatalf("routes: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "openapi", "-c", file)
	doc, err := cmd.Output()
	if err != nil || jsonAt(t, doc, "openapi") != "3.1.0" || jsonAt(t, doc, "paths./v1/{name}.get.summary") != "GetNote returns one note." {
		t.Fatalf("openapi: %v\n%.500s", err, doc)
	}
	// The upstream gone: routes still prints the table, and says why the
	// notes bindings are missing.
	up.stop()
	out, err = exec.Command(bin, "routes", "-c", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "schema from reflection unavailable") || strings.Contains(string(out), "GetNote") ||
		!strings.Contains(strings.Join(strings.Fields(string(out)), " "), "notes package notes.v1 notes") {
		t.Fatalf("routes, upstream down: %v\n%s", err, out)
	}
}

// Two sources that describe one service differently are an error naming
// both: validate fails, and a reload that brings the second keeps the
// configuration in force.
func TestOwnAPIConflictingSources(t *testing.T) {
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", true, notesService)
	dir := t.TempDir()
	set := api.writeSet(t, dir)
	// Another version of the file: a field more in Note.
	other := compileNotes(t, "notes/v1/notes.proto")
	for _, f := range other.set.GetFile() {
		if f.GetName() == "notes/v1/notes.proto" {
			for _, m := range f.GetMessageType() {
				if m.GetName() == "Note" {
					m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
						Name: proto.String("color"), JsonName: proto.String("color"), Number: proto.Int32(99),
						Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
					})
				}
			}
		}
	}
	otherSet := WriteFile(t, dir, "other.binpb", mustMarshal(t, other.set))
	yaml := notesConfig(up.addr, "", fmt.Sprintf("  descriptor_sets: [%q, %q]\n", set, otherSet))
	err := validate("conflict.yaml", yaml)
	if err == nil || !strings.Contains(err.Error(), "file:"+set) || !strings.Contains(err.Error(), "file:"+otherSet) || !strings.Contains(err.Error(), "notes/v1/notes.proto") {
		t.Fatalf("validate: %v, want an error naming both sources and the file", err)
	}
	gw := StartGateway(t, notesConfig(up.addr, "", fmt.Sprintf("  descriptor_sets: [%q]\n", set)))
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(cfg); err == nil || !strings.Contains(err.Error(), "describe notes/v1/notes.proto differently") {
		t.Fatalf("reload: %v, want the conflict", err)
	}
	if r := doHTTP(t, nil, "GET", "http://"+gw.Addr+"/v1/folders/work/notes/1", "", nil); r.code != 200 {
		t.Errorf("after the refused reload: %d %s", r.code, r.body)
	}
	// Reflection against a descriptor set of another version: the same.
	yaml = notesConfig(up.addr, "    reflection: {}\n", fmt.Sprintf("  descriptor_sets: [%q]\n", otherSet))
	cfg, err = config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(cfg); err == nil || !strings.Contains(err.Error(), "reflection:notes") || !strings.Contains(err.Error(), "file:"+otherSet) {
		t.Fatalf("reload with reflection: %v, want the conflict naming both", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schema.default_bindings gives a routed method without a binding
// POST /{package.Service}/{Method} with its request as the JSON body;
// the gRPC-Web door on the same path is unchanged.
func TestOwnAPIDefaultBindings(t *testing.T) {
	api := compileNotes(t, "notes/v1/notes.proto")
	up := startNotes(t, api, "127.0.0.1:0", true, notesService)
	gw := StartGateway(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: notes, endpoints: [%q], reflection: {}}
routes:
  - {match: {package: notes.v1}, cluster: notes}
schema: {default_bindings: true}
`, up.addr))
	base := "http://" + gw.Addr
	r := doHTTP(t, nil, "POST", base+"/notes.v1.NotesService/Archive", `{"folder":"work"}`, nil)
	if r.code != 200 || jsonAt(t, r.body, "archived") != 2.0 {
		t.Fatalf("default binding: %d %s", r.code, r.body)
	}
	// An annotated method keeps its own bindings only.
	if r := doHTTP(t, nil, "POST", base+"/notes.v1.NotesService/GetNote", `{"name":"folders/work/notes/1"}`, nil); r.code != 404 {
		t.Errorf("annotated method at a default path: %d %s, want 404", r.code, r.body)
	}
	resp, err := notesWebClient(api, base, "/notes.v1.NotesService/Archive").CallUnary(Ctx(t, Patience),
		connect.NewRequest(api.message("notes.v1.ArchiveRequest", map[string]any{"folder": "home"})))
	if err != nil || resp.Msg.Get(resp.Msg.Descriptor().Fields().ByName("archived")).Int() != 1 {
		t.Fatalf("gRPC-Web on the same path: %v %v", resp, err)
	}
	_, body := adminGet(t, gw, "/routes")
	if !strings.Contains(body, `"source": "reflection:notes+default"`) {
		t.Errorf("/routes: %s", body)
	}
}
