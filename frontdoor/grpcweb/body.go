package grpcweb

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReadBody reads a gRPC-Web request body (unary and server-streaming
// calls send it whole), bounded by MaxBodyBytes, and checks that it is
// well-formed: valid base64 in text mode, and a sequence of complete
// length-prefixed frames, none a trailer frame. It returns the frames
// (decoded from base64 in text mode, so that a text body is decoded once,
// by a decoder that accepts it in padded chunks), or the status to answer
// with: INVALID_ARGUMENT with a message that says what is wrong, or
// RESOURCE_EXHAUSTED when the body is too large.
func (d *Door) ReadBody(r *http.Request) ([]byte, *status.Status) {
	max := d.o.MaxBodyBytes
	text := IsText(r.Header.Get("Content-Type"))
	limit := max + 5
	if text {
		limit = (limit + 2) / 3 * 4
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, status.New(codes.InvalidArgument, "edgegate: reading the gRPC-Web request body: "+err.Error())
	}
	if int64(len(raw)) > limit {
		return nil, status.New(codes.ResourceExhausted, fmt.Sprintf("edgegate: gRPC-Web request body is larger than %d bytes", max))
	}
	frames := raw
	if text {
		frames, err = decodeBase64Chunks(raw)
		if err != nil {
			return nil, status.New(codes.InvalidArgument, "edgegate: malformed gRPC-Web text body: "+err.Error())
		}
	}
	if msg := checkFrames(frames); msg != "" {
		return nil, status.New(codes.InvalidArgument, "edgegate: malformed gRPC-Web body: "+msg)
	}
	return frames, nil
}

// decodeBase64Chunks decodes gRPC-Web text: standard base64, possibly
// several padded chunks one after another.
func decodeBase64Chunks(b []byte) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		end := len(b)
		if i := bytes.IndexByte(b, '='); i >= 0 {
			end = i
			for end < len(b) && b[end] == '=' {
				end++
			}
		}
		chunk := b[:end]
		b = b[end:]
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(chunk)))
		n, err := base64.StdEncoding.Decode(dec, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, dec[:n]...)
	}
	return out, nil
}

// checkFrames returns what is wrong with a sequence of gRPC-Web request
// frames, or "".
func checkFrames(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for off := 0; off < len(b); {
		if len(b)-off < 5 {
			return fmt.Sprintf("frame header at byte %d is %d bytes, want 5", off, len(b)-off)
		}
		if b[off]&0x80 != 0 {
			return fmt.Sprintf("frame at byte %d is a trailer frame; requests carry none", off)
		}
		n := int(b[off+1])<<24 | int(b[off+2])<<16 | int(b[off+3])<<8 | int(b[off+4])
		if n > len(b)-off-5 {
			return fmt.Sprintf("frame at byte %d declares %d bytes, %d present", off, n, len(b)-off-5)
		}
		off += 5 + n
	}
	return ""
}
