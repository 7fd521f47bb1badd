package test

import (
	"os"
	"testing"
)

// TestMain runs the tests, then removes the binaries the harness built
// (binaries) for them.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}
