package metrics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when they leave goroutines running,
// such as a blocked handler's call never released.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
