package agent

import (
	"os"

	"golang.org/x/sys/unix"
)

// recycleLogs says whether the store recycles task logs (see store).
const recycleLogs = true

// renameNoReplace renames from to to unless to exists (then an error
// matching fs.ErrExist): a recycled log must never take the place of a
// live one.
func renameNoReplace(from, to string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}
