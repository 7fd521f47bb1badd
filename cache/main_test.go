package cache_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when they leave goroutines running,
// such as a memory tier never closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
