package openapi_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// checkDocument fails t unless doc is a valid OpenAPI 3.1 document: valid
// against the OpenAPI 3.1 JSON schema (libopenapi-validator), a model
// libopenapi builds, and of the rules the schema cannot say — every $ref
// resolves, each path's parameters are those of its template, no two
// paths differ only in their parameters' names, operationIds are unique.
// It returns the model.
func checkDocument(t *testing.T, doc []byte) *v3.Document {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.GetVersion(); v != "3.1.0" {
		t.Errorf("version %q", v)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
			for _, s := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s", s.Reason, s.FieldPath)
			}
		}
		t.FailNow()
	}
	m, err := d.BuildV3Model()
	if err != nil {
		t.Fatalf("model: %v", err)
	}
	// Every schema is a JSON Schema that compiles (the document's
	// schema does not look into them).
	sv := schema_validation.NewSchemaValidator()
	compiles := func(where string, proxy *base.SchemaProxy) {
		if proxy == nil {
			return
		}
		s := proxy.Schema()
		if s == nil {
			t.Errorf("schema of %s: %v", where, proxy.GetBuildError())
			return
		}
		_, errs := sv.ValidateSchemaBytes(s, []byte("{}"))
		for _, e := range errs {
			if strings.Contains(e.Message, "compilation") {
				t.Errorf("schema of %s: %s", where, e.Reason)
			}
		}
	}
	content := func(where string, c *orderedmap.Map[string, *v3.MediaType]) {
		if c == nil {
			return
		}
		for ct, mt := range c.FromOldest() {
			compiles(where+" "+ct, mt.Schema)
		}
	}
	for name, proxy := range m.Model.Components.Schemas.FromOldest() {
		compiles(name, proxy)
	}
	if m.Model.Paths != nil {
		for path, item := range m.Model.Paths.PathItems.FromOldest() {
			for verb, op := range item.GetOperations().FromOldest() {
				where := verb + " " + path
				for _, p := range op.Parameters {
					compiles(where+" parameter "+p.Name, p.Schema)
					content(where+" parameter "+p.Name, p.Content)
				}
				if op.RequestBody != nil {
					content(where+" body", op.RequestBody.Content)
				}
				if op.Responses != nil {
					if op.Responses.Default != nil {
						content(where+" default", op.Responses.Default.Content)
					}
					for code, r := range op.Responses.Codes.FromOldest() {
						content(where+" "+code, r.Content)
					}
				}
			}
		}
	}

	var raw struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	var all any
	if err := json.Unmarshal(doc, &all); err != nil {
		t.Fatal(err)
	}
	walkRefs(all, func(ref string) {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if _, found := raw.Components.Schemas[name]; !ok || !found {
			t.Errorf("$ref %s resolves to nothing", ref)
		}
	})
	templateParam := regexp.MustCompile(`\{([^{}]+)\}`)
	shapes := map[string]string{}
	ids := map[string]string{}
	for path, item := range raw.Paths {
		shape := templateParam.ReplaceAllString(path, "{}")
		if other, ok := shapes[shape]; ok {
			t.Errorf("paths %s and %s differ only in their parameters' names", path, other)
		}
		shapes[shape] = path
		var want []string
		for _, m := range templateParam.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		ops := map[string]json.RawMessage{}
		for k, v := range item {
			if k == "x-edgegate-methods" {
				var custom map[string]json.RawMessage
				if err := json.Unmarshal(v, &custom); err != nil {
					t.Fatal(err)
				}
				for verb, op := range custom {
					ops[verb] = op
				}
				continue
			}
			ops[k] = v
		}
		for verb, rawOp := range ops {
			var op struct {
				OperationID string `json:"operationId"`
				Parameters  []struct {
					Name, In string
					Required bool
				} `json:"parameters"`
				Responses map[string]struct {
					Description *string `json:"description"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatal(err)
			}
			if prev, ok := ids[op.OperationID]; ok {
				t.Errorf("operationId %s of %s %s and of %s", op.OperationID, verb, path, prev)
			}
			ids[op.OperationID] = verb + " " + path
			var got []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					got = append(got, p.Name)
					if !p.Required {
						t.Errorf("%s %s: path parameter %s not required", verb, path, p.Name)
					}
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: path parameters %v, template's %v", verb, path, got, want)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s: no responses", verb, path)
			}
			for code, r := range op.Responses {
				if r.Description == nil {
					t.Errorf("%s %s: response %s without a description", verb, path, code)
				}
			}
		}
	}
	return &m.Model
}

// walkRefs calls f with every $ref of v.
func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				f(s)
			}
			walkRefs(x, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, f)
		}
	}
}

// conforms fails t unless m in JSON (marshaled with o) is valid against
// the component schema of its message.
func conforms(t *testing.T, doc *v3.Document, m proto.Message, o protojson.MarshalOptions) {
	t.Helper()
	name := string(m.ProtoReflect().Descriptor().FullName())
	b, err := o.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := valid(t, doc, name, b); !ok {
		t.Errorf("%s %s is not valid against its schema: %s", name, b, errs)
	}
}

// valid reports whether the JSON b is valid against the component schema
// name, and why not.
func valid(t *testing.T, doc *v3.Document, name string, b []byte) (bool, string) {
	t.Helper()
	proxy := doc.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		t.Fatalf("no schema %s", name)
	}
	s := proxy.Schema()
	if s == nil {
		t.Fatalf("schema %s: %v", name, proxy.GetBuildError())
	}
	ok, errs := schema_validation.NewSchemaValidator().ValidateSchemaBytes(s, b)
	var why []string
	for _, e := range errs {
		why = append(why, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			why = append(why, f.Reason+" at "+f.FieldPath)
		}
	}
	return ok, strings.Join(why, "; ")
}
