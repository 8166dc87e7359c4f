package cgroups

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// oomRecheck is how long WaitOOM sleeps between looks at the OOM counter
// when no event wakes it: a guard against an event the kernel did not
// send (or sent before the watch was in place), not the usual path.
const oomRecheck = time.Second

func (m *manager) WaitOOM(ctx context.Context, id string) (uint64, error) {
	if _, err := m.existing(id); err != nil {
		return 0, err
	}
	dir, ok := m.ctrlDir("memory", id)
	if !ok || (m.mode == ModeV2 && !m.available()["memory"]) {
		return 0, fmt.Errorf("%w: no memory controller to watch for OOM kills", ErrUnavailable)
	}

	// The watch: an fd that becomes readable when the kernel has
	// something to say about the cgroup's memory.
	var watch int
	var count func() (n uint64, hasCounter bool, err error)
	if m.mode == ModeV1 {
		f, err := os.Open(filepath.Join(dir, "memory.oom_control"))
		if err != nil {
			return 0, notFound(err, id)
		}
		defer f.Close()
		if watch, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			return 0, fmt.Errorf("cgroups: eventfd: %w", err)
		}
		defer unix.Close(watch)
		// The kernel signals the eventfd on an OOM in the cgroup and
		// when the cgroup is removed.
		reg := strconv.Itoa(watch) + " " + strconv.Itoa(int(f.Fd()))
		if err := writeFile(filepath.Join(dir, "cgroup.event_control"), reg); err != nil {
			return 0, notFound(err, id)
		}
		count = func() (uint64, bool, error) {
			b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
			if err != nil {
				return 0, false, err
			}
			n, ok := parseKeyValues(string(b))["oom_kill"]
			return n, ok, nil
		}
		// The eventfd is registered for as long as f is open.
		defer runtime.KeepAlive(f)
	} else {
		var err error
		if watch, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err != nil {
			return 0, fmt.Errorf("cgroups: inotify: %w", err)
		}
		defer unix.Close(watch)
		// The kernel notifies IN_MODIFY on memory.events when a count
		// in it changes; IN_IGNORED follows the cgroup's removal.
		if _, err := unix.InotifyAddWatch(watch, filepath.Join(dir, "memory.events"), unix.IN_MODIFY|unix.IN_DELETE_SELF); err != nil {
			return 0, notFound(err, id)
		}
		count = func() (uint64, bool, error) {
			b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
			if err != nil {
				return 0, false, err
			}
			return parseKeyValues(string(b))["oom_kill"], true, nil
		}
	}

	// cancel wakes the poll when ctx ends.
	cancel, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("cgroups: eventfd: %w", err)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(cancel, one[:])
		case <-done:
		}
	}()
	// The fd is closed only once the goroutine is done with it: a write
	// after the close would land in whatever file took its number (a
	// launcher's control socket, under load).
	defer func() {
		close(done)
		<-stopped
		unix.Close(cancel)
	}()

	buf := make([]byte, 4096)
	for {
		n, hasCounter, err := count()
		if err != nil {
			return 0, notFound(err, id)
		}
		if n > 0 {
			return n, nil
		}
		fds := []unix.PollFd{{Fd: int32(watch), Events: unix.POLLIN}, {Fd: int32(cancel), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(oomRecheck/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("cgroups: poll: %w", err)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if fds[0].Revents == 0 {
			continue // a timeout: look at the counter again
		}
		_, _ = unix.Read(watch, buf) // drain; the counter says what happened
		if _, err := os.Stat(dir); err != nil {
			return 0, notFound(err, id)
		}
		if !hasCounter {
			// Before Linux 4.13 memory.oom_control has no oom_kill
			// counter: an event on a cgroup that still exists is an
			// OOM.
			return 1, nil
		}
	}
}

// notFound turns a missing file of a removed cgroup into ErrNotFound.
func notFound(err error, id string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%w: container %q: %v", ErrNotFound, id, err)
	}
	return fmt.Errorf("cgroups: container %q: %w", id, err)
}
