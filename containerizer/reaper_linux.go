package containerizer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The reaper is a process of its own that forks the process containerizer's
// containers, so that their exit status outlives the agent.
//
// Only a process's parent learns how it ended. A container forked by the
// agent itself is orphaned when the agent stops (SIGTERM leaves tasks
// running; kill -9 too), and a restarted agent can then see that the
// process is gone but not how it ended. The reaper is the parent instead:
// one process per state directory (not one per container, as Mesos's
// executors are), started by the first Launch that needs it, in a session of
// its own so that signals meant for the agent's process group miss it. It
// reaps a container only when the containerizer asks for its status, so an
// ended container stays a zombie — its pid and start time still its own —
// until an agent, this one or a later one, has recorded how it ended. When
// no containerizer is connected and it has no container left, it exits; it
// also exits, leaving its containers to init, when its state directory is
// removed or no containerizer has connected for reaperRecoveryTimeout
// (Mesos's executors give up on their agent after the same 15 minutes).
//
// The containerizer and the reaper speak over a Unix socket, reaper.sock in
// the state directory (0700: nobody else can reach it, nor bind the name
// first, as anyone could in the abstract namespace), addressed through
// /proc/self/fd so that a long state directory path does not matter. Each
// side checks that the other runs as its user (or root). Each message is a
// 4-byte big-endian length and a JSON body, file descriptors passed
// alongside (the container's stdin, stdout and stderr to the reaper, its
// pidfd back).

// reaperEnv marks the environment of a reaper process.
const reaperEnv = "APRON_CONTAINERIZER_REAPER"

// IsReaper reports whether this process was started as a process
// containerizer's reaper (see ProcessOptions.Reaper): its main must then call
// RunReaper and exit, before doing anything else.
func IsReaper() bool { return os.Getenv(reaperEnv) == "1" }

// RunReaper is the main of a reaper process. It serves the containerizers of
// one state directory until none is connected and no container it started
// is left (or until the directory is removed, or no containerizer has come
// for 15 minutes), then returns nil.
func RunReaper() error {
	if !IsReaper() {
		return errors.New("containerizer: RunReaper: this process was not started as a reaper")
	}
	dir := os.NewFile(4, "state directory")
	defer dir.Close()
	f := os.NewFile(3, "reaper socket")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("containerizer: reaper: the listening socket (fd 3): %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return fmt.Errorf("containerizer: reaper: fd 3 is a %T, not a Unix socket", l)
	}
	r := &reaper{
		children: make(map[int]*reaperChild),
		peers:    make(map[int]int),
		log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	return r.serve(ul, dir)
}

const (
	// reaperFirstConnTimeout is how long a new reaper waits for its first
	// containerizer (the one that started it, normally at once).
	reaperFirstConnTimeout = time.Minute
	// reaperRecoveryTimeout is how long a reaper waits for a containerizer
	// to come back (Mesos's --recovery_timeout).
	reaperRecoveryTimeout = 15 * time.Minute
)

// reaperMaxFrame bounds one message: a container's environment and argv.
const reaperMaxFrame = 64 << 20

// reaperCallTimeout bounds one call, so that a stopped reaper cannot hang
// the agent.
const reaperCallTimeout = 30 * time.Second

type reaperRequest struct {
	Op   string `json:"op"` // "start", "status", "find" or "forget"
	ID   string `json:"id"`
	PID  int    `json:"pid,omitempty"`
	Path string `json:"path,omitempty"`
	// Argv, Env, Dir and Cred are the start's.
	Argv []string            `json:"argv,omitempty"`
	Env  []string            `json:"env,omitempty"`
	Dir  string              `json:"dir,omitempty"`
	Cred *syscall.Credential `json:"cred,omitempty"`
	// DiesWithAgent: kill it when no containerizer is connected any more.
	DiesWithAgent bool `json:"dies_with_agent,omitempty"`
}

// Child states in a status answer.
const (
	reaperRunning = "running"
	reaperEnded   = "ended"
	reaperUnknown = "unknown" // not a child of this reaper, or forgotten
)

type reaperResponse struct {
	Err   string `json:"err,omitempty"`
	PID   int    `json:"pid,omitempty"`
	State string `json:"state,omitempty"`
	// Status is the raw wait status of an ended child; UserNs and SysNs its
	// CPU time with its waited-for children's.
	Status uint32 `json:"status,omitempty"`
	UserNs int64  `json:"user_ns,omitempty"`
	SysNs  int64  `json:"sys_ns,omitempty"`
}

// reaperChild is a process the reaper started and has not forgotten.
type reaperChild struct {
	id            string
	diesWithAgent bool
	owner         int  // the pid of the process that started it
	forgotten     bool // running, and to be reaped when it ends; nobody asks for it
	ended         bool
	status        syscall.WaitStatus
	rusage        syscall.Rusage
}

// reaper is the state of a reaper process.
type reaper struct {
	log *slog.Logger

	mu       sync.Mutex
	children map[int]*reaperChild
	conns    int
	peers    map[int]int   // open connections by peer pid
	served   bool          // a containerizer has connected
	idle     chan struct{} // closed once idle; made by serve
}

func (r *reaper) serve(l *net.UnixListener, dir *os.File) error {
	defer l.Close()
	r.idle = make(chan struct{})
	go func() {
		for {
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			peer, ok := r.admit(conn)
			if !ok {
				conn.Close()
				continue
			}
			go r.serveConn(conn, peer)
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	alone := time.Now() // since when no containerizer is connected
	for {
		select {
		case <-r.idle:
			return nil
		case now := <-tick.C:
			r.mu.Lock()
			conns, served, children := r.conns, r.served, len(r.children)
			r.mu.Unlock()
			if conns > 0 {
				alone = now
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(dir.Fd()), &st); err == nil && st.Nlink == 0 {
				r.log.Warn("the state directory was removed; exiting, leaving the containers to init", "containers", children)
				return nil
			}
			limit := reaperRecoveryTimeout
			if !served {
				limit = reaperFirstConnTimeout
			}
			if now.Sub(alone) > limit {
				r.log.Warn("no containerizer came back; exiting, leaving the containers to init", "waited", limit, "containers", children)
				return nil
			}
		}
	}
}

// admit counts a connection from a peer of the reaper's own user (or
// root) and returns the peer's pid.
func (r *reaper) admit(conn *net.UnixConn) (int, bool) {
	peer, err := checkPeer(conn)
	if err != nil {
		r.log.Warn("refused a connection", "err", err)
		return 0, false
	}
	r.mu.Lock()
	r.conns++
	r.peers[peer]++
	r.served = true
	r.mu.Unlock()
	return peer, true
}

func (r *reaper) serveConn(conn *net.UnixConn, peer int) {
	defer func() {
		conn.Close()
		r.mu.Lock()
		r.conns--
		if r.peers[peer]--; r.peers[peer] == 0 {
			delete(r.peers, peer)
			r.killAgentBoundLocked(peer)
		}
		r.checkIdleLocked()
		r.mu.Unlock()
	}()
	for {
		var req reaperRequest
		fds, err := readFrame(conn, &req)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.log.Warn("reading a request", "err", err)
			}
			return
		}
		resp, pidfd := r.handle(&req, fds, peer)
		var out []int
		if pidfd >= 0 {
			out = []int{pidfd}
		}
		err = writeFrame(conn, resp, out)
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		if err != nil {
			r.log.Warn("writing a response", "err", err)
			return
		}
	}
}

// handle answers one request; it closes fds, and returns a pidfd to send
// (or -1) that the caller closes.
func (r *reaper) handle(req *reaperRequest, fds []int, peer int) (*reaperResponse, int) {
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	switch req.Op {
	case "start":
		if len(fds) != 3 {
			return &reaperResponse{Err: fmt.Sprintf("start: %d file descriptors, want 3", len(fds))}, -1
		}
		pidfd := -1
		attr := &syscall.ProcAttr{
			Dir:   req.Dir,
			Env:   req.Env,
			Files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
			Sys:   &syscall.SysProcAttr{Setsid: true, Credential: req.Cred, PidFD: &pidfd},
		}
		pid, err := syscall.ForkExec(req.Path, req.Argv, attr)
		if err != nil {
			return &reaperResponse{Err: err.Error()}, -1
		}
		if pidfd < 0 {
			// Not reaped yet, so the pid is still the child's.
			if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
				unix.Kill(-pid, unix.SIGKILL)
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
				return &reaperResponse{Err: "opening a pidfd: " + err.Error()}, -1
			}
		}
		r.mu.Lock()
		r.children[pid] = &reaperChild{id: req.ID, diesWithAgent: req.DiesWithAgent, owner: peer}
		r.mu.Unlock()
		return &reaperResponse{PID: pid}, pidfd
	case "status":
		r.mu.Lock()
		defer r.mu.Unlock()
		c := r.children[req.PID]
		if c == nil || c.id != req.ID || c.forgotten {
			return &reaperResponse{State: reaperUnknown}, -1
		}
		if !c.ended && !r.reapLocked(req.PID, c, syscall.WNOHANG) {
			return &reaperResponse{State: reaperRunning}, -1
		}
		return &reaperResponse{
			State:  reaperEnded,
			Status: uint32(c.status),
			UserNs: c.rusage.Utime.Nano(),
			SysNs:  c.rusage.Stime.Nano(),
		}, -1
	case "find":
		// The container's process, for a containerizer that died before it
		// could record the pid.
		r.mu.Lock()
		defer r.mu.Unlock()
		for pid, c := range r.children {
			if c.id == req.ID && !c.forgotten {
				return &reaperResponse{PID: pid}, -1
			}
		}
		return &reaperResponse{State: reaperUnknown}, -1
	case "forget":
		r.mu.Lock()
		defer r.mu.Unlock()
		c := r.children[req.PID]
		if c == nil || c.id != req.ID {
			return &reaperResponse{}, -1
		}
		if c.ended || r.reapLocked(req.PID, c, syscall.WNOHANG) {
			delete(r.children, req.PID)
			r.checkIdleLocked()
			return &reaperResponse{}, -1
		}
		// Still running: nobody will ask for its status; reap it when it
		// ends so it does not stay a zombie.
		c.forgotten = true
		go func(pid int) {
			var ws syscall.WaitStatus
			for {
				_, err := syscall.Wait4(pid, &ws, 0, nil)
				if err != syscall.EINTR {
					break
				}
			}
			r.mu.Lock()
			delete(r.children, pid)
			r.checkIdleLocked()
			r.mu.Unlock()
		}(req.PID)
		return &reaperResponse{}, -1
	}
	return &reaperResponse{Err: fmt.Sprintf("unknown op %q", req.Op)}, -1
}

// reapLocked waits for the child; true once it has been reaped (or was
// reaped by someone else, its status then lost).
func (r *reaper) reapLocked(pid int, c *reaperChild, options int) bool {
	for {
		wpid, err := syscall.Wait4(pid, &c.status, options, &c.rusage)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			// ECHILD: not ours to wait for; the status is lost.
			c.ended, c.status = true, syscall.WaitStatus(0xffff)
			return true
		case wpid == pid:
			c.ended = true
			return true
		}
		return false
	}
}

// killAgentBoundLocked kills the running containers started by peer that
// die with it: it has no connection left (it has ended, or closed its
// containerizer).
func (r *reaper) killAgentBoundLocked(peer int) {
	for pid, c := range r.children {
		if c.diesWithAgent && c.owner == peer && !c.ended && !c.forgotten {
			r.log.Info("the agent is gone: killing a container that dies with it", "container", c.id, "pid", pid)
			unix.Kill(-pid, unix.SIGKILL)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func (r *reaper) checkIdleLocked() {
	if r.conns == 0 && len(r.children) == 0 && r.served {
		select {
		case <-r.idle:
		default:
			close(r.idle)
		}
	}
}

// checkPeer checks that the other end of conn runs as this process's user,
// or as root, and returns its pid.
func checkPeer(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("reading the peer's credentials: %w", credErr)
	}
	if uid := os.Geteuid(); int(cred.Uid) != uid && cred.Uid != 0 {
		return 0, fmt.Errorf("the peer (pid %d) runs as uid %d, not %d", cred.Pid, cred.Uid, uid)
	}
	return int(cred.Pid), nil
}

// writeFrame sends v with fds.
func writeFrame(conn *net.UnixConn, v any, fds []int) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := conn.WriteMsgUnix(hdr[:], oob, nil)
	if err != nil {
		return err
	}
	if n != len(hdr) {
		return io.ErrShortWrite
	}
	_, err = conn.Write(body)
	return err
}

// readFrame reads one message into v, with the file descriptors passed
// alongside (close-on-exec); on error it has closed them.
func readFrame(conn *net.UnixConn, v any) (fds []int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
		}
	}()
	var hdr [4]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(hdr[:], oob)
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
		if perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return fds, err
	}
	if n == 0 {
		return fds, io.EOF
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return fds, errors.New("too many file descriptors in one message")
	}
	if _, err := io.ReadFull(conn, hdr[n:]); err != nil {
		return fds, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > reaperMaxFrame {
		return fds, fmt.Errorf("a message of %d bytes; the most is %d", size, reaperMaxFrame)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(conn, body); err != nil {
		return fds, err
	}
	return fds, json.Unmarshal(body, v)
}

// errNoReaper: no reaper serves the state directory.
var errNoReaper = errors.New("no reaper is running")

// reaperClient is a process containerizer's link to its reaper: a pool of
// connections, so that a launch waiting for its fork does not hold up the
// status of a container that has just ended.
type reaperClient struct {
	dir   string   // the state directory
	dirfd int      // the state directory, O_PATH, through which the socket is addressed
	argv  []string // starts a reaper; nil: never start one
	log   *slog.Logger

	startMu sync.Mutex // held while starting a reaper
	// fdMu is held, shared, while dirfd is in use, and by close to close
	// it, so a concurrent dial never names a descriptor number reused.
	fdMu     sync.RWMutex
	fdClosed bool

	mu     sync.Mutex
	idle   []*net.UnixConn // connected, not in use
	closed bool
}

// reaperMaxIdle bounds the idle connections kept open.
const reaperMaxIdle = 16

// reaperSocket is the reaper's socket in the state directory.
const reaperSocket = "reaper.sock"

func newReaperClient(dir string, argv []string, log *slog.Logger) (*reaperClient, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &reaperClient{dir: dir, dirfd: fd, argv: argv, log: log}, nil
}

// addr is the reaper's socket, through the state directory's descriptor:
// a short path however long the directory's.
func (rc *reaperClient) addr() *net.UnixAddr {
	return &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/%s", rc.dirfd, reaperSocket), Net: "unix"}
}

// dial connects to a running reaper.
func (rc *reaperClient) dial() (*net.UnixConn, error) {
	rc.fdMu.RLock()
	defer rc.fdMu.RUnlock()
	if rc.fdClosed {
		return nil, ErrClosed
	}
	conn, err := net.DialUnix("unix", nil, rc.addr())
	if err != nil {
		return nil, err
	}
	if _, err := checkPeer(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("reaper: %w", err)
	}
	return conn, nil
}

// start forks and execs a container's main process in the reaper and
// returns its pid and pidfd; stdio are its stdin, stdout and stderr.
func (rc *reaperClient) start(id, path string, argv, env []string, dir string, cred *syscall.Credential, diesWithAgent bool, stdio [3]int) (int, int, error) {
	resp, fds, err := rc.call(&reaperRequest{Op: "start", ID: id, Path: path, Argv: argv, Env: env, Dir: dir, Cred: cred, DiesWithAgent: diesWithAgent}, stdio[:])
	if err != nil {
		return 0, -1, err
	}
	if resp.Err != "" {
		return 0, -1, errors.New(resp.Err)
	}
	if len(fds) != 1 || resp.PID <= 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return 0, -1, fmt.Errorf("reaper: a start answered with pid %d and %d file descriptors", resp.PID, len(fds))
	}
	return resp.PID, fds[0], nil
}

// status asks how the container's main process ended: state is
// reaperRunning, reaperEnded (with ws and ru) or reaperUnknown.
func (rc *reaperClient) status(id string, pid int) (state string, ws syscall.WaitStatus, ru *syscall.Rusage, err error) {
	resp, fds, err := rc.call(&reaperRequest{Op: "status", ID: id, PID: pid}, nil)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err != nil {
		return reaperUnknown, 0, nil, err
	}
	if resp.Err != "" {
		return reaperUnknown, 0, nil, errors.New(resp.Err)
	}
	if resp.State == reaperEnded {
		ru = &syscall.Rusage{Utime: syscall.NsecToTimeval(resp.UserNs), Stime: syscall.NsecToTimeval(resp.SysNs)}
	}
	return resp.State, syscall.WaitStatus(resp.Status), ru, nil
}

// find returns the pid of the container's main process, if the reaper
// started it and it has not been forgotten; 0 otherwise.
func (rc *reaperClient) find(id string) int {
	resp, fds, err := rc.call(&reaperRequest{Op: "find", ID: id}, nil)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err != nil || resp.Err != "" {
		return 0
	}
	return resp.PID
}

// forget tells the reaper the status of the container's main process is no
// longer needed.
func (rc *reaperClient) forget(id string, pid int) {
	resp, fds, err := rc.call(&reaperRequest{Op: "forget", ID: id, PID: pid}, nil)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err == nil && resp.Err != "" {
		err = errors.New(resp.Err)
	}
	if err != nil && !errors.Is(err, errNoReaper) {
		rc.log.Warn("reaper: cannot forget a container", "container", id, "err", err)
	}
}

func (rc *reaperClient) call(req *reaperRequest, fds []int) (*reaperResponse, []int, error) {
	for attempt := 0; ; attempt++ {
		conn, pooled, err := rc.get(req.Op == "start")
		if err != nil {
			return nil, nil, err
		}
		conn.SetDeadline(time.Now().Add(reaperCallTimeout))
		var resp reaperResponse
		if err = writeFrame(conn, req, fds); err != nil {
			conn.Close()
			// Not delivered: a pooled connection to a reaper that has died
			// since. Once more on a new one (which starts a new reaper).
			if pooled && attempt == 0 {
				rc.dropIdle()
				continue
			}
			return nil, nil, fmt.Errorf("reaper: %s: %w", req.Op, err)
		}
		got, err := readFrame(conn, &resp)
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("reaper: %s: %w", req.Op, err)
		}
		rc.put(conn)
		return &resp, got, nil
	}
}

// get returns an idle connection (pooled), or a new one, starting a reaper
// if there is none and start allows.
func (rc *reaperClient) get(start bool) (conn *net.UnixConn, pooled bool, err error) {
	rc.mu.Lock()
	if rc.closed {
		rc.mu.Unlock()
		return nil, false, ErrClosed
	}
	if n := len(rc.idle); n > 0 {
		conn = rc.idle[n-1]
		rc.idle = rc.idle[:n-1]
		rc.mu.Unlock()
		return conn, true, nil
	}
	rc.mu.Unlock()
	if conn, err := rc.dial(); err == nil {
		return conn, false, nil
	}
	if !start || len(rc.argv) == 0 {
		return nil, false, errNoReaper
	}
	rc.startMu.Lock()
	defer rc.startMu.Unlock()
	if conn, err := rc.dial(); err == nil {
		return conn, false, nil // started meanwhile
	}
	conn, err = rc.startReaper()
	return conn, false, err
}

// put returns a connection to the pool.
func (rc *reaperClient) put(conn *net.UnixConn) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.closed || len(rc.idle) >= reaperMaxIdle {
		conn.Close()
		return
	}
	rc.idle = append(rc.idle, conn)
}

// dropIdle closes the idle connections: their reaper has gone.
func (rc *reaperClient) dropIdle() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, c := range rc.idle {
		c.Close()
	}
	rc.idle = nil
}

// startReaper starts a reaper listening on the state directory's socket
// and connects to it.
func (rc *reaperClient) startReaper() (*net.UnixConn, error) {
	rc.fdMu.RLock()
	defer rc.fdMu.RUnlock()
	if rc.fdClosed {
		return nil, ErrClosed
	}
	// A socket left by a reaper that has exited.
	if err := unix.Unlinkat(rc.dirfd, reaperSocket, 0); err != nil && err != unix.ENOENT {
		return nil, fmt.Errorf("reaper: removing the old socket: %w", err)
	}
	l, err := net.ListenUnix("unix", rc.addr())
	if err != nil {
		return nil, fmt.Errorf("reaper: listening: %w", err)
	}
	// The reaper listens on it now; closing this copy must not remove it.
	l.SetUnlinkOnClose(false)
	lf, err := l.File()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("reaper: %w", err)
	}
	defer lf.Close()
	logf, err := os.OpenFile(filepath.Join(rc.dir, "reaper.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("reaper: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(rc.argv[0], rc.argv[1:]...)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	dir, err := os.Open(rc.dir)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("reaper: %w", err)
	}
	defer dir.Close()
	// fd 3 the socket, fd 4 the state directory, whose removal it notices.
	cmd.ExtraFiles = []*os.File{lf, dir}
	// Its own session: signals for the agent's process group miss it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	var conn *net.UnixConn
	if err == nil {
		if conn, err = net.DialUnix("unix", nil, rc.addr()); err == nil {
			if _, err = checkPeer(conn); err != nil {
				conn.Close()
			}
		}
	}
	l.Close()
	if err != nil {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return nil, fmt.Errorf("reaper: starting %s: %w", rc.argv[0], err)
	}
	// Reap the reaper if it ends while this process lives.
	go cmd.Wait()
	rc.log.Info("started the containerizer's reaper", "pid", cmd.Process.Pid)
	return conn, nil
}

func (rc *reaperClient) close() {
	rc.mu.Lock()
	rc.closed = true
	rc.mu.Unlock()
	rc.dropIdle()
	rc.fdMu.Lock()
	if !rc.fdClosed {
		rc.fdClosed = true
		unix.Close(rc.dirfd)
	}
	rc.fdMu.Unlock()
}
