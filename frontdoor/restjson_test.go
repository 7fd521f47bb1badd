package frontdoor

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
)

func jsonPb() *runtime.JSONPb { return &runtime.JSONPb{} }

// streamJSON is the door's JSON with Book bodies read as a stream of
// values, as a client-streaming binding's are.
func streamJSON() restJSON {
	return restJSON{JSONPb: jsonPb(), streams: map[protoreflect.FullName]bool{"shop.catalog.v1.Book": true}}
}

// decodeAll decodes the values of body into fresh messages until the
// decoder says io.EOF or fails; it returns the messages and the error.
func decodeAll(d runtime.Decoder) ([]*catalogv1.Book, error) {
	var out []*catalogv1.Book
	for {
		b := &catalogv1.Book{}
		if err := d.Decode(b); err != nil {
			return out, err
		}
		out = append(out, b)
	}
}

func TestRESTDecoder(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string // titles of the decoded books
		err        string   // substring of the error after them; "" is io.EOF
	}{
		{name: "one", body: `{"title":"a"}`, want: []string{"a"}},
		{name: "white space only", body: " \n\t ", want: nil},
		{name: "empty", body: "", want: nil},
		{name: "a stream", body: `{"title":"a"}` + "\n" + `{"title":"b"} {"title":"c"}`, want: []string{"a", "b", "c"}},
		{name: "no space between", body: `{"title":"a"}{"title":"b"}`, want: []string{"a", "b"}},
		{name: "escaped quotes and braces in strings", body: `{"title":"x\"}{\\","author":"\\\\"}{"title":"y"}`, want: []string{`x"}{\`, "y"}},
		{name: "nested", body: `{"title":"a","tags":["{","]"],"publishTime":"2020-01-01T00:00:00Z"}`, want: []string{"a"}},
		{name: "cut short", body: `{"title":"a`, err: "unexpected EOF"},
		{name: "cut short after a value", body: `{"title":"a"}{"title":`, want: []string{"a"}, err: "unexpected EOF"},
		{name: "not JSON", body: `nope`, err: "syntax error"},
		{name: "a stray close", body: `}`, err: "syntax error"},
		{name: "a scalar for a message", body: `"x"`, err: "unexpected token"},
		{name: "unknown field", body: `{"nope":1}`, err: `unknown field "nope"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeAll(streamJSON().NewDecoder(strings.NewReader(c.body)))
			var titles []string
			for _, b := range got {
				titles = append(titles, b.GetTitle())
			}
			if strings.Join(titles, "|") != strings.Join(c.want, "|") {
				t.Errorf("decoded %q, want %q", titles, c.want)
			}
			switch {
			case c.err == "" && !errors.Is(err, io.EOF):
				t.Errorf("ended with %v, want io.EOF", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("ended with %v, want an error containing %q", err, c.err)
			}
		})
	}
}

// A body field decodes into &req.Field (a **T), allocating the message.
func TestRESTDecoderBodyField(t *testing.T) {
	req := &catalogv1.CreateBookRequest{}
	if err := (restJSON{JSONPb: jsonPb()}).NewDecoder(strings.NewReader(`{"title":"t"}`)).Decode(&req.Book); err != nil {
		t.Fatal(err)
	}
	if req.GetBook().GetTitle() != "t" {
		t.Fatalf("book %v", req.GetBook())
	}
	// A target that is not a message goes to JSONPb's decoder.
	var tags []string
	if err := (restJSON{JSONPb: jsonPb()}).NewDecoder(strings.NewReader(`["a","b"]`)).Decode(&tags); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "a,b" {
		t.Fatalf("tags %q", tags)
	}
}

// A body the HTTP door has read is taken as it is, not read again.
func TestRESTDecoderTakesReadBody(t *testing.T) {
	raw := []byte(`{"title":"a"}`)
	body := restBody{bytes.NewReader(raw), raw}
	_, _ = body.Read(make([]byte, len(raw))) // the reader is spent
	b := &catalogv1.Book{}
	if err := (restJSON{JSONPb: jsonPb()}).NewDecoder(body).Decode(b); err != nil || b.GetTitle() != "a" {
		t.Fatalf("%v %v", b, err)
	}
}

func TestRESTMarshal(t *testing.T) {
	j := restJSON{JSONPb: &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}}
	for _, v := range []any{
		&catalogv1.Book{Title: "t", PriceCents: 5},
		[]*catalogv1.Book{{Title: "a"}, {Title: "b"}},
		"plain",
	} {
		got, err := j.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := j.JSONPb.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Marshal(%v) = %s, want JSONPb's %s", v, got, want)
		}
	}
}

// FuzzRESTDecoder holds restJSON's decoder of a stream of values to
// grpc-gateway's JSONPb decoder for the first value of any body: both
// succeed with the same message, both say io.EOF, or both fail.
func FuzzRESTDecoder(f *testing.F) {
	for _, s := range []string{
		`{"title":"a"}`, `{"title":"a"} trailing`, ``, `  `, `{"title":"\"\\"}`, `{"tags":["x",{}]}`,
		`{"publishTime":"2020-01-01T00:00:00Z","readingTime":"1.5s","priceCents":"12"}`,
		`[`, `{`, `"`, `}`, `1`, `null`, `{"title":null}`, `{"genre":"GENRE_SCIENCE"}`, "{\"title\":\"\xff\"}",
		`{"title":"a",}`, `{"title":"a"}}`, `{"a":1}`, `{"title"  :  "x"  }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ours, theirs catalogv1.Book
		errOurs := streamJSON().NewDecoder(bytes.NewReader(body)).Decode(&ours)
		errTheirs := jsonPb().NewDecoder(bytes.NewReader(body)).Decode(&theirs)
		switch {
		case errTheirs == nil:
			if errOurs != nil {
				t.Fatalf("%q: JSONPb decodes %v, restJSON fails: %v", body, &theirs, errOurs)
			}
			if !proto.Equal(&ours, &theirs) {
				t.Fatalf("%q: restJSON %v, JSONPb %v", body, &ours, &theirs)
			}
		case errors.Is(errTheirs, io.EOF):
			if !errors.Is(errOurs, io.EOF) {
				t.Fatalf("%q: JSONPb says EOF, restJSON %v", body, errOurs)
			}
		default:
			if errOurs == nil || errors.Is(errOurs, io.EOF) {
				t.Fatalf("%q: JSONPb fails (%v), restJSON %v", body, errTheirs, errOurs)
			}
		}
	})
}

// A body that is not a stream holds one value: white space may follow it,
// nothing else (JSONPb's decoder ignores what follows the first value);
// the error is protojson's. A second Decode says io.EOF.
func TestRESTDecoderOneValue(t *testing.T) {
	for _, c := range []struct {
		name, body string
		title      string
		err        string // "" is success, "EOF" io.EOF
	}{
		{name: "one", body: `{"title":"a"}`, title: "a"},
		{name: "white space around", body: " \r\n{\"title\":\"a\"}\t\n ", title: "a"},
		{name: "empty", body: "", err: "EOF"},
		{name: "white space only", body: " \n", err: "EOF"},
		{name: "garbage after", body: `{"title":"a"} xyz`, err: "syntax error (line 1:15): invalid value xyz"},
		{name: "a second value", body: `{"title":"a"}{"title":"b"}`, err: "syntax error (line 1:14): unexpected token {"},
		{name: "a second value after a line", body: "{\"title\":\"a\"}\n{\"title\":\"b\"}", err: "syntax error (line 2:1): unexpected token {"},
		{name: "a comma after", body: `{"title":"a"},`, err: "unexpected token ,"},
		{name: "a stray close after", body: `{"title":"a"}}`, err: "unexpected token }"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := restJSON{JSONPb: jsonPb()}.NewDecoder(strings.NewReader(c.body))
			b := &catalogv1.Book{}
			err := d.Decode(b)
			switch {
			case c.err == "" && (err != nil || b.GetTitle() != c.title):
				t.Fatalf("%v %v, want title %q", b, err, c.title)
			case c.err == "EOF" && !errors.Is(err, io.EOF):
				t.Fatalf("%v, want io.EOF", err)
			case c.err != "" && c.err != "EOF" && (err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "\u00a0", " "), c.err)):
				t.Fatalf("%v, want an error containing %q", err, c.err)
			}
			if err := d.Decode(&catalogv1.Book{}); !errors.Is(err, io.EOF) {
				t.Errorf("a second Decode: %v, want io.EOF", err)
			}
		})
	}
	// A target that is not a message: the body's syntax is checked whole.
	var tags []string
	err := restJSON{JSONPb: jsonPb()}.NewDecoder(strings.NewReader(`["a"] ["b"]`)).Decode(&tags)
	if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "\u00a0", " "), "unexpected token [") {
		t.Fatalf("a list body with a second value: %v %q", err, tags)
	}
}

// FuzzRESTDecoderOneValue holds restJSON's decoder of a body that holds
// one value to protojson.Unmarshal of the whole body: both succeed with
// the same message or both fail; a body of white space is io.EOF.
func FuzzRESTDecoderOneValue(f *testing.F) {
	for _, s := range []string{
		`{"title":"a"}`, `{"title":"a"} trailing`, `{"title":"a"}{"title":"b"}`, ``, `  `, `{"title":"\"\\"}`,
		`{"tags":["x",{}]}`, `[`, `{`, `}`, `1`, `null`, "{\"title\":\"\xff\"}", `{"title":"a"}}`, `{"title":"a"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ours, theirs catalogv1.Book
		errOurs := restJSON{JSONPb: jsonPb()}.NewDecoder(bytes.NewReader(body)).Decode(&ours)
		if len(bytes.Trim(body, " \t\r\n")) == 0 {
			if !errors.Is(errOurs, io.EOF) {
				t.Fatalf("%q: %v, want io.EOF", body, errOurs)
			}
			return
		}
		errTheirs := protojson.Unmarshal(body, &theirs)
		switch {
		case (errOurs == nil) != (errTheirs == nil):
			t.Fatalf("%q: restJSON %v, protojson %v", body, errOurs, errTheirs)
		case errOurs == nil && !proto.Equal(&ours, &theirs):
			t.Fatalf("%q: restJSON %v, protojson %v", body, &ours, &theirs)
		}
	})
}

// BenchmarkRESTDecode compares grpc-gateway's JSONPb decoder with
// restJSON's on an echo request body of 100 B and 16 KiB of payload.
func BenchmarkRESTDecode(b *testing.B) {
	for _, n := range []int{100, 16 << 10} {
		body := []byte(`{"message":"hello","payload":"` + base64.StdEncoding.EncodeToString(make([]byte, n)) + `"}`)
		for _, m := range []struct {
			name string
			dec  func(io.Reader) runtime.Decoder
		}{
			{"JSONPb", jsonPb().NewDecoder},
			{"restJSON", restJSON{JSONPb: jsonPb()}.NewDecoder},
		} {
			b.Run(sizeLabel(n)+"/"+m.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					var req testingv1.EchoRequest
					if err := m.dec(restBody{bytes.NewReader(body), body}).Decode(&req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func sizeLabel(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}
