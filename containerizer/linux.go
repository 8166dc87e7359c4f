package containerizer

import (
	"log/slog"

	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/containerizer/image"
)

// LinuxOptions configure NewLinux, the Linux containerizer: Mesos's
// "mesos" containerizer with the cgroups/cpu, cgroups/mem, cgroups/pids,
// filesystem/linux, namespaces/pid (unless HostPIDNamespace) and
// docker/runtime isolators.
//
// Each container gets new mount, uts and ipc namespaces (and pid,
// unless HostPIDNamespace), the host's network, cgroups with its limits
// (package cgroups), and, with Config.Image, a root filesystem of its own
// provisioned from the image (package image) in <StateDir>/<id>, with
// the sandbox at /mnt/mesos/sandbox (MESOS_SANDBOX) as its working
// directory unless the image names one. Without an image the container
// keeps the host's root and its sandbox stays at its host path, as
// Mesos does without a root filesystem; the environment is then exactly
// Config.Env. A container that goes over its memory limit is killed
// whole and ends with ReasonMemoryLimit.
//
// The program must call launcher.IsInit and launcher.RunInit first thing
// in main (see package launcher), or name such a binary in Init.
//
// Containers outlive the agent (their init is in a session of its own)
// unless Config.DiesWithAgent: then the init, and the task, get SIGKILL
// when the agent process ends, however it ends (launcher's
// Spec.DiesWithParent, a parent-death signal); in a pid namespace that
// ends everything in the container, in the host's the task's own
// children survive it.
//
// Signal sends the signal to every process in the container's cgroups,
// but the init, which would forward it to the task a second time; SIGKILL
// reaches the init too (and with it, in a pid namespace, everything).
type LinuxOptions struct {
	// StateDir holds each container's checkpoint and root filesystem, in
	// <StateDir>/<id>: the launcher's handle of its init, its image, root
	// filesystem, cgroup and sandbox. It must survive agent restarts (not
	// a tmpfs cleared with the agent). Required; absolute.
	StateDir string
	// Cgroups configure the cgroup manager (cgroups.New), unless
	// CgroupManager is set. Its Root should be the same across restarts:
	// that is where the containers' cgroups are.
	Cgroups       cgroups.Options
	CgroupManager cgroups.Manager
	// Images provisions the root filesystems of containers with an image;
	// nil refuses those with ErrUnsupported.
	Images *image.Store
	// PidsMax is each container's limit of processes and threads (the
	// pids cgroup); 0 means DefaultPidsMax, a negative number no limit.
	PidsMax int
	// HostPIDNamespace keeps containers in the host's pid namespace, as
	// Mesos without the namespaces/pid isolator. Otherwise each container
	// has its own, its init is pid 1, and all of it ends with the task.
	HostPIDNamespace bool
	// Init is the binary started as each container's init (see
	// launcher.Spec.Init); "" is this program.
	Init string
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps Usage; nil is the system clock.
	Clock Clock
}

var _ Containerizer = (*Linux)(nil)
