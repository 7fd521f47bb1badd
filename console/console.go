// Package console is the gateway's console: a page, served by the admin
// server at /console/, that lists every routed method and REST binding of
// the schema registry and calls any of them over gRPC-Web (binary or text)
// or REST, showing the answer, headers, trailers, status, details, timing
// and streamed messages as they arrive.
//
// Every asset is embedded (dist/, built from tools/browser/console by
// `make console`, committed and checked by `make checkconsole`); the page
// needs no network beyond the gateway. It reads:
//
//   - GET api/methods: the methods as JSON (route, cluster, source, call
//     type, REST bindings, and the input message as a JSON template with
//     each field's type and comment, from the registry's descriptors);
//   - GET api/descriptors: the registry's files as a binary
//     google.protobuf.FileDescriptorSet, from which the page encodes and
//     decodes messages (dynamic messages: no generated code);
//
// and calls through call/, where one listener's HTTP handler (its doors and
// its whole policy chain) is mounted: the page calls its own origin, so no
// CORS is involved, and an auth token it sends is checked as on that
// listener. The token stays in the page.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/edgegate/edgegate/schema"
)

//go:embed dist
var dist embed.FS

// Options are what the console shows and calls.
type Options struct {
	// Registry returns the schema registry of the configuration in force.
	Registry func() *schema.Registry
	// Route returns the route name and cluster of a method
	// ("/pkg.Service/Method"); ok false when it has none.
	Route func(fullMethod string) (name, cluster string, ok bool)
	// Door is the HTTP handler of the listener the console calls through
	// (gRPC-Web and REST doors); nil: the page lists but cannot call.
	Door http.Handler
	// Listener names that listener and its address, for the page's
	// copy-as-curl and copy-as-grpcurl commands.
	Listener, Address string
}

// Handler returns the console's handler, to be mounted at /console/ (it
// strips that prefix itself).
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(dist, "dist")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /console.js", files)
	mux.Handle("GET /console.css", files)
	mux.HandleFunc("GET /api/methods", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(describe(o))
	})
	mux.HandleFunc("GET /api/descriptors", func(w http.ResponseWriter, _ *http.Request) {
		b, err := proto.Marshal(fileSet(o.Registry()))
		if err != nil {
			http.Error(w, "console: encoding the descriptors: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	if o.Door != nil {
		mux.Handle("/call/", http.StripPrefix("/call", o.Door))
	}
	return http.StripPrefix("/console", mux)
}

// fileSet is every file of r, each after the files it imports.
func fileSet(r *schema.Registry) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	r.Files().RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		add(fd)
		return true
	})
	// Error details decode in the page whether or not an API imports them.
	add(errdetails.File_google_rpc_error_details_proto)
	return set
}
