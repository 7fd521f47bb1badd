package openapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
	usersv1 "github.com/edgegate/edgegate/gen/shop/users/v1"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/schema/openapi"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// exampleRegistry is the registry of the example protos, compiled in, with
// a rule that sets CreateOrder's success status.
func exampleRegistry(t *testing.T) *schema.Registry {
	t.Helper()
	r, err := schema.Build(schema.Input{
		Compiled: []schema.Compiled{
			{File: catalogv1.File_shop_catalog_v1_catalog_proto},
			{File: ordersv1.File_shop_orders_v1_orders_proto},
			{File: usersv1.File_shop_users_v1_users_proto},
			{File: testingv1.File_edgegate_testing_v1_echo_proto},
		},
		Rules: []*configv1.HttpRule{{Method: "shop.orders.v1.OrdersService/CreateOrder", Pattern: &configv1.HttpRule_Post{Post: "/v1/orders"}, Body: "*", SuccessStatus: 201}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// golden compares got with testdata/name, or with -update writes it.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got %q\nwant %q\n(go test -update rewrites it)", path, i+1, g, w)
			}
		}
	}
}

func TestExampleGolden(t *testing.T) {
	r := exampleRegistry(t)
	for name, o := range map[string]openapi.Options{
		"example.openapi.json":             {},
		"example_proto_names.openapi.json": {Title: "shop", Version: "1.2.3", UseProtoNames: true, EnumsAsNumbers: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := openapi.Generate(r, o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, got)
			checkDocument(t, got)
		})
	}
}

// The example's messages, as the REST door writes them (protojson, with
// and without proto names and enum numbers, populated fields or all), are
// valid against their schemas; a wrong type is not.
func TestExampleJSONConforms(t *testing.T) {
	r := exampleRegistry(t)
	detail, err := anypb.New(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "items", Description: "empty"}}})
	if err != nil {
		t.Fatal(err)
	}
	book := &catalogv1.Book{
		Name: "shelves/s/books/b", Title: "T", Author: "A", Genre: catalogv1.Genre_GENRE_SCIENCE,
		PriceCents: 1 << 40, Stock: -3, Tags: []string{"x", "y"},
		PublishTime: timestamppb.New(time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)), ReadingTime: durationpb.New(90*time.Minute + 500*time.Millisecond),
	}
	msgs := []proto.Message{
		book,
		&catalogv1.ListBooksResponse{Books: []*catalogv1.Book{book, {}}, NextPageToken: "n"},
		&catalogv1.WatchBooksResponse{Kind: catalogv1.WatchBooksResponse_KIND_UPDATED, Book: book},
		&ordersv1.Order{OrderId: "o", UserId: "u", Items: []*ordersv1.LineItem{{Book: "b", Quantity: 2}}, CreateTime: timestamppb.Now()},
		&testingv1.EchoRequest{Message: "m", Payload: []byte{0, 1, 0xff}, Repeat: 2, Delay: durationpb.New(-time.Second), FailWith: &status.Status{Code: 3, Message: "bad", Details: []*anypb.Any{detail}}},
		&status.Status{Code: 5, Message: "nope", Details: []*anypb.Any{detail}},
	}
	for name, o := range map[string]struct {
		opts openapi.Options
		json protojson.MarshalOptions
	}{
		"default":     {openapi.Options{}, protojson.MarshalOptions{}},
		"unpopulated": {openapi.Options{EmitUnpopulated: true}, protojson.MarshalOptions{EmitUnpopulated: true}},
		"proto names": {openapi.Options{UseProtoNames: true, EnumsAsNumbers: true}, protojson.MarshalOptions{UseProtoNames: true, UseEnumNumbers: true}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := openapi.Generate(r, o.opts)
			if err != nil {
				t.Fatal(err)
			}
			doc := checkDocument(t, out)
			for _, m := range msgs {
				conforms(t, doc, m, o.json)
			}
		})
	}
	out, err := openapi.Generate(r, openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := checkDocument(t, out)
	for _, bad := range []string{`{"priceCents": 5}`, `{"genre": "GENRE_NONE"}`, `{"title": 1}`, `{"readingTime": "5m"}`} {
		if ok, _ := valid(t, doc, "shop.catalog.v1.Book", []byte(bad)); ok {
			t.Errorf("%s is valid as a Book", bad)
		}
	}
}

// Compiled-in descriptors carry no comments: the example has no
// descriptions of its own, and no error for it.
func TestCompiledInHasNoDescriptions(t *testing.T) {
	out, err := openapi.Generate(exampleRegistry(t), openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tags       []map[string]any `json:"tags"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if d, ok := doc.Components.Schemas["shop.catalog.v1.Book"]["description"]; ok {
		t.Errorf("Book described %q", d)
	}
	for _, tag := range doc.Tags {
		if d, ok := tag["description"]; ok {
			t.Errorf("tag %v described %q", tag["name"], d)
		}
	}
}

// A nil registry's document has no paths, and is valid.
func TestNilRegistry(t *testing.T) {
	out, err := openapi.Generate(nil, openapi.Options{Title: "empty", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out)
	if !bytes.Contains(out, []byte(`"paths": {}`)) || !bytes.Contains(out, []byte(`"title": "empty"`)) {
		t.Errorf("%s", out)
	}
}
