package tracing_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when they leave goroutines running,
// such as a tracer provider's batch span processor never shut down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
