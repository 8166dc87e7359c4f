//go:build !unix

package executor

import (
	"strconv"
	"syscall"
)

// signalName is "signal N": only Unix has named signals to report.
func signalName(sig syscall.Signal) string { return "signal " + strconv.Itoa(int(sig)) }
