package frontdoor

import (
	"bytes"
	"io"
	"reflect"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// restJSON is grpc-gateway's JSONPb with a cheaper request path. JSONPb's
// decoder runs every body through encoding/json to cut out one value
// (json.RawMessage) and then parses it again with protojson; for a 16 KiB
// body the first pass was 31 % of the REST door's CPU. restJSON's decoder
// finds the end of each JSON value with a byte scan and leaves all
// parsing, and every syntax error, to protojson. Marshal writes a message
// with protojson directly instead of through a bytes.Buffer copy.
type restJSON struct{ *runtime.JSONPb }

// Marshal is JSONPb's Marshal without the extra copy for a message.
func (j restJSON) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return j.MarshalOptions.Marshal(m)
	}
	return j.JSONPb.Marshal(v)
}

// NewDecoder returns a decoder of the JSON values in r, one per Decode.
func (j restJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{r: r, json: j.JSONPb}
}

// restBody is a REST request body the HTTP door has read whole (see
// limitBody): the decoder takes its bytes without copying them.
type restBody struct {
	*bytes.Reader
	b []byte
}

func (restBody) Close() error { return nil }

// bodyDecoder decodes the JSON values of a request body in turn (one for
// a unary call, a sequence for a client stream). A target that is not a
// message (grpc-gateway decodes a body mapped to a scalar, map or list
// field into the field itself) goes to JSONPb's own decoder.
type bodyDecoder struct {
	r    io.Reader
	json *runtime.JSONPb
	data []byte
	read bool
	rest runtime.Decoder // JSONPb's decoder, once a target was not a message
}

func (d *bodyDecoder) Decode(v any) error {
	if d.rest != nil {
		return d.rest.Decode(v)
	}
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
	m := messageOf(v)
	if m == nil {
		d.rest = d.json.NewDecoder(bytes.NewReader(d.data))
		d.data = nil
		return d.rest.Decode(v)
	}
	d.data = bytes.TrimLeft(d.data, " \t\r\n")
	if len(d.data) == 0 {
		return io.EOF
	}
	n := valueEnd(d.data)
	val := d.data[:n]
	d.data = d.data[n:]
	return d.json.UnmarshalOptions.Unmarshal(val, m)
}

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
