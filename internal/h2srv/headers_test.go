package h2srv

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// A request's header list reaches its handler whole, pseudo-headers
// first, whether it fits the stream's own room for fields or not, and
// stays the handler's while the connection decodes the next requests'
// blocks (into the same scratch list and HPACK table).
func TestRequestHeaderLists(t *testing.T) {
	lists := make(chan []hpack.HeaderField, 3)
	ts := startServer(t, &Server{Handler: HandlerFunc(func(st *Stream) {
		lists <- st.Header()
		_ = st.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "204"}}, true)
	})}, false)
	cl := h2Client(nil)
	defer cl.CloseIdleConnections()
	extra := []int{1, 20, 2} // fields beyond the pseudo-headers and the client's own
	for i, n := range extra {
		req, err := http.NewRequest("GET", "http://"+ts.Addr+"/"+fmt.Sprint(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		for k := range n {
			req.Header.Set(fmt.Sprintf("x-f%d", k), fmt.Sprintf("request %d field %d", i, k))
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	for i, n := range extra {
		h := <-lists
		regular, custom := false, 0
		for _, f := range h {
			if f.IsPseudo() {
				if regular {
					t.Fatalf("request %d: pseudo-header %s after a regular field: %v", i, f.Name, h)
				}
				if f.Name == ":path" && f.Value != fmt.Sprintf("/%d", i) {
					t.Fatalf("request %d: :path %q", i, f.Value)
				}
				continue
			}
			regular = true
			if strings.HasPrefix(f.Name, "x-f") {
				custom++
				if !strings.HasPrefix(f.Value, fmt.Sprintf("request %d ", i)) {
					t.Fatalf("request %d: %s is %q, another request's", i, f.Name, f.Value)
				}
			}
		}
		if custom != n {
			t.Fatalf("request %d: %d of its %d fields: %v", i, custom, n, h)
		}
	}
}
