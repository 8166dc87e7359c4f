// Package launcher starts a process in new Linux namespaces with its own
// root filesystem: the isolation half of Apron's Linux containerizer (Mesos's
// "mesos-containerizer launch" with the linux filesystem, namespaces/pid and
// volume isolators). Cgroups (package containerizer/cgroups) and images
// (containerizer/image, which provides the root filesystem directory) are
// composed with it into a Containerizer elsewhere; the launcher knows neither.
//
// # The helper
//
// [Start] (ctx bounds the start, not the container) re-executes the current binary (/proc/self/exe) as the
// container's init, cloned into new pid, mount, uts and ipc namespaces
// (the network stays the host's). A program that uses the launcher must
// therefore call [IsInit] first thing in main, before flags, goroutines or
// anything else:
//
//	func main() {
//		if launcher.IsInit() {
//			launcher.RunInit() // never returns
//		}
//		...
//	}
//
// (as containerizer.IsReaper/RunReaper; a test binary does it in TestMain).
// Spec.Init may name another binary that does the same: the init then
// skips the package initialization of a large agent binary
// (testdata/init is such a binary; BenchmarkStart measures both). The init
// gets an environment of its own (GOMAXPROCS=1 and its marker), not the
// agent's.
// The helper reads the container's [Spec] from a socket shared with the
// parent, which first puts it in the cgroups of Spec.CgroupProcs and runs
// Spec.Hook with its host pid. It then, in this order (runc's
// rootfs_linux.go and Mesos's launch.cpp order):
//
//  1. makes every mount recursively a slave of the host's, so that mounts
//     on the host still reach it but none of its own leak out;
//  2. with a root filesystem: binds it onto itself (pivot_root wants a
//     mount point); mounts /proc (a new procfs for the new pid namespace),
//     /sys (sysfs), both read-only, with runc's masked paths (/proc/kcore,
//     /proc/keys, /sys/firmware, ...) covered; a tmpfs /dev with null, zero,
//     full, random, urandom and tty (mknod), /dev/pts (a new devpts
//     instance), /dev/shm, and the /dev/fd, stdin, stdout, stderr, ptmx
//     links; a tmpfs /tmp; the sandbox at Spec.SandboxTarget
//     (/mnt/mesos/sandbox); the volumes of Spec.Mounts; then pivot_root
//     into it and detaches the old root;
//     without one (the host's root): mounts a new /proc, read-only, and the
//     sandbox and volumes in the same places; /dev, /sys and /tmp stay the
//     host's;
//  3. sets the hostname; creates the working directory if an image lacks
//     it (as Mesos does for an image's WORKDIR); drops to the task's
//     groups, gid and uid; changes to the working directory; and executes
//     the task.
//
// The sandbox mount point of a container without an image,
// /mnt/mesos/sandbox, is created on the host's root file system if
// missing (an empty directory, left there); Mesos instead leaves such a
// container's sandbox at its host path. Other mount points on the host's
// root must exist already: the launcher does not create directories in the
// host's tree, only in an image's and in the sandbox.
//
// Users are numbers here: the caller resolves CommandInfo.user (or the
// framework's user) to a uid, gid and groups on the host before the start,
// as Mesos's launch.cpp does before it changes root.
//
// Mount targets are resolved inside the root filesystem, symbolic links in
// it followed as if it were "/" (never out of it), and the final mount is
// made through an O_PATH descriptor checked to be beneath the root, so an
// image cannot point a volume at the host's files. Targets in /proc, /sys
// and /dev are refused.
//
// /proc read-only: Mesos mounts it read-write and relies on the user
// namespace-less container's lack of privilege; the issue asks for
// read-only, which also stops root in the container writing /proc/sys or
// /proc/sysrq-trigger. The price: a task cannot adjust its own
// /proc/self/oom_score_adj (the agent can, from the host).
//
// # pid 1
//
// Unless Spec.NoInit, the helper stays as the container's pid 1 (running as
// the task's user, like Mesos's executor-as-init): it forks the task, reaps
// every orphan that the pid namespace hands it, forwards SIGHUP, SIGINT,
// SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM and SIGCONT to the
// task, and when the task ends it reports the task's raw wait status over
// the socket and exits with the task's exit code (128+n for a signal n).
// Its exit empties the pid namespace: the kernel kills whatever is left,
// and the parent's Wait returns only once it is all gone. Once the init has
// changed its uid, the kernel makes it non-dumpable: the task, though of the
// same uid, cannot ptrace it or reach its descriptors.
// [Process.Wait] returns the task's wait status (so a task killed by
// SIGTERM is reported as killed by SIGTERM, not as exit 143). With
// Spec.NoInit the task is executed in the helper's place and is pid 1
// itself (and, as any pid 1, gets from the host only the signals it
// handles, SIGKILL aside). Errors before the task runs (a mount, a missing argv[0], a
// uid that cannot be set) come back to [Start] as its error, text and all.
//
// # Finding a container again
//
// [Process.Handle] is what an agent checkpoints: the helper's host pid, its
// start time and the inode of its pid namespace. [Attach] after a restart
// checks all three before it signals anything, so a reused pid is never
// mistaken for the container. An attached process is not the agent's child:
// its exit status is lost ([ErrStatusLost]).
package launcher
