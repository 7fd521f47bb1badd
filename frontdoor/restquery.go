package frontdoor

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
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
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			if set := msg.WhichOneof(o); set != nil && (fd.Message() == nil || set.FullName() != fd.FullName()) {
				return nil, nil, fmt.Errorf("field already set for oneof %q", o.Name())
			}
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
				return fmt.Errorf("parsing list %q: %w", fd.Name(), err)
			}
			list.Append(pv)
		}
		return nil
	case len(vals) > 1:
		return fmt.Errorf("too many values for field %q: %s", fd.Name(), strings.Join(vals, ", "))
	case len(vals) == 0:
		return nil
	}
	pv, err := parseValue(fd, vals[0], func() protoreflect.Value { return parent.NewField(fd) })
	if err != nil {
		return fmt.Errorf("parsing field %q: %w", fd.Name(), err)
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
	if !fd.IsMap() {
		return fmt.Errorf("field %q is not a map", fd.Name())
	}
	if len(vals) != 1 {
		return fmt.Errorf("more than one value provided for key %q in map %q", key, fd.FullName())
	}
	k, err := parseValue(fd.MapKey(), key, nil)
	if err != nil {
		return fmt.Errorf("parsing map key %q: %w", fd.Name(), err)
	}
	m := parent.Mutable(fd).Map()
	v, err := parseValue(fd.MapValue(), vals[0], m.NewValue)
	if err != nil {
		return fmt.Errorf("parsing map value %q: %w", fd.Name(), err)
	}
	m.Set(k.MapKey(), v)
	return nil
}

// parseValue parses s as a value of fd's kind; newMsg makes the message
// of a message field (only well-known types can be).
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
		b, err := runtime.Bytes(s)
		return protoreflect.ValueOfBytes(b), err
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if v := ed.Values().ByName(protoreflect.Name(s)); v != nil {
			return protoreflect.ValueOfEnum(v.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			return protoreflect.Value{}, fmt.Errorf("%q is not a valid value", s)
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if newMsg == nil {
			return protoreflect.Value{}, fmt.Errorf("a message cannot be a map key")
		}
		parse := wellKnown[fd.Message().FullName()]
		if parse == nil {
			return protoreflect.Value{}, fmt.Errorf("unsupported message type: %q", fd.Message().FullName())
		}
		m, err := parse(s)
		if err != nil {
			return protoreflect.Value{}, err
		}
		// The field's message may be of another implementation (dynamic):
		// the value goes over in its encoding.
		v := newMsg()
		b, err := proto.Marshal(m)
		if err == nil {
			err = proto.Unmarshal(b, v.Message().Interface())
		}
		return v, err
	}
	return protoreflect.Value{}, fmt.Errorf("unsupported field kind %s", fd.Kind())
}

// wellKnown parses a query parameter or path variable of a well-known
// message type, as grpc-gateway's runtime does: a Timestamp in RFC 3339, a
// Duration in Go's notation, a wrapper as its scalar, a FieldMask as
// comma-separated paths, a Struct or Value as JSON, an Empty as "" or "{}".
var wellKnown = map[protoreflect.FullName]func(string) (proto.Message, error){
	"google.protobuf.Timestamp": func(s string) (proto.Message, error) {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, err
		}
		ts := timestamppb.New(t)
		if !ts.IsValid() {
			return nil, fmt.Errorf("%s before 0001-01-01", s)
		}
		return ts, nil
	},
	"google.protobuf.Duration": func(s string) (proto.Message, error) {
		d, err := time.ParseDuration(s)
		return durationpb.New(d), err
	},
	"google.protobuf.DoubleValue": func(s string) (proto.Message, error) {
		f, err := strconv.ParseFloat(s, 64)
		return wrapperspb.Double(f), err
	},
	"google.protobuf.FloatValue": func(s string) (proto.Message, error) {
		f, err := strconv.ParseFloat(s, 32)
		return wrapperspb.Float(float32(f)), err
	},
	"google.protobuf.Int64Value": func(s string) (proto.Message, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		return wrapperspb.Int64(n), err
	},
	"google.protobuf.Int32Value": func(s string) (proto.Message, error) {
		n, err := strconv.ParseInt(s, 10, 32)
		return wrapperspb.Int32(int32(n)), err
	},
	"google.protobuf.UInt64Value": func(s string) (proto.Message, error) {
		n, err := strconv.ParseUint(s, 10, 64)
		return wrapperspb.UInt64(n), err
	},
	"google.protobuf.UInt32Value": func(s string) (proto.Message, error) {
		n, err := strconv.ParseUint(s, 10, 32)
		return wrapperspb.UInt32(uint32(n)), err
	},
	"google.protobuf.BoolValue": func(s string) (proto.Message, error) {
		b, err := strconv.ParseBool(s)
		return wrapperspb.Bool(b), err
	},
	"google.protobuf.StringValue": func(s string) (proto.Message, error) { return wrapperspb.String(s), nil },
	"google.protobuf.BytesValue": func(s string) (proto.Message, error) {
		b, err := runtime.Bytes(s)
		return wrapperspb.Bytes(b), err
	},
	"google.protobuf.FieldMask": func(s string) (proto.Message, error) {
		fm := &fieldmaskpb.FieldMask{}
		if s != "" {
			fm.Paths = strings.Split(s, ",")
		}
		return fm, nil
	},
	"google.protobuf.Value": func(s string) (proto.Message, error) {
		v := &structpb.Value{}
		return v, protojson.Unmarshal([]byte(s), v)
	},
	"google.protobuf.Struct": func(s string) (proto.Message, error) {
		v := &structpb.Struct{}
		return v, protojson.Unmarshal([]byte(s), v)
	},
	"google.protobuf.Empty": func(s string) (proto.Message, error) {
		if s != "" && s != "{}" {
			return nil, fmt.Errorf("expected an empty value or %q, got %q", "{}", s)
		}
		return &emptypb.Empty{}, nil
	},
}
