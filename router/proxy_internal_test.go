package router

import "testing"

func TestIsTransportFailure(t *testing.T) {
	for msg, want := range map[string]bool{
		"connection error: desc = \"transport: Error while dialing\"":       true,
		"write tcp 127.0.0.1:49532->127.0.0.1:45335: write: broken pipe":    true,
		"read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer": true,
		"transport is closing":                   true,
		"the upstream's own UNAVAILABLE message": false,
		"":                                       false,
	} {
		if got := isTransportFailure(msg); got != want {
			t.Errorf("isTransportFailure(%q) = %v, want %v", msg, got, want)
		}
	}
}
