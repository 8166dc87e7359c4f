//go:build !linux

package containerizer

import "os"

// reaperEnv marks the environment of a reaper process.
const reaperEnv = "APRON_CONTAINERIZER_REAPER"

// IsReaper reports whether this process was started as a process
// containerizer's reaper (see ProcessOptions.Reaper).
func IsReaper() bool { return os.Getenv(reaperEnv) == "1" }

// RunReaper fails: the process containerizer, and so its reaper, needs
// Linux.
func RunReaper() error { return errProcessUnsupported }
