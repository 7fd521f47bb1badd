package config

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// messageAt returns the descriptor of the message at path, a field path as
// pathAt gives it (keys as written in the file, in proto or lowerCamel
// form: "rateLimits[0]"), and path with proto names ("rate_limits[0]"),
// which protovalidate's errors use; nil when path names no message.
func messageAt(path string) (protoreflect.MessageDescriptor, string) {
	md := (&configv1.Config{}).ProtoReflect().Descriptor()
	var canon strings.Builder
	for _, seg := range splitPath(path) {
		if _, err := strconv.Atoi(seg); err == nil {
			canon.WriteString("[" + seg + "]")
			continue
		}
		fd := md.Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = md.Fields().ByJSONName(seg)
		}
		if fd == nil || fd.Message() == nil || fd.IsMap() {
			return nil, ""
		}
		if canon.Len() > 0 {
			canon.WriteByte('.')
		}
		canon.WriteString(string(fd.Name()))
		md = fd.Message()
	}
	return md, canon.String()
}

// didYouMean returns the field of md that key, a key md has no field for,
// most likely misspells, and its name in the form key is written in
// (lowerCamel when key has an upper-case letter and no underscore): the
// field at the smallest edit distance from key (insertions, deletions,
// substitutions and swaps of adjacent letters; letter case ignored), which
// must be at most 2 and at most half key's length; else the one field whose
// name starts with key or that key starts with (3 letters or more). Nil when
// there is none or no single best.
func didYouMean(md protoreflect.MessageDescriptor, key string) (protoreflect.FieldDescriptor, string) {
	k := strings.ToLower(key)
	var best, prefix protoreflect.FieldDescriptor
	bestDist, bests, prefixes := -1, 0, 0
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		d := -1
		for _, name := range []string{string(fd.Name()), fd.JSONName()} {
			n := strings.ToLower(name)
			if e := editDistance(k, n); d < 0 || e < d {
				d = e
			}
			if short := min(len(k), len(n)); short >= 3 && (strings.HasPrefix(n, k) || strings.HasPrefix(k, n)) && prefix != fd {
				prefix = fd
				prefixes++
			}
		}
		switch {
		case d > 2 || 2*d > len(k):
		case bestDist < 0 || d < bestDist:
			best, bestDist, bests = fd, d, 1
		case d == bestDist:
			bests++
		}
	}
	fd := best
	if bests != 1 {
		fd = nil
		if bests == 0 && prefixes == 1 {
			fd = prefix
		}
	}
	if fd == nil {
		return nil, ""
	}
	if strings.ToLower(key) != key && !strings.Contains(key, "_") {
		return fd, fd.JSONName()
	}
	return fd, string(fd.Name())
}

// editDistance is the optimal string alignment distance of a and b: the
// fewest insertions, deletions, substitutions and swaps of adjacent
// characters that turn a into b.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance of s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}
