package proctest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Grace is how long Stop waits for a process to exit after SIGTERM before
// it kills the process group.
const Grace = 10 * time.Second

// Proc is a process started by Start or StartServer.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Addr ("127.0.0.1:port") and Port are where it serves, when started
	// by StartServer.
	Addr string
	Port int

	health string // the health path of a server, for Restart
	mu     sync.Mutex
	out    bytes.Buffer
	change chan struct{} // closed and replaced when output arrives
	done   chan struct{} // closed when the process has exited and all its output is read
	code   int
}

// Start starts cmd, called name in messages, in a process group of its
// own. Its standard output and error, which must be unset, are kept:
// Output returns them, and they go to t's log if t has failed when it
// ends. When t ends, the process and what it started are stopped (Stop).
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, change: make(chan struct{}), done: make(chan struct{})}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.read(r)
	}()
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		w.Close()
		<-read
		p.mu.Lock()
		p.code = code
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", name, strings.Join(cmd.Args, " "), p.Output())
		}
	})
	return p
}

func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.out.Write(sc.Bytes())
		p.out.WriteByte('\n')
		close(p.change)
		p.change = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Output returns what the process has printed so far, standard output
// and error interleaved, line by line.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exited tells whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit, for at most timeout, and returns
// its exit code (-1 when it could not be waited for); it fails t when
// the process is still running.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.Name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// WaitFor waits until the output matches re, for at most timeout, and
// returns the submatches; it fails t when the process exits or the time
// runs out first.
func (p *Proc) WaitFor(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.out.String())
		change := p.change
		p.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-change:
		case <-p.done:
			// All the output is read by now.
			if m := re.FindStringSubmatch(p.Output()); m != nil {
				return m
			}
			t.Fatalf("%s exited without printing %q", p.Name, re)
		case <-deadline:
			t.Fatalf("%s did not print %q within %v", p.Name, re, timeout)
		}
	}
}

// Stop ends the process and what it started: SIGTERM, up to Grace for it
// to exit, then SIGKILL of its process group. It returns when the process
// has exited; calling it again does no harm.
func (p *Proc) Stop() {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(Grace):
		}
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

var client = &http.Client{Timeout: 5 * time.Second}

// WaitHTTP polls url with GET until it answers 200 OK, and returns nil;
// or an error when the process exits or timeout passes first.
func (p *Proc) WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered 200", p.Name, url)
		case <-deadline.C:
			return fmt.Errorf("%s did not answer 200 within %v", url, timeout)
		case <-poll.C:
		}
	}
}

// StartServer starts a server on a loopback port free at the time:
// command returns the command that serves on addr ("127.0.0.1:port"). It
// waits until GET http://addr+health answers 200 OK, for at most timeout,
// and fails t if it does not. When the process exits saying "address
// already in use" (another took the port meanwhile), it tries another
// port, up to 5 times in all.
func StartServer(t testing.TB, name, health string, timeout time.Duration, command func(addr string) *exec.Cmd) *Proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p := Start(t, name, command(addr))
		p.Addr, p.Port, p.health = addr, port, health
		err := p.WaitHTTP("http://"+addr+health, timeout)
		if err == nil {
			return p
		}
		out := p.Output()
		if p.Exited() && strings.Contains(out, "address already in use") && attempt < 5 {
			t.Logf("%s: port %d was taken; trying another", name, port)
			continue
		}
		t.Fatalf("%s did not start serving on %s: %v\n%s", name, addr, err, out)
	}
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process alone, not to its process group: what
// it started is left alone, as when it crashes or is stopped by hand.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("proctest: %s has exited", p.Name)
	}
	return p.Cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to the process alone (see Signal) and waits for it
// to exit, for at most timeout: a crash that leaves what it started
// running.
func (p *Proc) Kill(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(t, timeout)
}

// Restart waits for the process to exit, for at most timeout, and starts
// the same command again (same path, arguments, environment and working
// directory), with the same name, in a process group of its own, as
// Start does. A process started by StartServer is started on the same
// address and waited for as StartServer waits (its port may take a moment
// to be free: "address already in use" is retried until timeout). The old
// Proc keeps its output; the new one has its own, and is stopped when t
// ends.
func (p *Proc) Restart(t testing.TB, timeout time.Duration) *Proc {
	t.Helper()
	p.Wait(t, timeout)
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.Command(p.Cmd.Path, p.Cmd.Args[1:]...)
		cmd.Env, cmd.Dir = p.Cmd.Env, p.Cmd.Dir
		q := Start(t, p.Name, cmd)
		q.Addr, q.Port, q.health = p.Addr, p.Port, p.health
		if p.health == "" {
			return q
		}
		err := q.WaitHTTP("http://"+q.Addr+q.health, time.Until(deadline))
		if err == nil {
			return q
		}
		if q.Exited() && strings.Contains(q.Output(), "address already in use") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Fatalf("%s did not start serving again on %s: %v\n%s", p.Name, p.Addr, err, q.Output())
	}
}
