// Package cgroups confines a container's processes in Linux control groups:
// it creates a cgroup per container, sets its CPU, memory, PID and block I/O
// limits, places processes in it, samples its usage, reports when the kernel
// OOM-killed one of its processes, kills everything in it, and removes it.
// It is the cgroup half of the Linux containerizer (the namespace launcher
// and the image store are other packages) and knows nothing of tasks or
// protobufs beyond filling a [mesospb.ResourceStatistics].
//
// # v1 and v2
//
// Machines come with cgroup v1 (one hierarchy per controller, mounted under
// /sys/fs/cgroup/<controller>), cgroup v2 (one unified hierarchy, mounted
// at /sys/fs/cgroup) or a hybrid of both (v1 controllers plus a cgroup2
// mount, usually /sys/fs/cgroup/unified, that holds the controllers v1 has
// not taken: often none). [New] reads /proc/self/mountinfo and /proc/cgroups
// (see [Detect]) and picks, at run time, the v2 manager when the unified
// hierarchy has the cpu and memory controllers, else the v1 manager when v1
// hierarchies have them, else fails with an error naming what is missing.
// Both managers implement [Manager]; [Options.Mode] forces one.
//
// A container with ID id lives in <mount>/<Options.Root>/<id> of every
// hierarchy the manager uses (v1: cpu, cpuacct, memory, pids, freezer,
// blkio, whichever are mounted; v2: the unified one). The manager keeps no
// state of its own beyond [Options]: everything is read back from the
// cgroup file system, so a manager made after the agent was killed (even
// with -9) finds the containers of the previous one with [Manager.List] and
// can sample, kill and destroy them.
//
// Root is made at the top of each hierarchy, not below the agent's own
// cgroup, as Mesos does with "mesos": the containers must outlive the
// agent's cgroup (a systemd unit restarted, say). On v2 the manager enables
// cpu, io, memory and pids in cgroup.subtree_control from the mount down to
// Root; a controller it cannot enable (v1 holds it, as on a hybrid machine)
// is left out, and a limit that needs it fails with [ErrUnavailable], while
// what needs no controller (placing, listing, killing with cgroup.kill or
// cgroup.freeze, CPU time from cpu.stat) still works.
//
// # Placing processes
//
// [Manager.Add] moves a process (all its threads) into the container's
// cgroups. A launcher should call it between fork and exec, with the child
// blocked (on a pipe, say), so that nothing the child does escapes the
// limits. On v2 it may instead start the child directly in the cgroup with
// clone3's CLONE_INTO_CGROUP (in Go: syscall.SysProcAttr.UseCgroupFD and
// CgroupFD, with a file descriptor of the single directory [Manager.Dirs]
// returns); v1 has no such thing.
//
// # Limits, as Mesos sets them
//
// CPU: cpu.shares = 1024 × CPUs (at least 2); on v2 cpu.weight is derived
// from those shares as runc and crun do, 1 + (shares−2) × 9999 / 262142.
// A CFS bandwidth limit (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2
// cpu.max) of CPULimit cores, or of CPUs cores when [Options.EnableCFS] is
// set, over a 100 ms period and at least 1 ms. Memory: the hard limit
// (v1 memory.limit_in_bytes, v2 memory.max) and the soft limit (v1
// memory.soft_limit_in_bytes, v2 memory.low) are both MemoryBytes, raised to
// at least [MinMemoryBytes]; swap is turned off where the kernel has a knob
// for it (v1 memory.memsw.limit_in_bytes, v2 memory.swap.max). As in Mesos,
// [Manager.Update] raises the hard memory limit but never lowers it, since
// lowering it below the usage would OOM-kill the container. PIDs: pids.max.
// Block I/O: a proportional weight where the kernel has one (v1 blkio.weight
// or blkio.bfq.weight, v2 io.weight or io.bfq.weight), silently not set
// where it has none, as throttling-only kernels do.
//
// # Usage
//
// [Manager.Stats] samples CPU time (v1 cpuacct.usage_user/_sys, else
// cpuacct.stat; v2 cpu.stat), CFS periods and throttling, memory usage,
// peak, limits and breakdown (total_* of v1 memory.stat, v2 memory.stat),
// the OOM kill count and the pids count and limit; [Stats.Fill] puts them in
// the fields of a Mesos ResourceStatistics, for GET_CONTAINERS and
// /monitor/statistics.
//
// # OOM
//
// When a container goes over its memory limit the kernel kills a process
// of it; [Manager.WaitOOM] returns then (v1: an eventfd registered on
// memory.oom_control through cgroup.event_control, then the oom_kill
// counter of memory.oom_control; v2: inotify on memory.events and its
// oom_kill counter). The counter lives as long as the cgroup, so an OOM
// that happened before the call, or while no agent ran, is reported too.
// The containerizer then destroys the container and reports the task
// failed with REASON_CONTAINER_LIMITATION_MEMORY.
package cgroups
