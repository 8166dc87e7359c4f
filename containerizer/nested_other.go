//go:build !linux

package containerizer

import "fmt"

// Resize sets the window size of a terminal's streams; terminals need
// Linux.
func (s *Stdio) Resize(rows, columns uint16) error {
	return fmt.Errorf("terminals need Linux: %w", ErrUnsupported)
}
