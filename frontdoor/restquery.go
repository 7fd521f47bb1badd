package frontdoor

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The path variables and query parameters of a dynamic binding are set
// with the semantics of grpc-gateway's runtime (PopulateFieldFromPath,
// DefaultQueryParser), which look enums up in the global registry, where
// the types of descriptors loaded at run time are not: these functions
// take every type from the field's own descriptor.

// mapKey matches a query parameter of a map entry, "labels[team]".
var mapKey = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// populateQuery sets the fields of msg that the query values name (by
// field or JSON name, nested with dots, map entries as name[key]),
// skipping those filter holds (the path variables and the body's field).
// A parameter that names no field is ignored, as grpc-gateway does.
func populateQuery(msg protoreflect.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key, vals := range values {
		if m := mapKey.FindStringSubmatch(key); m != nil {
			if err := populateMapEntry(msg, strings.Split(m[1], "."), m[2], vals, filter); err != nil {
				return err
			}
			continue
		}
		path := strings.Split(key, ".")
		if filter.HasCommonPrefix(path) {
			continue
		}
		if err := populatePath(msg, path, vals); err != nil {
			return err
		}
	}
	return nil
}

// populateFromPath sets the field of msg at path ("a.b") from a path
// variable's value.
func populateFromPath(msg protoreflect.Message, path, value string) error {
	return populatePath(msg, strings.Split(path, "."), []string{value})
}

// lookup walks msg down path to the message holding its last field;
// fd is nil when a name is not a field.
func lookup(msg protoreflect.Message, path []string) (protoreflect.Message, protoreflect.FieldDescriptor, error) {
	for i, name := range path {
		fields := msg.Descriptor().Fields()
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			fd = fields.ByJSONName(name)
		}
		if fd == nil {
			return nil, nil, nil
		}
		if i == len(path)-1 {
			return msg, fd, nil
		}
		if fd.Message() == nil || fd.Cardinality() == protoreflect.Repeated {
			return nil, nil, fmt.Errorf("invalid path: %q is not a message", name)
		}
		msg = msg.Mutable(fd).Message()
	}
	return nil, nil, fmt.Errorf("empty field path")
}

func populatePath(msg protoreflect.Message, path, vals []string) error {
	parent, fd, err := lookup(msg, path)
	if err != nil || fd == nil {
		return err
	}
	switch {
	case fd.IsMap():
		return fmt.Errorf("field %q is a map: set its entries as %s[KEY]", strings.Join(path, "."), strings.Join(path, "."))
	case fd.IsList():
		list := parent.Mutable(fd).List()
		for _, v := range vals {
			pv, err := parseValue(fd, v, list.NewElement)
			if err != nil {
				return fmt.Errorf("field %q: %w", strings.Join(path, "."), err)
			}
			list.Append(pv)
		}
		return nil
	case len(vals) > 1:
		return fmt.Errorf("too many values for field %q: %s", strings.Join(path, "."), strings.Join(vals, ", "))
	case len(vals) == 0:
		return nil
	}
	if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
		if set := parent.WhichOneof(o); set != nil && set != fd {
			return fmt.Errorf("field %q: oneof %s is already set (%s)", strings.Join(path, "."), o.Name(), set.Name())
		}
	}
	pv, err := parseValue(fd, vals[0], func() protoreflect.Value { return parent.NewField(fd) })
	if err != nil {
		return fmt.Errorf("field %q: %w", strings.Join(path, "."), err)
	}
	parent.Set(fd, pv)
	return nil
}

func populateMapEntry(msg protoreflect.Message, path []string, key string, vals []string, filter *utilities.DoubleArray) error {
	if filter.HasCommonPrefix(path) {
		return nil
	}
	parent, fd, err := lookup(msg, path)
	if err != nil || fd == nil {
		return err
	}
	name := strings.Join(path, ".")
	if !fd.IsMap() {
		return fmt.Errorf("field %q is not a map", name)
	}
	if len(vals) != 1 {
		return fmt.Errorf("too many values for %s[%s]", name, key)
	}
	k, err := parseValue(fd.MapKey(), key, nil)
	if err != nil {
		return fmt.Errorf("key of %q: %w", name, err)
	}
	m := parent.Mutable(fd).Map()
	v, err := parseValue(fd.MapValue(), vals[0], m.NewValue)
	if err != nil {
		return fmt.Errorf("field %s[%s]: %w", name, key, err)
	}
	m.Set(k.MapKey(), v)
	return nil
}

// parseValue parses s as a value of fd's kind; newMsg makes the message
// of a message field (a well-known type: its JSON form, bare or as a
// string, and a FieldMask as comma-separated paths).
func parseValue(fd protoreflect.FieldDescriptor, s string, newMsg func() protoreflect.Value) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		return protoreflect.ValueOfUint64(n), err
	case protoreflect.FloatKind:
		f, err := strconv.ParseFloat(s, 32)
		return protoreflect.ValueOfFloat32(float32(f)), err
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(s, 64)
		return protoreflect.ValueOfFloat64(f), err
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.URLEncoding.DecodeString(s)
		}
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(s)
		}
		return protoreflect.ValueOfBytes(b), err
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if v := ed.Values().ByName(protoreflect.Name(s)); v != nil {
			return protoreflect.ValueOfEnum(v.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			return protoreflect.Value{}, fmt.Errorf("%q is not a value of enum %s", s, ed.FullName())
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if newMsg == nil {
			return protoreflect.Value{}, fmt.Errorf("a message cannot be a map key")
		}
		v := newMsg()
		m := v.Message()
		if fd.Message().FullName() == "google.protobuf.FieldMask" {
			paths := m.Mutable(fd.Message().Fields().ByName("paths")).List()
			for p := range strings.SplitSeq(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					paths.Append(protoreflect.ValueOfString(p))
				}
			}
			return v, nil
		}
		opts := protojson.UnmarshalOptions{}
		if err := opts.Unmarshal([]byte(s), m.Interface()); err != nil {
			if err2 := opts.Unmarshal([]byte(strconv.Quote(s)), m.Interface()); err2 != nil {
				return protoreflect.Value{}, fmt.Errorf("%q is not a %s: %w", s, fd.Message().FullName(), err)
			}
		}
		return v, nil
	}
	return protoreflect.Value{}, fmt.Errorf("unsupported field kind %s", fd.Kind())
}
