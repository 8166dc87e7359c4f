//go:build !unix

package agent

import "syscall"

func unixSignalName(sig syscall.Signal) string { return "" }
