package aggregate

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// value is what a source read: a field's value (v, of field fd; one item
// of a list when item), a whole message, a text (the principal's id, a
// constant) or a claim (any JSON value).
type value struct {
	v    protoreflect.Value
	fd   protoreflect.FieldDescriptor
	item bool
	msg  protoreflect.Message

	text    string
	isText  bool
	claim   any
	isClaim bool

	ok bool
}

// getPath returns the value at path in m; false when a message on the way
// is not set.
func getPath(m protoreflect.Message, path []protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	for _, fd := range path[:len(path)-1] {
		if !m.Has(fd) {
			return protoreflect.Value{}, false
		}
		m = m.Get(fd).Message()
	}
	return m.Get(path[len(path)-1]), true
}

// setPath sets the field at path in m from v (checked by assignable at
// compile time): a list field is appended to, a message merged into, a
// scalar converted by its text. A value that does not convert (a text
// that is no number, for a number field) leaves the field unset.
func setPath(m protoreflect.Message, path []protoreflect.FieldDescriptor, v value) {
	if !v.ok && v.msg == nil {
		return
	}
	for _, fd := range path[:len(path)-1] {
		m = m.Mutable(fd).Message()
	}
	dst := path[len(path)-1]
	if dst.IsList() {
		l := m.Mutable(dst).List()
		switch {
		case v.fd != nil && v.fd.IsList() && !v.item:
			src := v.v.List()
			for i := range src.Len() {
				appendElem(l, dst, value{v: src.Get(i), fd: v.fd, item: true, ok: true})
			}
		case v.isClaim:
			if arr, ok := v.claim.([]any); ok {
				for _, c := range arr {
					appendElem(l, dst, value{claim: c, isClaim: true, ok: true})
				}
				return
			}
			appendElem(l, dst, v)
		default:
			appendElem(l, dst, v)
		}
		return
	}
	if dst.Message() != nil {
		copyMessage(m.Mutable(dst).Message(), v.message())
		return
	}
	if pv, ok := scalar(dst, v); ok {
		m.Set(dst, pv)
	}
}

// message returns the message v holds (a whole message, or a message
// field's value).
func (v value) message() protoreflect.Message {
	if v.msg != nil {
		return v.msg
	}
	if v.v.IsValid() {
		if m, ok := v.v.Interface().(protoreflect.Message); ok {
			return m
		}
	}
	return nil
}

func appendElem(l protoreflect.List, dst protoreflect.FieldDescriptor, v value) {
	if dst.Message() != nil {
		src := v.message()
		if src == nil {
			return
		}
		e := l.NewElement()
		copyMessage(e.Message(), src)
		l.Append(e)
		return
	}
	if pv, ok := scalar(dst, v); ok {
		l.Append(pv)
	}
}

// copyMessage merges src into dst, of the same message type (possibly
// from different descriptors of it).
func copyMessage(dst, src protoreflect.Message) {
	if src == nil {
		return
	}
	if dst.Descriptor() == src.Descriptor() {
		proto.Merge(dst.Interface(), src.Interface())
		return
	}
	b, err := proto.Marshal(src.Interface())
	if err == nil {
		_ = proto.UnmarshalOptions{Merge: true}.Unmarshal(b, dst.Interface())
	}
}

// scalar converts v to a value of dst's kind: directly when v is a field
// of that kind, by its text otherwise.
func scalar(dst protoreflect.FieldDescriptor, v value) (protoreflect.Value, bool) {
	if v.fd != nil && v.fd.Message() == nil && v.fd.Kind() == dst.Kind() &&
		(dst.Enum() == nil || v.fd.Enum().FullName() == dst.Enum().FullName()) {
		return v.v, true
	}
	return parse(dst, v.String())
}

// String is v's text: a scalar field's value as protojson writes it but
// unquoted (an enum by name), a claim's JSON scalar.
func (v value) String() string {
	switch {
	case v.isText:
		return v.text
	case v.isClaim:
		switch c := v.claim.(type) {
		case string:
			return c
		case float64:
			if c == math.Trunc(c) && math.Abs(c) < 1<<53 {
				return strconv.FormatInt(int64(c), 10)
			}
			return strconv.FormatFloat(c, 'g', -1, 64)
		default:
			b, _ := json.Marshal(c)
			return string(b)
		}
	case v.fd != nil:
		if e := v.fd.Enum(); e != nil {
			if ev := e.Values().ByNumber(v.v.Enum()); ev != nil {
				return string(ev.Name())
			}
			return strconv.Itoa(int(v.v.Enum()))
		}
		if v.fd.Kind() == protoreflect.BytesKind {
			return string(v.v.Bytes())
		}
		return fmt.Sprint(v.v.Interface())
	}
	return ""
}

// parse reads s as a value of the scalar field fd.
func parse(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(s)), true
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err == nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), true
		}
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), err == nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err == nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err == nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err == nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		return protoreflect.ValueOfUint64(n), err == nil
	case protoreflect.FloatKind:
		f, err := strconv.ParseFloat(s, 32)
		return protoreflect.ValueOfFloat32(float32(f)), err == nil
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(s, 64)
		return protoreflect.ValueOfFloat64(f), err == nil
	}
	return protoreflect.Value{}, false
}
