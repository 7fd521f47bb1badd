package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
)

// FieldError is an error at a field of a loaded configuration, found after
// Load by the part of the gateway that builds from it (a certificate that
// does not load, a CEL rule that does not compile, a JWKS file without a
// usable key). Place gives it the line and column of the field in its file.
type FieldError struct {
	// Path is the field path, for example "routes[3].auth.cel".
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf returns a *FieldError at path with a formatted message (%w
// wraps as fmt.Errorf does).
func FieldErrorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// Place returns err with every *FieldError in it (alone, wrapped, or
// joined with errors.Join) turned into an *Error naming file, line, column
// and field path, as Load's errors do; data is the file's contents. Errors
// without a field path are returned as they are.
func Place(file string, data []byte, err error) error {
	if err == nil {
		return nil
	}
	d, derr := parseDoc(normalize(data))
	var fes []*FieldError
	collect(err, &fes)
	if len(fes) == 0 {
		return err
	}
	out := make(Errors, 0, len(fes))
	for _, fe := range fes {
		e := &Error{File: file, Path: fe.Path, Msg: fe.Err.Error()}
		if derr == nil {
			e.Line, e.Column = d.position(fe.Path)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// PlaceFile is Place for the file at path; the embedded default (path
// DefaultPath) is placed in DefaultYAML.
func PlaceFile(path string, err error) error {
	data, rerr := readConfig(path)
	if rerr != nil {
		return err
	}
	return Place(path, data, err)
}

// collect appends the *FieldErrors of err, looking through errors.Join
// and %w wrapping (an error that wraps one is taken for that one).
func collect(err error, out *[]*FieldError) {
	var fe *FieldError
	if errors.As(err, &fe) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				collect(e, out)
			}
			return
		}
		*out = append(*out, fe)
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			collect(e, out)
		}
	}
}

// normalize gives data one line ending, and a final one: protoyaml
// indexes the file's lines by the parser's line numbers.
func normalize(data []byte) []byte {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	return data
}

// readConfig reads the file at path; DefaultPath is the embedded default.
func readConfig(path string) ([]byte, error) {
	if path == DefaultPath {
		return DefaultYAML, nil
	}
	return os.ReadFile(path)
}

// IsFieldError reports whether err is (or wraps) a *FieldError.
func IsFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}
