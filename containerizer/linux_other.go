//go:build !linux

package containerizer

import (
	"context"
	"errors"
	"syscall"

	"github.com/apronhq/apron/containerizer/cgroups"
)

// Linux is the Linux containerizer; elsewhere it cannot be made.
type Linux struct{}

var errLinuxOnly = errors.New("containerizer: the Linux containerizer needs Linux")

// NewLinux fails: the Linux containerizer needs Linux.
func NewLinux(LinuxOptions) (*Linux, error) { return nil, errLinuxOnly }

// DefaultPidsMax is the pids limit of a container when LinuxOptions.PidsMax
// is 0.
const DefaultPidsMax = 16384

// Launch implements Containerizer.
func (*Linux) Launch(context.Context, Config) error { return errLinuxOnly }

// Wait implements Containerizer.
func (*Linux) Wait(context.Context, string) (Termination, error) { return Termination{}, errLinuxOnly }

// Signal implements Containerizer.
func (*Linux) Signal(context.Context, string, syscall.Signal) error { return errLinuxOnly }

// Destroy implements Containerizer.
func (*Linux) Destroy(context.Context, string) error { return errLinuxOnly }

// Usage implements Containerizer.
func (*Linux) Usage(context.Context, string) (Usage, error) { return Usage{}, errLinuxOnly }

// Stats samples the container's cgroups.
func (*Linux) Stats(context.Context, string) (cgroups.Stats, error) {
	return cgroups.Stats{}, errLinuxOnly
}

// Containers implements Containerizer.
func (*Linux) Containers(context.Context) ([]string, error) { return nil, errLinuxOnly }

// Recover implements Containerizer.
func (*Linux) Recover(context.Context) ([]string, error) { return nil, errLinuxOnly }

// Close implements Containerizer.
func (*Linux) Close() error { return nil }
