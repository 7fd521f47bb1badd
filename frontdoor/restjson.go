package frontdoor

import (
	"bytes"
	"io"
	"reflect"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// restJSON is grpc-gateway's JSONPb with a cheaper and stricter request
// path. JSONPb's decoder runs every body through encoding/json to cut out
// one value (json.RawMessage) and then parses it again with protojson; for
// a 16 KiB body the first pass was 31 % of the REST door's CPU. restJSON's
// decoder parses a body that holds one value with protojson alone, the
// whole body, so that anything after the value but white space is an
// error (JSONPb's decoder ignores it); a body read as a stream of values
// (a client-streaming binding's) it cuts with a byte scan, and leaves all
// parsing, and every syntax error, to protojson. Marshal writes a message
// with protojson directly instead of through a bytes.Buffer copy.
type restJSON struct {
	*runtime.JSONPb
	// streams holds the message types whose bodies are a stream of
	// values: the requests of the client-streaming bindings.
	streams map[protoreflect.FullName]bool
}

// Marshal is JSONPb's Marshal without the extra copy for a message.
func (j restJSON) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return j.MarshalOptions.Marshal(m)
	}
	return j.JSONPb.Marshal(v)
}

// NewDecoder returns a decoder of the body r: one value, or for a type in
// streams the values in turn, one per Decode.
func (j restJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{r: r, json: j.JSONPb, streams: j.streams}
}

// restBody is a REST request body the HTTP door has read whole (see
// limitBody): the decoder takes its bytes without copying them.
type restBody struct {
	*bytes.Reader
	b []byte
}

func (restBody) Close() error { return nil }

// bodyDecoder decodes a request body: one JSON value, or the values of a
// client stream in turn. A target that is not a message (grpc-gateway
// decodes a body mapped to a scalar, map or list field into the field
// itself) goes to JSONPb's own decoder, once protojson has checked the
// body's syntax.
type bodyDecoder struct {
	r       io.Reader
	json    *runtime.JSONPb
	streams map[protoreflect.FullName]bool
	data    []byte
	read    bool
	done    bool // the one value was decoded
}

func (d *bodyDecoder) Decode(v any) error {
	if !d.read {
		d.read = true
		if rb, ok := d.r.(restBody); ok {
			d.data = rb.b
		} else {
			b, err := io.ReadAll(d.r)
			if err != nil {
				return err
			}
			d.data = b
		}
	}
	d.data = bytes.TrimLeft(d.data, jsonSpace)
	m := messageOf(v)
	if m != nil && d.streams[m.ProtoReflect().Descriptor().FullName()] {
		if len(d.data) == 0 {
			return io.EOF
		}
		n := valueEnd(d.data)
		val := d.data[:n]
		d.data = d.data[n:]
		return d.json.UnmarshalOptions.Unmarshal(val, m)
	}
	if d.done || len(d.data) == 0 {
		return io.EOF
	}
	d.done = true
	data := d.data
	d.data = nil
	if m != nil {
		return d.json.UnmarshalOptions.Unmarshal(data, m)
	}
	// protojson's syntax check of the whole body, for its messages.
	if err := protojson.Unmarshal(data, &structpb.Value{}); err != nil {
		return err
	}
	return d.json.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// jsonSpace is JSON's white space.
const jsonSpace = " \t\r\n"

// messageOf returns the message v points to, allocating a nil message
// pointer on the way as grpc-gateway does (it decodes a body field into
// &req.Field, a **T), or nil when v is not a message.
func messageOf(v any) proto.Message {
	if m, ok := v.(proto.Message); ok {
		return m
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			if !rv.CanSet() {
				return nil
			}
			if !rv.Type().Implements(messageType) {
				return nil
			}
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		if m, ok := rv.Interface().(proto.Message); ok {
			return m
		}
		rv = rv.Elem()
	}
	return nil
}

var messageType = reflect.TypeFor[proto.Message]()

// valueEnd returns the length of the JSON value b starts with (b starts
// with a byte that is not white space). It only finds the boundary; it
// does not check the syntax, which protojson does. A value that does not
// end (a string or object cut short) runs to the end of b.
func valueEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			end := stringEnd(b, i+1)
			if end < 0 {
				return len(b)
			}
			i = end
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth <= 0 {
				return i + 1
			}
		case ' ', '\t', '\r', '\n', ',', ':':
			if depth == 0 {
				return max(i, 1)
			}
		}
	}
	return len(b)
}

// stringEnd returns the index of the quote that closes the string whose
// contents start at b[from], or -1 when there is none.
func stringEnd(b []byte, from int) int {
	for {
		q := bytes.IndexByte(b[from:], '"')
		if q < 0 {
			return -1
		}
		q += from
		escapes := 0
		for k := q - 1; k >= from && b[k] == '\\'; k-- {
			escapes++
		}
		if escapes%2 == 0 {
			return q
		}
		from = q + 1
	}
}
