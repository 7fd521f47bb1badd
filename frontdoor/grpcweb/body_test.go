package grpcweb

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestCheckFrames(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0, 0, 0, 0, 0}, ""},
		{[]byte{0, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0, 1, 'c'}, ""},
		{[]byte{0, 0, 0, 0, 3, 'a'}, "frame at byte 0 declares 3 bytes, 1 present"},
		{[]byte{0, 0, 0, 0, 0, 0, 0}, "frame header at byte 5 is 2 bytes, want 5"},
		{[]byte{0x80, 0, 0, 0, 0}, "frame at byte 0 is a trailer frame; requests carry none"},
		{[]byte{0, 0xff, 0xff, 0xff, 0xff}, "frame at byte 0 declares 4294967295 bytes, 0 present"},
	} {
		if got := checkFrames(c.in); got != c.want {
			t.Errorf("checkFrames(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecodeBase64Chunks(t *testing.T) {
	a, b := []byte{1, 2, 3, 4}, []byte{5}
	in := base64.StdEncoding.EncodeToString(a) + base64.StdEncoding.EncodeToString(b)
	got, err := decodeBase64Chunks([]byte(in))
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := decodeBase64Chunks([]byte("@@@@")); err == nil {
		t.Fatal("want an error for bad base64")
	}
}
