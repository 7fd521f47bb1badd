// Package version reports which edgegate this is.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-ldflags "-X ...version.Version=v1.2.3");
// "dev" otherwise.
var Version = "dev"

// String returns the version, the VCS revision when the build recorded one,
// and the Go version.
func String() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("edgegate %s%s %s", Version, rev, runtime.Version())
}
