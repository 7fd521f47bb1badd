package openapi

// The OpenAPI 3.1 objects Generate writes: only the fields it sets. Struct
// fields marshal in their order, maps with sorted keys, so the output is
// deterministic.

type document struct {
	OpenAPI    string               `json:"openapi"`
	Info       info                 `json:"info"`
	Tags       []tag                `json:"tags,omitempty"`
	Paths      map[string]*pathItem `json:"paths"`
	Components components           `json:"components"`
	// Omitted are the bindings that OpenAPI cannot tell apart from one
	// already in paths.
	Omitted []omitted `json:"x-edgegate-omitted,omitempty"`
}

type info struct {
	Title   string `json:"title"`
	Version string `json:"version"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type omitted struct {
	Method string `json:"method"`
	Verb   string `json:"verb"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

type components struct {
	Schemas map[string]*schemaObj `json:"schemas"`
}

// pathItem has the operations of one path; Custom are those of HTTP
// methods that OpenAPI 3.1 has no field for (google.api.http custom
// kinds), by method.
type pathItem struct {
	Get     *operation            `json:"get,omitempty"`
	Put     *operation            `json:"put,omitempty"`
	Post    *operation            `json:"post,omitempty"`
	Delete  *operation            `json:"delete,omitempty"`
	Options *operation            `json:"options,omitempty"`
	Head    *operation            `json:"head,omitempty"`
	Patch   *operation            `json:"patch,omitempty"`
	Trace   *operation            `json:"trace,omitempty"`
	Custom  map[string]*operation `json:"x-edgegate-methods,omitempty"`
}

// set puts op at verb.
func (p *pathItem) set(verb string, op *operation) {
	switch verb {
	case "GET":
		p.Get = op
	case "PUT":
		p.Put = op
	case "POST":
		p.Post = op
	case "DELETE":
		p.Delete = op
	case "OPTIONS":
		p.Options = op
	case "HEAD":
		p.Head = op
	case "PATCH":
		p.Patch = op
	case "TRACE":
		p.Trace = op
	default:
		if p.Custom == nil {
			p.Custom = map[string]*operation{}
		}
		p.Custom[verb] = op
	}
}

type operation struct {
	Tags        []string             `json:"tags,omitempty"`
	Summary     string               `json:"summary,omitempty"`
	Description string               `json:"description,omitempty"`
	OperationID string               `json:"operationId"`
	Parameters  []*parameter         `json:"parameters,omitempty"`
	RequestBody *requestBody         `json:"requestBody,omitempty"`
	Responses   map[string]*response `json:"responses"`
	Deprecated  bool                 `json:"deprecated,omitempty"`
	// Method is the gRPC method the operation calls ("/pkg.Service/Method").
	Method string `json:"x-edgegate-method"`
	// Streaming is "server", "client" or "bidi" for a streaming method.
	Streaming string `json:"x-edgegate-streaming,omitempty"`
}

type parameter struct {
	Name        string                `json:"name"`
	In          string                `json:"in"`
	Description string                `json:"description,omitempty"`
	Required    bool                  `json:"required,omitempty"`
	Deprecated  bool                  `json:"deprecated,omitempty"`
	Style       string                `json:"style,omitempty"`
	Explode     *bool                 `json:"explode,omitempty"`
	Schema      *schemaObj            `json:"schema,omitempty"`
	Content     map[string]*mediaType `json:"content,omitempty"`
}

type requestBody struct {
	Description string                `json:"description,omitempty"`
	Content     map[string]*mediaType `json:"content"`
}

type response struct {
	Description string                `json:"description"`
	Content     map[string]*mediaType `json:"content,omitempty"`
}

type mediaType struct {
	Schema *schemaObj `json:"schema,omitempty"`
}

// schemaObj is a JSON Schema 2020-12 schema (OpenAPI 3.1's dialect). The
// zero value is {}, any value.
type schemaObj struct {
	Ref         string `json:"$ref,omitempty"`
	Description string `json:"description,omitempty"`
	// Type is a string or, for a type that admits null, a []string.
	Type                 any                   `json:"type,omitempty"`
	Format               string                `json:"format,omitempty"`
	ContentEncoding      string                `json:"contentEncoding,omitempty"`
	Pattern              string                `json:"pattern,omitempty"`
	Minimum              *int64                `json:"minimum,omitempty"`
	Maximum              *int64                `json:"maximum,omitempty"`
	Enum                 []any                 `json:"enum,omitempty"`
	Items                *schemaObj            `json:"items,omitempty"`
	Properties           map[string]*schemaObj `json:"properties,omitempty"`
	Required             []string              `json:"required,omitempty"`
	AdditionalProperties any                   `json:"additionalProperties,omitempty"`
	PropertyNames        *schemaObj            `json:"propertyNames,omitempty"`
	OneOf                []*schemaObj          `json:"oneOf,omitempty"`
	AnyOf                []*schemaObj          `json:"anyOf,omitempty"`
	ReadOnly             bool                  `json:"readOnly,omitempty"`
	WriteOnly            bool                  `json:"writeOnly,omitempty"`
	Deprecated           bool                  `json:"deprecated,omitempty"`
	Examples             []any                 `json:"examples,omitempty"`
}
