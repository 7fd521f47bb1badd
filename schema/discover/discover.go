// Package discover learns what an upstream cluster serves from its gRPC
// server reflection, and keeps it fresh.
//
// Fetch asks once: it lists the cluster's services and gets their proto
// files with every import, as one complete FileDescriptorSet. A Watcher
// fetches one cluster's set at start and every interval, keeps the last
// good set when a fetch fails, and says when the set changes. Hash names a
// set's content in logs.
//
// The package decides nothing about routing: the set holds every service
// the cluster lists (grpc.health.v1 included) except the reflection
// service itself, and its caller keeps the ones it routes.
package discover

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	refv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	refv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The bounds of one Fetch. A server that lists more services, or whose
// answers hold more files or more bytes, fails the fetch with an error
// that names the bound, so a fetch decodes at most MaxBytes of
// descriptors and sends at most 1+MaxServices+MaxFiles requests, however
// the server behaves. Every answer is further bounded by the connection's
// largest received message (the cluster's max_message_bytes).
const (
	// MaxServices is the most services a cluster may list (the reflection
	// services not counted).
	MaxServices = 1000
	// MaxFiles is the most distinct files a set may hold.
	MaxFiles = 2000
	// MaxBytes is the most encoded descriptor bytes the server may send in
	// one fetch, files sent twice counted twice.
	MaxBytes = 32 << 20
)

// ErrNoReflection is the error of Fetch when the cluster answers
// UNIMPLEMENTED to both grpc.reflection.v1 and grpc.reflection.v1alpha.
var ErrNoReflection = errors.New("cluster does not serve gRPC server reflection")

// reflectionPrefix starts the names of the reflection services, which a
// set never holds.
const reflectionPrefix = "grpc.reflection."

// Fetch returns the proto files of the services cc's server lists in its
// server reflection: the files that declare them and every file they
// import, directly or not, each once, ordered so that a file comes after
// its imports (the set protodesc.NewFiles accepts; Fetch checks that it
// does). Services named grpc.reflection.* are left out; every other listed
// service is declared in the set, or Fetch fails.
//
// Fetch uses one grpc.reflection.v1 stream, or, when the server answers
// UNIMPLEMENTED, one grpc.reflection.v1alpha stream; ErrNoReflection when
// it answers UNIMPLEMENTED to both. It ends when ctx does, and stays within
// MaxServices, MaxFiles and MaxBytes. Its errors say which request failed
// and wrap the server's status, so status.Code gives the gRPC code.
func Fetch(ctx context.Context, cc grpc.ClientConnInterface) (*descriptorpb.FileDescriptorSet, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream, whatever state it is in

	s, services, err := open(ctx, cc)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.CloseSend() }()

	f := &fetcher{s: s, files: map[string]*descriptorpb.FileDescriptorProto{}, declared: map[string]bool{}}
	for _, svc := range services {
		if f.declared[svc] {
			continue
		}
		if err := f.ask(fileContainingSymbol(svc), ""); err != nil {
			return nil, fmt.Errorf("file containing service %q: %w", svc, err)
		}
		if !f.declared[svc] {
			return nil, fmt.Errorf("file containing service %q: the files the server sent do not declare it", svc)
		}
	}
	for {
		name, importer := f.missing()
		if name == "" {
			break
		}
		if err := f.ask(fileByFilename(name), name); err != nil {
			return nil, fmt.Errorf("file %q (imported by %q): %w", name, importer, err)
		}
	}

	set, err := f.ordered()
	if err != nil {
		return nil, err
	}
	if _, err := protodesc.NewFiles(set); err != nil {
		return nil, fmt.Errorf("the files the server sent do not link: %w", err)
	}
	return set, nil
}

// stream is a reflection stream of either version, in v1 messages.
type stream interface {
	Send(*refv1.ServerReflectionRequest) error
	Recv() (*refv1.ServerReflectionResponse, error)
	CloseSend() error
}

// open starts the reflection stream, v1 first, and lists the services on
// it (the first answer tells whether the server serves that version).
func open(ctx context.Context, cc grpc.ClientConnInterface) (stream, []string, error) {
	s, err := openV1(ctx, cc)
	if err == nil {
		services, err := listServices(s)
		if err == nil {
			return s, services, nil
		}
		_ = s.CloseSend()
		if status.Code(err) != codes.Unimplemented {
			return nil, nil, err
		}
	} else if status.Code(err) != codes.Unimplemented {
		return nil, nil, fmt.Errorf("open reflection stream: %w", err)
	}
	s, err = openV1Alpha(ctx, cc)
	if err != nil {
		return nil, nil, alphaErr(fmt.Errorf("open reflection stream: %w", err))
	}
	services, err := listServices(s)
	if err != nil {
		_ = s.CloseSend()
		return nil, nil, alphaErr(err)
	}
	return s, services, nil
}

func openV1(ctx context.Context, cc grpc.ClientConnInterface) (stream, error) {
	return refv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
}

func openV1Alpha(ctx context.Context, cc grpc.ClientConnInterface) (stream, error) {
	s, err := refv1alpha.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	return v1alphaStream{s}, nil
}

// alphaErr is the error of v1alpha after v1 was UNIMPLEMENTED:
// ErrNoReflection when v1alpha is too.
func alphaErr(err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("%w: %w", ErrNoReflection, err)
	}
	return err
}

// listServices asks for the service names, the reflection services left
// out.
func listServices(s stream) ([]string, error) {
	resp, err := roundTrip(s, &refv1.ServerReflectionRequest{
		MessageRequest: &refv1.ServerReflectionRequest_ListServices{ListServices: "*"},
	})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	list := resp.GetListServicesResponse()
	if list == nil {
		return nil, fmt.Errorf("list services: the server answered with %s", kind(resp))
	}
	var services []string
	seen := map[string]bool{}
	for _, svc := range list.GetService() {
		name := svc.GetName()
		if strings.HasPrefix(name, reflectionPrefix) || seen[name] {
			continue
		}
		if name == "" {
			return nil, errors.New("list services: the server listed a service without a name")
		}
		if len(services) == MaxServices {
			return nil, fmt.Errorf("list services: the server lists more than %d services", MaxServices)
		}
		seen[name] = true
		services = append(services, name)
	}
	return services, nil
}

// roundTrip sends req and receives its answer, an error response made an
// error with its code.
func roundTrip(s stream, req *refv1.ServerReflectionRequest) (*refv1.ServerReflectionResponse, error) {
	if err := s.Send(req); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended: its status comes with Recv.
			_, err = s.Recv()
		}
		return nil, err
	}
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		code := codes.Code(e.GetErrorCode())
		if code == codes.OK {
			code = codes.Unknown
		}
		return nil, status.Error(code, e.GetErrorMessage())
	}
	return resp, nil
}

// kind names the answer a response holds, for errors.
func kind(resp *refv1.ServerReflectionResponse) string {
	switch resp.GetMessageResponse().(type) {
	case *refv1.ServerReflectionResponse_FileDescriptorResponse:
		return "files"
	case *refv1.ServerReflectionResponse_ListServicesResponse:
		return "a service list"
	case *refv1.ServerReflectionResponse_AllExtensionNumbersResponse:
		return "extension numbers"
	case nil:
		return "an empty response"
	}
	return "another kind of response"
}

func fileContainingSymbol(name string) *refv1.ServerReflectionRequest {
	return &refv1.ServerReflectionRequest{
		MessageRequest: &refv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name},
	}
}

func fileByFilename(name string) *refv1.ServerReflectionRequest {
	return &refv1.ServerReflectionRequest{
		MessageRequest: &refv1.ServerReflectionRequest_FileByFilename{FileByFilename: name},
	}
}

// fetcher is the state of one Fetch: the files received, by name, in the
// order received, and the services they declare.
type fetcher struct {
	s        stream
	files    map[string]*descriptorpb.FileDescriptorProto
	order    []string
	declared map[string]bool
	// bytes is the encoded size of every file received so far.
	bytes int
	// complete counts the files of order, from the first, whose imports
	// have all been received.
	complete int
}

// ask sends a file request and keeps the files of its answer, the first
// copy of each; the answer must hold wantFile when it is set.
func (f *fetcher) ask(req *refv1.ServerReflectionRequest, wantFile string) error {
	resp, err := roundTrip(f.s, req)
	if err != nil {
		return err
	}
	fds := resp.GetFileDescriptorResponse()
	if fds == nil {
		return fmt.Errorf("the server answered with %s", kind(resp))
	}
	if len(fds.GetFileDescriptorProto()) == 0 {
		return errors.New("the server sent no file")
	}
	for _, b := range fds.GetFileDescriptorProto() {
		f.bytes += len(b)
		if f.bytes > MaxBytes {
			return fmt.Errorf("the server sent more than %d bytes of descriptors", MaxBytes)
		}
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fd); err != nil {
			return fmt.Errorf("the server sent a file that does not decode: %w", err)
		}
		name := fd.GetName()
		if name == "" {
			return errors.New("the server sent a file without a name")
		}
		if _, ok := f.files[name]; ok {
			continue
		}
		if len(f.files) == MaxFiles {
			return fmt.Errorf("the server sent more than %d files", MaxFiles)
		}
		f.files[name] = fd
		f.order = append(f.order, name)
		for _, sd := range fd.GetService() {
			full := sd.GetName()
			if p := fd.GetPackage(); p != "" {
				full = p + "." + full
			}
			f.declared[full] = true
		}
	}
	if wantFile != "" {
		if _, ok := f.files[wantFile]; !ok {
			return errors.New("the server sent other files")
		}
	}
	return nil
}

// missing returns the first import, in the order the files came, that has
// not been received, and the file that imports it; "" when there is none.
func (f *fetcher) missing() (name, importer string) {
	for ; f.complete < len(f.order); f.complete++ {
		n := f.order[f.complete]
		for _, dep := range f.files[n].GetDependency() {
			if _, ok := f.files[dep]; !ok {
				return dep, n
			}
		}
	}
	return "", ""
}

// ordered returns the files, each after its imports: the files by name,
// each preceded by those of its imports not yet placed, in import order.
func (f *fetcher) ordered() (*descriptorpb.FileDescriptorSet, error) {
	const (
		visiting = 1
		placed   = 2
	)
	mark := make(map[string]int, len(f.files))
	set := &descriptorpb.FileDescriptorSet{File: make([]*descriptorpb.FileDescriptorProto, 0, len(f.files))}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch mark[name] {
		case placed:
			return nil
		case visiting:
			i := slices.Index(path, name)
			return fmt.Errorf("the files the server sent import each other: %s", strings.Join(append(path[i:], name), " → "))
		}
		mark[name] = visiting
		fd := f.files[name]
		for _, dep := range fd.GetDependency() {
			if err := visit(dep, append(path[:len(path):len(path)], name)); err != nil {
				return err
			}
		}
		mark[name] = placed
		set.File = append(set.File, fd)
		return nil
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range f.files {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// Hash returns a stable name of set's content, for logs: the SHA-256 (hex)
// of its files sorted by name, each deterministically encoded without its
// source_code_info. The order of the files and their comments do not
// change it; the same content hashes the same in one build of the gateway.
func Hash(set *descriptorpb.FileDescriptorSet) string {
	files := slices.Clone(set.GetFile())
	slices.SortStableFunc(files, func(a, b *descriptorpb.FileDescriptorProto) int {
		return strings.Compare(a.GetName(), b.GetName())
	})
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	var n [8]byte
	for _, fd := range files {
		if fd.SourceCodeInfo != nil {
			fd = proto.CloneOf(fd)
			fd.SourceCodeInfo = nil
		}
		b, err := opts.Marshal(fd)
		if err != nil {
			// A FileDescriptorProto always encodes; this keeps Hash total.
			b = []byte(err.Error())
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
