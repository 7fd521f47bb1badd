// Package grpcwire holds the pieces of the gRPC wire protocol that the
// gateway's HTTP doors speak themselves: the grpc-timeout header, the
// percent-encoding of grpc-message, binary (-bin) metadata values, the
// headers that are the protocol's own rather than metadata, and a status
// as grpc-status, grpc-message and grpc-status-details-bin headers or
// trailers.
package grpcwire

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ParseTimeout parses a grpc-timeout header; ok is false when it is
// absent (v empty). A malformed value is INVALID_ARGUMENT.
func ParseTimeout(v string) (d time.Duration, ok bool, err error) {
	if v == "" {
		return 0, false, nil
	}
	if len(v) < 2 || len(v) > 9 {
		return 0, false, badTimeout(v)
	}
	n, perr := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if perr != nil || n < 0 {
		return 0, false, badTimeout(v)
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false, badTimeout(v)
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true, nil
	}
	return time.Duration(n) * unit, true, nil
}

func badTimeout(v string) error {
	return status.Errorf(codes.InvalidArgument, "edgegate: malformed grpc-timeout %q", v)
}

// EncodeMessage percent-encodes a grpc-message value as the gRPC protocol
// asks: printable ASCII but '%' as is, every other byte %XX.
func EncodeMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// DecodeBin decodes a -bin metadata value (base64, padded or not).
func DecodeBin(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// Reserved reports whether k, a lower-case header name, is part of the
// gRPC protocol (or of the HTTP connection), not metadata.
func Reserved(k string) bool {
	switch k {
	case "content-type", "te", "connection", "content-length", "user-agent":
		return true
	}
	return strings.HasPrefix(k, "grpc-")
}

// WireValues is how metadata key k (lower case) goes on the wire: its
// values, -bin ones base64 encoded; ok is false for a key that is not
// sent (reserved, or a pseudo-header).
func WireValues(k string, vs []string) (wire []string, ok bool) {
	if Reserved(k) || strings.HasPrefix(k, ":") {
		return nil, false
	}
	if !strings.HasSuffix(k, "-bin") {
		return vs, true
	}
	wire = make([]string, len(vs))
	for i, v := range vs {
		wire[i] = base64.RawStdEncoding.EncodeToString([]byte(v))
	}
	return wire, true
}

// PutMetadata adds md to h, each key with prefix (http.TrailerPrefix for
// trailers); -bin values are base64 encoded, reserved keys skipped.
func PutMetadata(h http.Header, prefix string, md metadata.MD) {
	for k, vs := range md {
		if vs, ok := WireValues(k, vs); ok {
			key := prefix + http.CanonicalHeaderKey(k)
			h[key] = append(h[key], vs...)
		}
	}
}

// PutStatus adds st to h as the grpc-status, grpc-message and
// grpc-status-details-bin headers, each key with prefix.
func PutStatus(h http.Header, prefix string, st *status.Status) {
	code, msg, details := statusValues(st)
	h[prefix+"Grpc-Status"] = []string{code}
	if msg != "" {
		h[prefix+"Grpc-Message"] = []string{msg}
	}
	if details != "" {
		h[prefix+"Grpc-Status-Details-Bin"] = []string{details}
	}
}

// statusValues is st as the values of grpc-status, grpc-message
// (percent-encoded) and grpc-status-details-bin ("" for none).
func statusValues(st *status.Status) (code, msg, details string) {
	code = strconv.Itoa(int(st.Code())) // no allocation for the codes there are
	msg = EncodeMessage(st.Message())
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			details = base64.RawStdEncoding.EncodeToString(b)
		}
	}
	return code, msg, details
}

// IncomingMetadata is the call metadata of HTTP request headers h: every
// header but the reserved ones, keys lower-case, -bin values decoded (an
// undecodable value is dropped, as grpc-go does), non-binary value slices
// shared with h. user-agent is kept; host, when not empty, is :authority.
func IncomingMetadata(h http.Header, host string) metadata.MD {
	return FilteredMetadata(h, host, nil)
}

// FilteredMetadata is IncomingMetadata of the headers whose lower-case
// key keep holds (nil: every header); user-agent and :authority are kept
// whatever keep says.
func FilteredMetadata(h http.Header, host string, keep map[string]bool) metadata.MD {
	n := len(h)
	if keep != nil {
		n = min(n, len(keep))
	}
	md := make(metadata.MD, n+2)
	for k, vs := range h {
		k = LowerKey(k)
		if Reserved(k) || keep != nil && !keep[k] {
			continue
		}
		if !strings.HasSuffix(k, "-bin") {
			// The request's values as they are: metadata is read, or
			// copied before it is changed (metadata.FromIncomingContext).
			if prev, ok := md[k]; ok {
				md[k] = append(prev[:len(prev):len(prev)], vs...)
			} else {
				md[k] = vs
			}
			continue
		}
		for _, v := range vs {
			b, err := DecodeBin(v)
			if err != nil {
				continue
			}
			md[k] = append(md[k], string(b))
		}
	}
	if ua := h.Get("User-Agent"); ua != "" {
		md["user-agent"] = []string{ua}
	}
	if host != "" {
		md[":authority"] = []string{host}
	}
	return md
}

// LowerKey is an HTTP header key in lower case, the common keys without an
// allocation (net/http hands them over canonical: "Content-Type").
func LowerKey(k string) string {
	if l, ok := commonKeys[k]; ok {
		return l
	}
	return strings.ToLower(k)
}

// commonKeys are the lower-case forms of headers that browsers and gRPC
// clients send on most calls, by canonical key.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"connection", "content-length", "content-type", "cookie", "dnt", "grpc-accept-encoding",
		"grpc-encoding", "grpc-timeout", "origin", "pragma", "priority", "referer",
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode",
		"sec-fetch-site", "te", "traceparent", "tracestate", "user-agent", "x-forwarded-for",
		"x-forwarded-proto", "x-grpc-web", "x-request-id", "x-user-agent",
	} {
		m[http.CanonicalHeaderKey(k)] = k
	}
	return m
}()

// ASCIIJSON is the JSON text s with every character outside printable
// ASCII written as a \uXXXX escape (a UTF-16 surrogate pair beyond the
// BMP): the same JSON value, sendable as gRPC metadata, which carries
// printable ASCII only. Inside JSON text such characters can only be in
// strings, where the escape means the same.
func ASCIIJSON(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// ValidKey reports whether k is a gRPC metadata key: [0-9a-z-_.]+.
func ValidKey(k string) bool {
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return k != ""
}
