package upstream_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when they leave goroutines running,
// such as the connection of a cluster dialled for a pool that New then
// refused, or an ejection timer that outlived its cluster.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
