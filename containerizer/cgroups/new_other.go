//go:build !linux

package cgroups

import "fmt"

func newManager(Options) (Manager, error) {
	return nil, fmt.Errorf("%w: cgroups are a Linux feature", ErrUnavailable)
}
