package ratelimit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when they leave goroutines running,
// such as a memory store's sweep goroutine never closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
