//go:build !linux

package launcher

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// Process is a started container; containers need Linux.
type Process struct{}

// Handle identifies a container's init across a restart.
type Handle struct {
	Pid        int    `json:"pid"`
	StartTime  uint64 `json:"start_time"`
	PidNS      uint64 `json:"pid_ns"`
	StatusFile string `json:"status_file,omitempty"`
}

// Start returns ErrNotSupported: containers need Linux.
func Start(ctx context.Context, spec *Spec) (*Process, error) { return nil, ErrNotSupported }

// Attach returns ErrNotSupported: containers need Linux.
func Attach(h Handle) (*Process, error) { return nil, ErrNotSupported }

// IsInit reports false: no container init runs outside Linux.
func IsInit() bool { return false }

// RunInit returns ErrNotSupported: containers need Linux.
func RunInit() error { return errors.New("launcher: RunInit: containers need Linux") }

// Pid returns 0.
func (p *Process) Pid() int { return 0 }

// Handle returns the zero Handle.
func (p *Process) Handle() Handle { return Handle{} }

// Signal returns ErrNotSupported.
func (p *Process) Signal(sig syscall.Signal) error { return ErrNotSupported }

// Kill returns ErrNotSupported.
func (p *Process) Kill() error { return ErrNotSupported }

// Wait returns ErrNotSupported.
func (p *Process) Wait() (ws syscall.WaitStatus, err error) { return ws, ErrNotSupported }

// Enter returns ErrNotSupported: containers need Linux.
func Enter(ctx context.Context, spec *EnterSpec) (*Process, *os.File, error) {
	return nil, nil, ErrNotSupported
}
