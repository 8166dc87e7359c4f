package launcher

import "os"

// EnterSpec describes a process started inside a running container (see
// Enter): Mesos's nested container of the DEBUG class, which task exec
// runs.
type EnterSpec struct {
	// Target is the Handle of a process of the container, whose mount,
	// pid, uts and ipc namespaces are joined and whose working directory
	// is taken: the container's init (Process.Handle). It is checked
	// against the live process, so a reused pid is never entered.
	Target Handle
	// Args, Path, Env and User are as in Spec: argv (looked up in the
	// container's root filesystem), the executable when not Args[0], the
	// whole environment, and the identity (nil keeps the launcher's own).
	Args []string
	Path string
	Env  []string
	User *User
	// Dir is the working directory in the container; "" is Target's.
	Dir string
	// Stdin, Stdout and Stderr are the process's standard files (nil is
	// /dev/null), unless TTY.
	Stdin, Stdout, Stderr *os.File
	// TTY gives the process a new pseudo-terminal of the container's
	// /dev/pts as its controlling terminal and standard files; Enter
	// returns the terminal's master side. Rows and Columns, when not 0,
	// are its window size.
	TTY           bool
	Rows, Columns uint16
	// CgroupProcs are cgroup.procs files the helper is written to before
	// it enters anything: the process and its children are accounted
	// there.
	CgroupProcs []string
	// Init is as Spec.Init: the binary run as the helper ("" is this
	// program).
	Init string
}
