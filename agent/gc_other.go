//go:build !linux

package agent

import "errors"

// statfsUsage is not measured on this platform: the collector then keeps
// paths for GCDelay whatever the disk's usage.
func statfsUsage(path string) (float64, error) { return 0, errors.ErrUnsupported }

// mountPoints: the collector unmounts nothing on this platform.
func mountPoints() ([]string, error) { return nil, nil }

func unmount(path string) error { return errors.ErrUnsupported }
