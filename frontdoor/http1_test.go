package frontdoor

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// h1Claims feeds stream to a new h1Framing in pieces of n bytes (all of
// it at once when n is 0), then claims a request per "METHOD target" in
// reqs, in order.
func h1Claims(stream string, n int, reqs ...string) []headClaim {
	f := &h1Framing{}
	b := []byte(stream)
	for len(b) > 0 {
		k := len(b)
		if n > 0 {
			k = min(n, len(b))
		}
		f.feed(b[:k])
		b = b[k:]
	}
	var out []headClaim
	for _, r := range reqs {
		var method, target string
		for i := range len(r) {
			if r[i] == ' ' {
				method, target = r[:i], r[i+1:]
				break
			}
		}
		out = append(out, f.claim(&http.Request{Method: method, RequestURI: target}))
	}
	return out
}

// h1Framing follows requests as net/http frames them, whichever way the
// bytes are cut, and tells the handler which head had both Content-Length
// and Transfer-Encoding.
func TestH1Framing(t *testing.T) {
	const (
		get     = "GET /v1/a HTTP/1.1\r\nHost: x\r\n\r\n"
		post    = "POST /v1/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		chunked = "POST /v1/c HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n10 \r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
		both    = "POST /v1/d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	)
	for _, c := range []struct {
		name   string
		stream string
		reqs   []string
		want   []headClaim
	}{
		{"a GET", get, []string{"GET /v1/a"}, []headClaim{headOK}},
		{"bare LF in the head", "GET /v1/a HTTP/1.1\nHost: x\n\n" + get, []string{"GET /v1/a", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"a body by Content-Length, then a GET", post + get, []string{"POST /v1/b", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"a chunked body with an extension and a trailer, then a GET", chunked + get, []string{"POST /v1/c", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"both", both, []string{"POST /v1/d"}, []headClaim{headSmuggling}},
		{"both, in any case, after a request", get + "POST /v1/d HTTP/1.1\r\ncontent-length: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n", []string{"GET /v1/a", "POST /v1/d"}, []headClaim{headOK, headSmuggling}},
		{"both, on HTTP/1.0 (framed by Content-Length)", "POST /v1/d HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc" + get, []string{"POST /v1/d", "GET /v1/a"}, []headClaim{headSmuggling, headOK}},
		{"the smuggled request is the chunked body's next", "POST /v1/d HTTP/1.1\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, []string{"POST /v1/d", "GET /v1/a"}, []headClaim{headSmuggling, headOK}},
		{"a head net/http answers itself is skipped", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" + both, []string{"POST /v1/d"}, []headClaim{headSmuggling}},
		{"a continued header", "GET /v1/a HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n" + get, []string{"GET /v1/a", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"a folded Content-Length", "POST /v1/b HTTP/1.1\r\nContent-Length:\r\n 5\r\n\r\nhello", []string{"POST /v1/b"}, []headClaim{headLost}},
		{"a Transfer-Encoding not chunked", "POST /v1/b HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", []string{"POST /v1/b"}, []headClaim{headLost}},
		{"two Content-Lengths that differ", "POST /v1/b HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", []string{"POST /v1/b"}, []headClaim{headLost}},
		{"two equal Content-Lengths", "POST /v1/b HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + get, []string{"POST /v1/b", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"a chunk line ending in bare LF", "POST /v1/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + get, []string{"POST /v1/c", "GET /v1/a"}, []headClaim{headOK, headLost}},
		{"chunk data not followed by CRLF", "POST /v1/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n" + get, []string{"POST /v1/c", "GET /v1/a"}, []headClaim{headOK, headLost}},
		{"a space before the colon: not Content-Length to net/http", "POST /v1/b HTTP/1.1\r\nContent-Length : 5\r\n\r\n" + get, []string{"POST /v1/b", "GET /v1/a"}, []headClaim{headOK, headOK}},
		{"no head for the request", get, []string{"GET /v1/other"}, []headClaim{headLost}},
	} {
		for _, n := range []int{0, 1, 3, 7} {
			got := h1Claims(c.stream, n, c.reqs...)
			if len(got) != len(c.want) {
				t.Fatalf("%s: %v", c.name, got)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("%s, in pieces of %d: claim %d (%s) = %v, want %v", c.name, n, i, c.reqs[i], got[i], c.want[i])
				}
			}
		}
	}
}

// FuzzH1Framing holds h1Framing to net/http's own reading of a stream of
// requests: every request http.ReadRequest reads (its body read whole) is
// one h1Framing has followed.
func FuzzH1Framing(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST /d HTTP/1.0\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nxGET / HTTP/1.1\n\n",
		"GET / HTTP/1.1\r\nA: 1\r\n\t2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := &h1Framing{}
		fr.feed(stream)
		br := bufio.NewReader(bytes.NewReader(stream))
		for range 8 {
			req, err := http.ReadRequest(br)
			if err != nil || req.ProtoMajor != 1 { // the server answers another version 505 and closes
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if c := fr.claim(req); c == headLost {
				t.Fatalf("%q: net/http read %s %s, h1Framing lost the framing", stream, req.Method, req.RequestURI)
			}
		}
	})
}
