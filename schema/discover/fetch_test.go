package discover_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	refv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/metrics"
	"github.com/edgegate/edgegate/schema/discover"
)

// *metrics.Metrics is what a Watcher reports to.
var _ discover.Metrics = (*metrics.Metrics)(nil)

const (
	v1Method      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	v1alphaMethod = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

func fetch(t *testing.T, addr string) (*descriptorpb.FileDescriptorSet, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return discover.Fetch(ctx, dial(t, addr))
}

// A server with both versions of reflection is read over one v1 stream:
// every listed service but reflection, in a set that links.
func TestFetchV1(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho, withShop, withHealth, withReflection)
	set, err := fetch(t, u.addr)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	files := checkComplete(t, set)
	want := []string{echoService, healthService, catalogService, ordersService, usersService}
	slices.Sort(want)
	if got := services(set); !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
	// The methods resolve, with their input types.
	d, err := files.FindDescriptorByName("shop.catalog.v1.CatalogService.GetBook")
	if err != nil {
		t.Fatalf("GetBook: %v", err)
	}
	if d.ParentFile().Path() != "shop/catalog/v1/catalog.proto" {
		t.Errorf("GetBook is in %s", d.ParentFile().Path())
	}
	for _, fd := range set.GetFile() {
		if strings.HasPrefix(fd.GetPackage(), "grpc.reflection") {
			t.Errorf("the set holds %s", fd.GetName())
		}
	}
	if got := u.methods(); !slices.Equal(got, []string{v1Method}) {
		t.Errorf("streams opened = %v, want one v1 stream", got)
	}
}

// A server with only grpc.reflection.v1alpha is read over v1alpha after
// v1 answers UNIMPLEMENTED.
func TestFetchFallsBackToV1Alpha(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withShop, withV1AlphaOnly)
	set, err := fetch(t, u.addr)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	checkComplete(t, set)
	want := []string{catalogService, ordersService, usersService}
	if got := services(set); !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
	if got := u.methods(); !slices.Equal(got, []string{v1Method, v1alphaMethod}) {
		t.Errorf("streams opened = %v, want v1 then v1alpha", got)
	}
}

// A server without reflection is reported as such, UNIMPLEMENTED.
func TestFetchWithoutReflection(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho)
	_, err := fetch(t, u.addr)
	if !errors.Is(err, discover.ErrNoReflection) {
		t.Fatalf("Fetch error = %v, want ErrNoReflection", err)
	}
	if !strings.HasPrefix(err.Error(), "cluster does not serve gRPC server reflection") {
		t.Errorf("error %q does not start with what failed", err)
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("code = %v, want Unimplemented", status.Code(err))
	}
}

// An upstream that is down is UNAVAILABLE, not taken for one without
// reflection.
func TestFetchUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	_, err = fetch(t, addr)
	if err == nil || errors.Is(err, discover.ErrNoReflection) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Fetch error = %v (code %v), want UNAVAILABLE", err, status.Code(err))
	}
	if !strings.HasPrefix(err.Error(), "open reflection stream: ") && !strings.HasPrefix(err.Error(), "list services: ") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// fakeReflection is a grpc.reflection.v1 service that answers every
// request with answer, recording the requests.
type fakeReflection struct {
	refv1.UnimplementedServerReflectionServer
	answer func(*refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse

	mu       sync.Mutex
	requests []*refv1.ServerReflectionRequest
}

func (f *fakeReflection) ServerReflectionInfo(s refv1.ServerReflection_ServerReflectionInfoServer) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
		if err := s.Send(f.answer(req)); err != nil {
			return err
		}
	}
}

func (f *fakeReflection) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// byFilename lists the file_by_filename requests received.
func (f *fakeReflection) byFilename() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		if n := r.GetFileByFilename(); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (f *fakeReflection) register(s *grpc.Server) { refv1.RegisterServerReflectionServer(s, f) }

func listed(names ...string) *refv1.ServerReflectionResponse {
	var svcs []*refv1.ServiceResponse
	for _, n := range names {
		svcs = append(svcs, &refv1.ServiceResponse{Name: n})
	}
	return &refv1.ServerReflectionResponse{MessageResponse: &refv1.ServerReflectionResponse_ListServicesResponse{
		ListServicesResponse: &refv1.ListServiceResponse{Service: svcs},
	}}
}

func filesResponse(t *testing.T, fds ...*descriptorpb.FileDescriptorProto) *refv1.ServerReflectionResponse {
	var raw [][]byte
	for _, fd := range fds {
		b, err := proto.Marshal(fd)
		if err != nil {
			t.Error(err)
		}
		raw = append(raw, b)
	}
	return &refv1.ServerReflectionResponse{MessageResponse: &refv1.ServerReflectionResponse_FileDescriptorResponse{
		FileDescriptorResponse: &refv1.FileDescriptorResponse{FileDescriptorProto: raw},
	}}
}

func errorResponse(code codes.Code, msg string) *refv1.ServerReflectionResponse {
	return &refv1.ServerReflectionResponse{MessageResponse: &refv1.ServerReflectionResponse_ErrorResponse{
		ErrorResponse: &refv1.ErrorResponse{ErrorCode: int32(code), ErrorMessage: msg},
	}}
}

// A server that sends each file without its imports (which the protocol
// allows) is asked for every import by name, until the set is complete.
func TestFetchAsksForMissingImports(t *testing.T) {
	f := &fakeReflection{}
	f.answer = func(req *refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		switch {
		case req.GetListServices() != "":
			return listed(catalogService, "grpc.reflection.v1.ServerReflection")
		case req.GetFileContainingSymbol() != "":
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(req.GetFileContainingSymbol()))
			if err != nil {
				return errorResponse(codes.NotFound, err.Error())
			}
			return filesResponse(t, protodesc.ToFileDescriptorProto(d.ParentFile()))
		default:
			fd, err := protoregistry.GlobalFiles.FindFileByPath(req.GetFileByFilename())
			if err != nil {
				return errorResponse(codes.NotFound, err.Error())
			}
			return filesResponse(t, protodesc.ToFileDescriptorProto(fd))
		}
	}
	u := startUpstream(t, "127.0.0.1:0", f.register)
	set, err := fetch(t, u.addr)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	checkComplete(t, set)
	if got := services(set); !slices.Equal(got, []string{catalogService}) {
		t.Errorf("services = %v, want the catalog alone", got)
	}
	asked := f.byFilename()
	for _, imp := range []string{"google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"} {
		if !slices.Contains(asked, imp) {
			t.Errorf("%s was not asked for; asked %v", imp, asked)
		}
	}
	if len(asked) != len(set.GetFile())-1 {
		t.Errorf("asked for %d files by name for a set of %d: %v", len(asked), len(set.GetFile()), asked)
	}
}

// An import the server does not have fails the fetch, naming it.
func TestFetchMissingImport(t *testing.T) {
	f := &fakeReflection{}
	f.answer = func(req *refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		switch {
		case req.GetListServices() != "":
			return listed("a.S")
		case req.GetFileContainingSymbol() != "":
			return filesResponse(t, &descriptorpb.FileDescriptorProto{
				Name: proto.String("a.proto"), Package: proto.String("a"), Dependency: []string{"gone.proto"},
				Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S")}},
			})
		}
		return errorResponse(codes.NotFound, "unknown file")
	}
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	if err == nil || !strings.Contains(err.Error(), `file "gone.proto" (imported by "a.proto")`) || status.Code(err) != codes.NotFound {
		t.Fatalf("Fetch error = %v, want gone.proto named, NOT_FOUND", err)
	}
}

// chain is a file of an endless chain of imports: chainN imports
// chain(N+1); chain0 declares chain.S. pad adds a message whose name is
// that long.
func chain(n, pad int) *descriptorpb.FileDescriptorProto {
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(fmt.Sprintf("chain%d.proto", n)),
		Package:    proto.String("chain"),
		Dependency: []string{fmt.Sprintf("chain%d.proto", n+1)},
	}
	if n == 0 {
		fd.Service = []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S")}}
	}
	if pad > 0 {
		fd.MessageType = []*descriptorpb.DescriptorProto{{Name: proto.String(strings.Repeat("x", pad))}}
	}
	return fd
}

func chainServer(t *testing.T, pad int) *fakeReflection {
	f := &fakeReflection{}
	f.answer = func(req *refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		switch {
		case req.GetListServices() != "":
			return listed("chain.S")
		case req.GetFileContainingSymbol() != "":
			return filesResponse(t, chain(0, pad))
		}
		var n int
		if _, err := fmt.Sscanf(req.GetFileByFilename(), "chain%d.proto", &n); err != nil {
			return errorResponse(codes.NotFound, "unknown file")
		}
		return filesResponse(t, chain(n, pad))
	}
	return f
}

// An endless chain of imports stops at MaxFiles, with no more requests
// than files.
func TestFetchStopsAtMaxFiles(t *testing.T) {
	f := chainServer(t, 0)
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	want := fmt.Sprintf("the server sent more than %d files", discover.MaxFiles)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Fetch error = %v, want %q", err, want)
	}
	if got := f.count(); got > discover.MaxFiles+2 {
		t.Errorf("the server got %d requests for at most %d files", got, discover.MaxFiles)
	}
}

// Huge files stop the fetch once MaxBytes have arrived.
func TestFetchStopsAtMaxBytes(t *testing.T) {
	const pad = 3 << 20 // under the 4 MiB a message may be
	f := chainServer(t, pad)
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	want := fmt.Sprintf("the server sent more than %d bytes of descriptors", discover.MaxBytes)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Fetch error = %v, want %q", err, want)
	}
	if got, most := f.count(), 2+discover.MaxBytes/pad+1; got > most {
		t.Errorf("the server got %d requests, want at most %d", got, most)
	}
}

// A list of more than MaxServices services fails before any file is
// asked for.
func TestFetchStopsAtMaxServices(t *testing.T) {
	names := make([]string, discover.MaxServices+1)
	for i := range names {
		names[i] = fmt.Sprintf("many.S%d", i)
	}
	f := &fakeReflection{answer: func(*refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse { return listed(names...) }}
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	want := fmt.Sprintf("list services: the server lists more than %d services", discover.MaxServices)
	if err == nil || err.Error() != want {
		t.Fatalf("Fetch error = %v, want %q", err, want)
	}
	if got := f.count(); got != 1 {
		t.Errorf("the server got %d requests, want the list alone", got)
	}
}

// Files that import each other fail the fetch, naming the cycle.
func TestFetchImportCycle(t *testing.T) {
	a := &descriptorpb.FileDescriptorProto{
		Name: proto.String("a.proto"), Package: proto.String("a"), Dependency: []string{"b.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S")}},
	}
	b := &descriptorpb.FileDescriptorProto{Name: proto.String("b.proto"), Package: proto.String("b"), Dependency: []string{"a.proto"}}
	f := &fakeReflection{}
	f.answer = func(req *refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		if req.GetListServices() != "" {
			return listed("a.S")
		}
		return filesResponse(t, a, b)
	}
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	if err == nil || !strings.Contains(err.Error(), "import each other: a.proto → b.proto → a.proto") {
		t.Fatalf("Fetch error = %v, want the cycle named", err)
	}
}

// A listed service the files do not declare fails the fetch.
func TestFetchServiceNotDeclared(t *testing.T) {
	f := &fakeReflection{}
	f.answer = func(req *refv1.ServerReflectionRequest) *refv1.ServerReflectionResponse {
		if req.GetListServices() != "" {
			return listed("a.S")
		}
		return filesResponse(t, &descriptorpb.FileDescriptorProto{Name: proto.String("a.proto"), Package: proto.String("a")})
	}
	u := startUpstream(t, "127.0.0.1:0", f.register)
	_, err := fetch(t, u.addr)
	if err == nil || !strings.Contains(err.Error(), `file containing service "a.S": the files the server sent do not declare it`) {
		t.Fatalf("Fetch error = %v, want a.S named", err)
	}
}

// Hash depends on the files' content, not on their order or comments.
func TestHash(t *testing.T) {
	u := startUpstream(t, "127.0.0.1:0", withEcho, withShop, withReflection)
	set, err := fetch(t, u.addr)
	if err != nil {
		t.Fatal(err)
	}
	h := discover.Hash(set)
	if len(h) != 64 {
		t.Errorf("Hash = %q, want 64 hex digits", h)
	}
	again, err := fetch(t, u.addr)
	if err != nil {
		t.Fatal(err)
	}
	if discover.Hash(again) != h {
		t.Error("two fetches of the same server hash differently")
	}

	reordered := proto.CloneOf(set)
	slices.Reverse(reordered.File)
	reordered.File[0].SourceCodeInfo = &descriptorpb.SourceCodeInfo{Location: []*descriptorpb.SourceCodeInfo_Location{{LeadingComments: proto.String("a comment")}}}
	if discover.Hash(reordered) != h {
		t.Error("the order of the files or a comment changed the hash")
	}
	if reordered.File[0].SourceCodeInfo == nil {
		t.Error("Hash modified the set")
	}

	changed := proto.CloneOf(set)
	changed.File[0].MessageType = append(changed.File[0].MessageType, &descriptorpb.DescriptorProto{Name: proto.String("Added")})
	if discover.Hash(changed) == h {
		t.Error("a new message did not change the hash")
	}
	if discover.Hash(nil) == h {
		t.Error("the empty set hashes like a full one")
	}
}
