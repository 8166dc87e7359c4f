//go:build !linux

package containerizer

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Process is the process containerizer. It needs Linux (/proc and pidfds);
// on other systems NewProcess fails.
type Process struct{}

var errProcessUnsupported = fmt.Errorf("the process containerizer needs Linux: %w", errors.ErrUnsupported)

// NewProcess fails: the process containerizer needs Linux.
func NewProcess(opts ProcessOptions) (*Process, error) { return nil, errProcessUnsupported }

func (*Process) Launch(context.Context, Config) error { return errProcessUnsupported }
func (*Process) Wait(context.Context, string) (Termination, error) {
	return Termination{}, errProcessUnsupported
}
func (*Process) Signal(context.Context, string, syscall.Signal) error { return errProcessUnsupported }
func (*Process) Destroy(context.Context, string) error                { return errProcessUnsupported }
func (*Process) Usage(context.Context, string) (Usage, error)         { return Usage{}, errProcessUnsupported }
func (*Process) Containers(context.Context) ([]string, error)         { return nil, errProcessUnsupported }
func (*Process) Recover(context.Context) ([]string, error)            { return nil, errProcessUnsupported }
func (*Process) Close() error                                         { return nil }
