package openapi_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	_ "google.golang.org/genproto/googleapis/api/annotations" // google/api/*.proto for the compiler
	_ "google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/anypb" // google/protobuf/*.proto for the compiler
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/schema/openapi"
)

// compileSet compiles the files of testdata/ with their source info into
// a descriptor set, as `buf build -o` writes one: their imports (resolved
// from the descriptors compiled into the binary) first. The set goes
// through its wire form, as a set read from a file does.
func compileSet(t *testing.T, files ...string) *descriptorpb.FileDescriptorSet {
	t.Helper()
	c := protocompile.Compiler{
		Resolver: protocompile.CompositeResolver{
			&protocompile.SourceResolver{ImportPaths: []string{"testdata"}},
			protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
				fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
				if err != nil {
					return protocompile.SearchResult{}, err
				}
				return protocompile.SearchResult{Desc: fd}, nil
			}),
		},
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	res, err := c.Compile(context.Background(), files...)
	if err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var visit func(fd protoreflect.FileDescriptor)
	visit = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			visit(imps.Get(i).FileDescriptor)
		}
		if r, ok := fd.(linker.Result); ok {
			set.File = append(set.File, r.FileDescriptorProto())
		} else {
			set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
		}
	}
	for _, f := range res {
		visit(f)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	read := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, read); err != nil {
		t.Fatal(err)
	}
	for _, f := range read.GetFile() {
		if slices.Contains(files, f.GetName()) && f.GetSourceCodeInfo() == nil {
			t.Fatalf("%s has no source info", f.GetName())
		}
	}
	return read
}

// libraryRegistry is the registry of testdata/library.proto, from a
// descriptor set with source info, with default bindings and a rule that
// makes Purge's success 204.
func libraryRegistry(t *testing.T) *schema.Registry {
	t.Helper()
	r, err := schema.Build(schema.Input{
		Sets:            []schema.FileSet{{Source: schema.Source{Kind: schema.SourceFile, Name: "library.binpb"}, Files: compileSet(t, "library.proto")}},
		Rules:           []*configv1.HttpRule{{Method: "edgegate.openapitest.v1.LibraryService/Purge", Pattern: &configv1.HttpRule_Delete{Delete: "/v1/{name=shelves/*}:purge"}, SuccessStatus: 204}},
		DefaultBindings: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLibraryGolden(t *testing.T) {
	out, err := openapi.Generate(libraryRegistry(t), openapi.Options{Title: "library", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "library.openapi.json", out)
	checkDocument(t, out)
}

// obj is a JSON object of the document, got at a path of keys.
type obj map[string]any

func (o obj) at(t *testing.T, keys ...string) obj {
	t.Helper()
	cur := o
	for i, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			t.Fatalf("no object at %s", strings.Join(keys[:i+1], " "))
		}
		cur = next
	}
	return cur
}

// params are the parameters of an operation, by name.
func (o obj) params() map[string]obj {
	out := map[string]obj{}
	ps, _ := o["parameters"].([]any)
	for _, p := range ps {
		po := obj(p.(map[string]any))
		out[po["name"].(string)] = po
	}
	return out
}

func decode(t *testing.T, b []byte) obj {
	t.Helper()
	var o obj
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func strs(v any) []string {
	var out []string
	vs, _ := v.([]any)
	for _, x := range vs {
		out = append(out, x.(string))
	}
	return out
}

// What the generator makes of the library, said without the golden file.
func TestLibraryContracts(t *testing.T) {
	out, err := openapi.Generate(libraryRegistry(t), openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, out)
	paths := doc.at(t, "paths")

	t.Run("comments", func(t *testing.T) {
		tags := doc["tags"].([]any)
		if d := tags[0].(map[string]any)["description"]; d != "LibraryService keeps shelves of documents.\n\nA second paragraph of the service." {
			t.Errorf("service description %q", d)
		}
		op := doc.at(t, "paths", "/v1/shelves/{name}", "get")
		if op["summary"] != "GetShelf returns a shelf." || !strings.HasPrefix(op["description"].(string), "GetShelf returns a shelf. Its path and GetDocument's are one OpenAPI\npath") {
			t.Errorf("operation %q %q", op["summary"], op["description"])
		}
		if d := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Document")["description"]; d != "Document is a text on a shelf." {
			t.Errorf("message description %q", d)
		}
		if d := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Shelf", "properties", "name")["description"]; d != "The resource name, shelves/{shelf}." {
			t.Errorf("field description %q", d)
		}
		if d := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Shelf", "properties", "counts")["description"]; d != "Documents per kind." {
			t.Errorf("trailing comment %q", d)
		}
		kind := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Document.Kind")
		if d := kind["description"]; d != "Kind says what a document is.\n\n- KIND_UNSPECIFIED (0): Not said.\n- KIND_BOOK (1): A book." {
			t.Errorf("enum description %q", d)
		}
		if d := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Document", "properties", "scannedBy")["description"]; d != "The scanner's name.\n\nMember of oneof `source`: at most one of `scannedBy`, `importedFrom` is set." {
			t.Errorf("oneof member %q", d)
		}
	})

	t.Run("field behaviour", func(t *testing.T) {
		shelf := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Shelf")
		if r := strs(shelf["required"]); !slices.Equal(r, []string{"theme"}) {
			t.Errorf("Shelf required %v", r)
		}
		if shelf.at(t, "properties", "createTime")["readOnly"] != true {
			t.Error("OUTPUT_ONLY is not readOnly")
		}
		document := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Document")
		if r := strs(document["required"]); !slices.Equal(r, []string{"title"}) {
			t.Errorf("Document required %v", r)
		}
		if document.at(t, "properties", "secret")["writeOnly"] != true || document.at(t, "properties", "size")["readOnly"] != true {
			t.Error("INPUT_ONLY, OUTPUT_ONLY")
		}
		if document.at(t, "properties", "oldTitle")["deprecated"] != true {
			t.Error("deprecated field")
		}
		if p := doc.at(t, "paths", "/v1/authors/{filter.author}/documents", "get").params()["query"]; p["required"] != true {
			t.Errorf("REQUIRED query parameter %v", p)
		}
	})

	t.Run("paths", func(t *testing.T) {
		for _, p := range []string{"/v1/shelves/{name}", "/v1/shelves/{name}/documents/{name_2}", "/v1/{name}:download", "/v1/{parent}/documents", "/v1/files/{path}", "/v1/tree/{root}", "/v1/authors/{filter.author}/documents", "/v1/documents", "/edgegate.openapitest.v1.LibraryService/Ping"} {
			if _, ok := paths[p]; !ok {
				t.Errorf("no path %s", p)
			}
		}
		// UpdateDocument's path has GetDocument's shape: its names.
		patch := doc.at(t, "paths", "/v1/shelves/{name}/documents/{name_2}", "patch")
		if d, _ := patch.params()["name"]["description"].(string); !strings.HasSuffix(d, "\n\nWildcard 1 of 2 of the request field `document.name` (`shelves/*/documents/*`).") {
			t.Errorf("expanded parameter %q", d)
		}
		omitted := doc["x-edgegate-omitted"].([]any)
		if len(omitted) != 1 || omitted[0].(map[string]any)["method"] != "/edgegate.openapitest.v1.LibraryService/Browse" {
			t.Errorf("omitted %v", omitted)
		}
		files := doc.at(t, "paths", "/v1/files/{path}", "get")
		if files["operationId"] != "LibraryService_Search_2" || files.params()["path"].at(t, "schema")["pattern"] != "^.*$" {
			t.Errorf("** binding %v", files)
		}
		if _, ok := paths["/v1/documents"].(map[string]any)["x-edgegate-methods"].(map[string]any)["SEARCH"]; !ok {
			t.Error("custom method")
		}
		if _, ok := paths["/edgegate.openapitest.v1.LibraryService/Chat"]; ok {
			t.Error("a default binding of a client stream")
		}
	})

	t.Run("query parameters", func(t *testing.T) {
		ps := doc.at(t, "paths", "/v1/authors/{filter.author}/documents", "get").params()
		var names []string
		for n := range ps {
			names = append(names, n)
		}
		slices.Sort(names)
		want := []string{"cursor", "filter.after", "filter.author", "filter.kinds", "ids", "labels", "limit", "near.name", "newestFirst", "orderBy", "path", "query", "readMask", "where"}
		if !slices.Equal(names, want) {
			t.Errorf("parameters %v, want %v", names, want)
		}
		if ps["filter.author"]["in"] != "path" || ps["filter.kinds"]["explode"] != true || ps["labels"]["style"] != "deepObject" {
			t.Errorf("parameters %v", ps)
		}
		if _, ok := ps["where"].at(t, "content")["application/json"]; !ok {
			t.Errorf("Struct parameter %v", ps["where"])
		}
		if e := strs(ps["filter.kinds"].at(t, "schema", "items")["enum"]); !slices.Equal(e, []string{"KIND_UNSPECIFIED", "KIND_BOOK", "KIND_PAPER"}) {
			t.Errorf("enum parameter %v", e)
		}
		// order_by in the path: the other member of its oneof is no parameter.
		sorted := doc.at(t, "paths", "/v1/sorted/{order_by}", "get").params()
		if _, ok := sorted["newestFirst"]; ok {
			t.Error("a member of a bound oneof")
		}
		// body "*": no query parameters.
		if ps := doc.at(t, "paths", "/v1/documents", "x-edgegate-methods", "SEARCH").params(); len(ps) != 0 {
			t.Errorf("query parameters with body *: %v", ps)
		}
	})

	t.Run("bodies", func(t *testing.T) {
		create := doc.at(t, "paths", "/v1/{parent}/documents", "post")
		if r := create.at(t, "requestBody", "content", "application/json", "schema")["$ref"]; r != "#/components/schemas/edgegate.openapitest.v1.Document" {
			t.Errorf("field body %v", r)
		}
		if _, ok := create.params()["documentId"]; !ok {
			t.Error("a field beside the body is no query parameter")
		}
		// body "*" less the path's document.name.
		update := doc.at(t, "paths", "/v1/shelves/{name}/documents/{name_2}", "patch").at(t, "requestBody", "content", "application/json", "schema")
		if !slices.Equal(strs(update["required"]), []string{"document"}) {
			t.Errorf("body required %v", update["required"])
		}
		inner := update.at(t, "properties", "document", "properties")
		if _, ok := inner["name"]; ok {
			t.Error("the path's field in the body")
		}
		if _, ok := inner["title"]; !ok {
			t.Error("body without the document's other fields")
		}
		upload := doc.at(t, "paths", "/v1/{parent}/documents:upload", "post")
		if upload["x-edgegate-streaming"] != "client" {
			t.Errorf("client stream %v", upload["x-edgegate-streaming"])
		}
		if _, ok := upload.at(t, "requestBody", "content")["application/x-ndjson"]; !ok {
			t.Errorf("client stream body %v", upload["requestBody"])
		}
	})

	t.Run("responses", func(t *testing.T) {
		titles := doc.at(t, "paths", "/v1/{parent}/titles", "get").at(t, "responses", "200", "content", "application/json", "schema")
		if titles["type"] != "array" || titles.at(t, "items")["type"] != "string" {
			t.Errorf("response_body %v", titles)
		}
		download := doc.at(t, "paths", "/v1/{name}:download", "get").at(t, "responses", "200", "content")
		if _, ok := download["*/*"]; !ok || len(download) != 1 {
			t.Errorf("HttpBody %v", download)
		}
		tail := doc.at(t, "paths", "/v1/{name}:tail", "get")
		if tail["x-edgegate-streaming"] != "server" {
			t.Error("server stream not marked")
		}
		content := tail.at(t, "responses", "200", "content")
		rec := obj(content.at(t, "application/x-ndjson", "schema")["oneOf"].([]any)[0].(map[string]any))
		if rec.at(t, "properties", "result")["$ref"] != "#/components/schemas/edgegate.openapitest.v1.Change" {
			t.Errorf("stream record %v", rec)
		}
		if _, ok := content["text/event-stream"]; !ok {
			t.Error("no text/event-stream")
		}
		if tail.at(t, "responses", "default", "content", "application/x-ndjson", "schema", "properties", "error")["$ref"] != "#/components/schemas/google.rpc.Status" {
			t.Error("stream error")
		}
		export := doc.at(t, "paths", "/v1/{name}:export", "get")
		if _, ok := export.at(t, "responses", "200", "content")["*/*"]; !ok || export["x-edgegate-streaming"] != "server" {
			t.Errorf("HttpBody stream %v", export)
		}
		purge := doc.at(t, "paths", "/v1/{name}:purge", "delete")
		if _, ok := purge.at(t, "responses", "204")["content"]; ok || purge["deprecated"] != true {
			t.Errorf("204 %v", purge)
		}
		get := doc.at(t, "paths", "/v1/shelves/{name}", "get")
		if get.at(t, "responses", "default", "content", "application/json", "schema")["$ref"] != "#/components/schemas/google.rpc.Status" {
			t.Error("error response")
		}
	})

	t.Run("recursion", func(t *testing.T) {
		node := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Node", "properties")
		if node.at(t, "children", "items")["$ref"] != "#/components/schemas/edgegate.openapitest.v1.Node" || node.at(t, "parent")["$ref"] != "#/components/schemas/edgegate.openapitest.v1.Node" {
			t.Errorf("Node %v", node)
		}
		walk := doc.at(t, "paths", "/v1/tree/{root}", "get").params()
		if _, ok := walk["match.name"]; !ok {
			t.Error("no match.name")
		}
		for n := range walk {
			if strings.HasPrefix(n, "match.parent") {
				t.Errorf("recursive parameter %s", n)
			}
		}
	})

	t.Run("well-known types", func(t *testing.T) {
		props := doc.at(t, "components", "schemas", "edgegate.openapitest.v1.Document", "properties")
		for field, want := range map[string]string{
			"metadata":    `{"type":"object"}`,
			"extra":       `{}`,
			"list":        `{"type":"array","items":{}}`,
			"version":     `{"type":["string","null"],"format":"int64"}`,
			"note":        `{"type":["string","null"]}`,
			"readingTime": `{"type":"string","format":"google-duration","pattern":"^-?[0-9]+(\\.[0-9]{1,9})?s$"}`,
			"edits":       `{"type":"array","items":{"type":"string","format":"date-time"}}`,
			"nothing":     `{"type":"null"}`,
			"shown":       `{"type":"string","format":"google-fieldmask"}`,
			"marker":      `{"type":"object"}`,
			"checksum":    `{"type":"string","format":"uint64"}`,
			"content":     `{"type":"string","format":"byte","contentEncoding":"base64"}`,
		} {
			got, err := json.Marshal(props[field])
			if err != nil {
				t.Fatal(err)
			}
			var w any
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatal(err)
			}
			wb, _ := json.Marshal(w)
			if string(got) != string(wb) {
				t.Errorf("%s: %s, want %s", field, got, wb)
			}
		}
		if props.at(t, "importedFrom")["$ref"] != "#/components/schemas/google.protobuf.Any" {
			t.Error("Any")
		}
	})
}

// The library's messages, as protojson writes them from the dynamic types
// of the registry, are valid against their schemas.
func TestLibraryJSONConforms(t *testing.T) {
	r := libraryRegistry(t)
	docs := map[bool]*v3.Document{}
	for _, protoNames := range []bool{false, true} {
		out, err := openapi.Generate(r, openapi.Options{UseProtoNames: protoNames, EmitUnpopulated: true})
		if err != nil {
			t.Fatal(err)
		}
		docs[protoNames] = checkDocument(t, out)
	}
	for name, js := range map[string]string{
		"Document": `{"name": "shelves/a/documents/b", "title": "t", "content": "AAE=", "size": "12", "kind": "KIND_BOOK",
			"importedFrom": {"@type": "type.googleapis.com/edgegate.openapitest.v1.Node", "name": "n"},
			"metadata": {"a": [1, "x", null]}, "extra": 3.5, "list": [true, {}], "version": "9", "note": "hi",
			"readingTime": "1.5s", "edits": ["2021-01-01T00:00:00Z"], "oldTitle": "o", "rating": 4, "score": 1e300,
			"ratio": 0.5, "delta": -7, "checksum": "18446744073709551615", "draft": true, "nothing": null, "public": false,
			"pages": 4294967295, "shown": "title,readingTime", "marker": {}}`,
		"Shelf":  `{"name": "shelves/a", "createTime": "2021-01-01T00:00:00.5Z", "theme": "x", "counts": {"KIND_BOOK": 2}, "byId": {"-5": {"title": "t"}}, "flags": {"true": "y"}}`,
		"Node":   `{"name": "root", "children": [{"name": "a", "children": [{"name": "b"}]}], "parent": {"name": "up"}}`,
		"Change": `{"document": {"title": "t", "scannedBy": "s"}, "time": "2021-01-01T00:00:00Z"}`,
	} {
		mt, err := r.Types().FindMessageByName(protoreflect.FullName("edgegate.openapitest.v1." + name))
		if err != nil {
			t.Fatal(err)
		}
		m := mt.New().Interface()
		if err := (protojson.UnmarshalOptions{Resolver: r.Types()}).Unmarshal([]byte(js), m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for protoNames, doc := range docs {
			for _, unpopulated := range []bool{false, true} {
				o := protojson.MarshalOptions{Resolver: r.Types(), UseProtoNames: protoNames, EmitUnpopulated: unpopulated}
				conforms(t, doc, m, o)
			}
		}
	}
}

// Two routed services of one name: operationIds and tags by full name.
func TestSharedServiceName(t *testing.T) {
	r, err := schema.Build(schema.Input{Sets: []schema.FileSet{{Source: schema.Source{Kind: schema.SourceFile, Name: "two.binpb"}, Files: compileSet(t, "library.proto", "other.proto")}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := openapi.Generate(r, openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out)
	doc := decode(t, out)
	op := doc.at(t, "paths", "/other/{name}", "get")
	if op["operationId"] != "edgegate_openapitest_other_LibraryService_GetShelf" || strs(op["tags"])[0] != "edgegate.openapitest.other.LibraryService" {
		t.Errorf("%v %v", op["operationId"], op["tags"])
	}
	if doc.at(t, "paths", "/v1/shelves/{name}", "get")["operationId"] != "edgegate_openapitest_v1_LibraryService_GetShelf" {
		t.Error("v1's operationId")
	}
}
