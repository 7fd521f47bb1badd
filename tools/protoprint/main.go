// Command protoprint writes, as .proto source, the files whose descriptors are
// compiled into Go modules that no registry ships as .proto source
// (buf/validate/validate.proto). `make generate` runs it into the ignored
// proto cache, so that nothing third-party is copied into the repository.
//
// Usage: protoprint OUTDIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/desc/protoprint"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: protoprint OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "protoprint:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	fd, err := desc.WrapFile(validate.File_buf_validate_validate_proto)
	if err != nil {
		return fmt.Errorf("wrap descriptor: %w", err)
	}
	p := &protoprint.Printer{}
	path := filepath.Join(out, fd.GetName())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := p.PrintProtoFile(fd, f); err != nil {
		_ = f.Close()
		return fmt.Errorf("print %s: %w", fd.GetName(), err)
	}
	return f.Close()
}
