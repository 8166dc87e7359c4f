//go:build !linux

package agent

import "errors"

// recycleLogs says whether the store recycles task logs (see store).
const recycleLogs = false

// renameNoReplace is not available here: task logs are not recycled.
func renameNoReplace(from, to string) error {
	return errors.ErrUnsupported
}
