package containerizer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the times in /proc/<pid>/stat: USER_HZ, fixed at 100
// by the kernel's ABI on every architecture Go supports.
const userHZ = 100

// procStat is what the containerizer reads from /proc/<pid>/stat.
type procStat struct {
	State      byte   // R, S, D, Z, ...
	PGID       int    // process group
	Session    int    // session ID: the pid of a session leader
	UTime      uint64 // user time, USER_HZ ticks
	STime      uint64 // system time
	CUTime     uint64 // user time of waited-for children
	CSTime     uint64 // system time of waited-for children
	Threads    int
	StartTicks uint64 // start time after boot, in ticks: with the pid, names one process
	RSSPages   uint64
}

// errNoProcess: no process has this pid.
var errNoProcess = errors.New("no such process")

// readProcStat reads /proc/<pid>/stat. buf is reused when large enough.
func readProcStat(pid int, buf []byte) (procStat, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procStat{}, errNoProcess
		}
		return procStat{}, err
	}
	defer f.Close()
	if cap(buf) < 1024 {
		buf = make([]byte, 1024)
	}
	buf = buf[:cap(buf)]
	n, err := f.Read(buf)
	if err != nil {
		// ESRCH when the process went away between the open and the read.
		return procStat{}, errNoProcess
	}
	return parseProcStat(buf[:n])
}

// parseProcStat parses the text of /proc/<pid>/stat. The command name (field
// 2) is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 > len(b) {
		return procStat{}, fmt.Errorf("malformed /proc stat %.60q", b)
	}
	// fields[0] is field 3 (state) in proc(5)'s numbering.
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 22 {
		return procStat{}, fmt.Errorf("short /proc stat %.60q", b)
	}
	var s procStat
	var err error
	num := func(field int) uint64 {
		v, e := strconv.ParseUint(fields[field-3], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("/proc stat field %d: %w", field, e)
		}
		return v
	}
	s.State = fields[0][0]
	s.PGID = int(num(5))
	s.Session = int(num(6))
	s.UTime = num(14)
	s.STime = num(15)
	s.CUTime = num(16)
	s.CSTime = num(17)
	s.Threads = int(num(20))
	s.StartTicks = num(22)
	// rss may read as a negative number in rare accounting races.
	if rss, e := strconv.ParseInt(fields[24-3], 10, 64); e == nil && rss > 0 {
		s.RSSPages = uint64(rss)
	}
	return s, err
}

// groupUsage sums the /proc stats of the live processes of process group
// pgid. It reads every process's stat: cheap next to a fork, and the only
// way to find the members of a group.
func groupUsage(pgid int) (procs, threads int, utime, stime, rssPages uint64, err error) {
	d, err := os.Open("/proc")
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	buf := make([]byte, 1024)
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		pid, e := strconv.Atoi(name)
		if e != nil {
			continue
		}
		s, e := readProcStat(pid, buf)
		if e != nil || s.PGID != pgid || s.State == 'Z' {
			continue
		}
		procs++
		threads += s.Threads
		utime += s.UTime + s.CUTime
		stime += s.STime + s.CSTime
		rssPages += s.RSSPages
	}
	return procs, threads, utime, stime, rssPages, nil
}

// readBootID returns the kernel's boot ID, which changes at every boot: a
// checkpoint from an earlier boot names no live process whatever its pid.
func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
