package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// notesAPI is the API of testdata/notes/v1, which is not compiled into
// the gateway: it is compiled here, at run time, from its .proto files.
type notesAPI struct {
	files *protoregistry.Files
	set   *descriptorpb.FileDescriptorSet // every file, imports first
}

// compileNotes compiles the given files of testdata/ (their imports of
// google/api and google/protobuf come from the descriptors linked into
// the test), comments kept.
func compileNotes(t testing.TB, paths ...string) *notesAPI {
	t.Helper()
	c := protocompile.Compiler{
		Resolver: protocompile.CompositeResolver{
			&protocompile.SourceResolver{ImportPaths: []string{"testdata"}},
			protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
				fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
				if err != nil {
					return protocompile.SearchResult{}, err
				}
				return protocompile.SearchResult{Desc: fd}, nil
			}),
		},
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	out, err := c.Compile(context.Background(), paths...)
	if err != nil {
		t.Fatalf("compile %v: %v", paths, err)
	}
	api := &notesAPI{files: &protoregistry.Files{}, set: &descriptorpb.FileDescriptorSet{}}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		api.set.File = append(api.set.File, protodesc.ToFileDescriptorProto(fd))
		if err := api.files.RegisterFile(fd); err != nil {
			t.Fatal(err)
		}
	}
	for _, fd := range out {
		add(fd)
	}
	return api
}

// writeSet writes the API's binary FileDescriptorSet into dir, as
// `buf build -o notes.binpb` would, and returns its path.
func (a *notesAPI) writeSet(t testing.TB, dir string) string {
	t.Helper()
	b, err := proto.Marshal(a.set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "notes.binpb")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// method returns the descriptor of a method of the API,
// "/notes.v1.NotesService/GetNote"; nil when it has none.
func (a *notesAPI) method(full string) protoreflect.MethodDescriptor {
	svc, name, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	d, err := a.files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(name))
}

// message returns a new message of the API's type name, its fields set
// from fields (name → value: string, int, []string, map[string]string, an
// enum value's name, or a message). A name or field the API does not have
// is a bug of the test: it panics.
func (a *notesAPI) message(name string, fields map[string]any) *dynamicpb.Message {
	d, err := a.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		panic(err)
	}
	m := dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
	for k, v := range fields {
		setField(m, k, v)
	}
	return m
}

func setField(m protoreflect.Message, name string, v any) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("%s has no field %s", m.Descriptor().FullName(), name))
	}
	switch v := v.(type) {
	case string:
		if fd.Kind() == protoreflect.EnumKind {
			m.Set(fd, protoreflect.ValueOfEnum(fd.Enum().Values().ByName(protoreflect.Name(v)).Number()))
			return
		}
		m.Set(fd, protoreflect.ValueOfString(v))
	case int:
		m.Set(fd, protoreflect.ValueOfInt32(int32(v)))
	case []string:
		l := m.Mutable(fd).List()
		for _, s := range v {
			l.Append(protoreflect.ValueOfString(s))
		}
	case map[string]string:
		mm := m.Mutable(fd).Map()
		for k, s := range v {
			mm.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfString(s))
		}
	case protoreflect.ProtoMessage:
		m.Set(fd, protoreflect.ValueOfMessage(v.ProtoReflect()))
	default:
		panic(fmt.Sprintf("field %s: %T", name, v))
	}
}

func getString(m protoreflect.Message, name string) string {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name))).String()
}

// notesServer serves the notes API from dynamic messages, over a real
// gRPC server: the services of api it is given (by full name), with or
// without server reflection.
type notesServer struct {
	api      *notesAPI
	services []string
	addr     string
	srv      *grpc.Server

	mu    sync.Mutex
	notes map[string]*dynamicpb.Message // by name
	next  int
}

// startNotes serves api's services (full names) on addr ("127.0.0.1:0":
// a new port) until the test ends; reflect adds gRPC server reflection of
// exactly those services.
func startNotes(t testing.TB, api *notesAPI, addr string, reflect bool, services ...string) *notesServer {
	t.Helper()
	s := &notesServer{api: api, services: services, notes: map[string]*dynamicpb.Message{}}
	created := timestamppb.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	for _, n := range []map[string]any{
		{"name": "folders/work/notes/1", "title": "Plan", "text": "ship it", "tags": []string{"a", "b"}, "priority": "PRIORITY_HIGH", "create_time": created, "labels": map[string]string{"team": "edge"}},
		{"name": "folders/work/notes/2", "title": "Lunch", "tags": []string{"b"}, "priority": "PRIORITY_LOW", "create_time": created},
		{"name": "folders/home/notes/3", "title": "Milk", "tags": []string{"c"}, "create_time": created},
	} {
		m := api.message("notes.v1.Note", n)
		s.notes[getString(m, "name")] = m
	}
	s.next = 4
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.srv = grpc.NewServer(grpc.UnknownServiceHandler(s.handle))
	if reflect {
		ro := reflection.ServerOptions{Services: s, DescriptorResolver: api.files}
		reflectionv1.RegisterServerReflectionServer(s.srv, reflection.NewServerV1(ro))
		reflectionv1alpha.RegisterServerReflectionServer(s.srv, reflection.NewServer(ro))
	}
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// GetServiceInfo lists the services the server answers, for reflection.
func (s *notesServer) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{}
	for _, name := range s.services {
		out[name] = grpc.ServiceInfo{}
	}
	return out
}

// stop ends the server and its connections now.
func (s *notesServer) stop() { s.srv.Stop() }

// handle answers every call of the notes API.
func (s *notesServer) handle(_ any, ss grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(ss)
	svc, _, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !slices.Contains(s.services, svc) {
		return status.Errorf(codes.Unimplemented, "unknown service %s", svc)
	}
	md := s.api.method(full)
	if md == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", full)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := ss.RecvMsg(req); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := func(fields map[string]any) error {
		return ss.SendMsg(s.api.message(string(md.Output().FullName()), fields))
	}
	switch md.Name() {
	case "GetNote":
		n, err := s.find(getString(req, "name"))
		if err != nil {
			return err
		}
		return ss.SendMsg(n)
	case "ListNotes":
		resp := dynamicpb.NewMessage(md.Output())
		list := resp.Mutable(md.Output().Fields().ByName("notes")).List()
		limit := int(req.Get(md.Input().Fields().ByName("page_size")).Int())
		minPriority := req.Get(md.Input().Fields().ByName("min_priority")).Enum()
		for _, n := range s.sorted(getString(req, "parent")) {
			if tag := getString(req, "tag"); tag != "" && !hasTag(n, tag) {
				continue
			}
			if n.Get(n.Descriptor().Fields().ByName("priority")).Enum() < minPriority {
				continue
			}
			if limit > 0 && list.Len() == limit {
				break
			}
			list.Append(protoreflect.ValueOfMessage(n))
		}
		return ss.SendMsg(resp)
	case "CreateNote":
		n := req.Get(md.Input().Fields().ByName("note")).Message().Interface().(*dynamicpb.Message)
		if getString(n, "title") == "" {
			st, _ := status.New(codes.InvalidArgument, "a note needs a title").WithDetails(&errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "note.title", Description: "required"}},
			})
			return st.Err()
		}
		n = proto.Clone(n).(*dynamicpb.Message)
		setField(n, "name", fmt.Sprintf("%s/notes/%d", getString(req, "parent"), s.next))
		setField(n, "create_time", timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
		s.next++
		s.notes[getString(n, "name")] = n
		return ss.SendMsg(n)
	case "UpdateNote":
		patch := req.Get(md.Input().Fields().ByName("note")).Message()
		n, err := s.find(getString(patch, "name"))
		if err != nil {
			return err
		}
		mask := req.Get(md.Input().Fields().ByName("update_mask")).Message()
		paths := mask.Get(mask.Descriptor().Fields().ByName("paths")).List()
		if paths.Len() == 0 {
			return status.Error(codes.InvalidArgument, "update_mask is empty")
		}
		for i := range paths.Len() {
			fd := n.Descriptor().Fields().ByName(protoreflect.Name(paths.Get(i).String()))
			if fd == nil {
				return status.Errorf(codes.InvalidArgument, "update_mask: no field %q", paths.Get(i).String())
			}
			n.Set(fd, patch.Get(fd))
		}
		return ss.SendMsg(n)
	case "DeleteNote":
		if _, err := s.find(getString(req, "name")); err != nil {
			return err
		}
		delete(s.notes, getString(req, "name"))
		return out(nil)
	case "SearchNotes", "TreeNotes":
		resp := dynamicpb.NewMessage(md.Output())
		list := resp.Mutable(md.Output().Fields().ByName("notes")).List()
		match := func(n *dynamicpb.Message) bool {
			if md.Name() == "SearchNotes" {
				return strings.Contains(strings.ToLower(getString(n, "title")), strings.ToLower(getString(req, "query")))
			}
			return strings.HasPrefix(getString(n, "name"), getString(req, "prefix"))
		}
		for _, n := range s.sorted("") {
			if match(n) {
				list.Append(protoreflect.ValueOfMessage(n))
			}
		}
		return ss.SendMsg(resp)
	case "WatchNotes":
		for _, n := range s.sorted(getString(req, "parent")) {
			if err := ss.SendMsg(n); err != nil {
				return err
			}
		}
		return nil
	case "ExportNote":
		n, err := s.find(getString(req, "name"))
		if err != nil {
			return err
		}
		resp := dynamicpb.NewMessage(md.Output())
		resp.Set(md.Output().Fields().ByName("content_type"), protoreflect.ValueOfString("text/markdown"))
		resp.Set(md.Output().Fields().ByName("data"), protoreflect.ValueOfBytes([]byte("# "+getString(n, "title")+"\n\n"+getString(n, "text")+"\n")))
		return ss.SendMsg(resp)
	case "ImportNote":
		file := req.Get(md.Input().Fields().ByName("file")).Message()
		data := string(file.Get(file.Descriptor().Fields().ByName("data")).Bytes())
		if ct := file.Get(file.Descriptor().Fields().ByName("content_type")).String(); ct != "text/markdown" {
			return status.Errorf(codes.InvalidArgument, "content type %q, want text/markdown", ct)
		}
		title, text, _ := strings.Cut(strings.TrimPrefix(data, "# "), "\n")
		n := s.api.message("notes.v1.Note", map[string]any{"name": fmt.Sprintf("%s/notes/%d", getString(req, "parent"), s.next), "title": title, "text": strings.TrimSpace(text)})
		s.next++
		s.notes[getString(n, "name")] = n
		return ss.SendMsg(n)
	case "Archive":
		return out(map[string]any{"archived": len(s.sorted("folders/" + getString(req, "folder")))})
	case "ListTags":
		var tags []string
		for _, n := range s.sorted("") {
			l := n.Get(n.Descriptor().Fields().ByName("tags")).List()
			for i := range l.Len() {
				tags = append(tags, l.Get(i).String())
			}
		}
		slices.Sort(tags)
		return out(map[string]any{"tags": slices.Compact(tags)})
	}
	return status.Errorf(codes.Unimplemented, "method %s not implemented", full)
}

// find returns the note of name or NOT_FOUND with a ResourceInfo detail.
func (s *notesServer) find(name string) (*dynamicpb.Message, error) {
	if n := s.notes[name]; n != nil {
		return n, nil
	}
	st, _ := status.New(codes.NotFound, "no note "+name).WithDetails(&errdetails.ResourceInfo{ResourceType: "notes.v1.Note", ResourceName: name})
	return nil, st.Err()
}

// sorted returns the notes under parent (every note for ""), by name.
func (s *notesServer) sorted(parent string) []*dynamicpb.Message {
	var out []*dynamicpb.Message
	for name, n := range s.notes {
		if parent == "" || strings.HasPrefix(name, parent+"/") {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *dynamicpb.Message) int { return strings.Compare(getString(a, "name"), getString(b, "name")) })
	return out
}

func hasTag(n *dynamicpb.Message, tag string) bool {
	l := n.Get(n.Descriptor().Fields().ByName("tags")).List()
	for i := range l.Len() {
		if l.Get(i).String() == tag {
			return true
		}
	}
	return false
}
