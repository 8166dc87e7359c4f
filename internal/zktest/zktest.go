// Package zktest runs real ZooKeeper servers for tests: one standalone
// server, or an ensemble, on free loopback ports in temporary
// directories, stopped at the test's cleanup. It also has a TCP Proxy that
// can stop forwarding, to cut one client off from ZooKeeper.
//
// It uses Debian's zookeeper package (3.8): /usr/share/java/zookeeper.jar
// and an slf4j binding. Tests skip, saying what is missing, where java or
// the jar is not installed (APRON_ZOOKEEPER_JAR overrides the jar's path).
package zktest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	defaultJar = "/usr/share/java/zookeeper.jar"
	// TickTime is the servers' tick: sessions may be as short as two
	// ticks, so tests can use sub-second to few-second session timeouts.
	TickTime = 200 * time.Millisecond
)

// classpath returns the java class path, or why ZooKeeper cannot run.
func classpath() (string, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return "", errors.New("java is not installed (apt-get install zookeeper)")
	}
	jar := os.Getenv("APRON_ZOOKEEPER_JAR")
	if jar == "" {
		jar = defaultJar
	}
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("no ZooKeeper jar at %s (apt-get install zookeeper)", jar)
	}
	cp := jar
	// Any one slf4j binding keeps the server quiet; nop is best.
	for _, b := range []string{"slf4j-nop.jar", "slf4j-simple.jar", "slf4j-jdk14.jar"} {
		p := filepath.Join(filepath.Dir(jar), b)
		if _, err := os.Stat(p); err == nil {
			cp += ":" + p
			break
		}
	}
	return cp, nil
}

// Available reports whether ZooKeeper can be started here, and if not why.
func Available() (bool, string) {
	if _, err := classpath(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// Server is one ZooKeeper server process.
type Server struct {
	// Addr is the client address, 127.0.0.1:port.
	Addr string

	t        testing.TB
	cp       string
	dir      string
	mainCls  string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	output   *bytes.Buffer
	mainArgs []string
}

// Start starts a standalone server and waits until it serves; it is
// stopped at t's cleanup. The test is skipped when ZooKeeper is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	cp, err := classpath()
	if err != nil {
		t.Skipf("zookeeper tests skipped: %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	cfg := baseConfig(dir, port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, cp: cp, dir: dir,
		mainCls: "org.apache.zookeeper.server.ZooKeeperServerMain",
	}
	s.mainArgs = []string{filepath.Join(dir, "zoo.cfg")}
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

func baseConfig(dir string, port int) string {
	return fmt.Sprintf(`tickTime=%d
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
minSessionTimeout=%d
maxSessionTimeout=60000
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,wchp,wchc
`, TickTime.Milliseconds(), filepath.Join(dir, "data"), port, 2*TickTime.Milliseconds())
}

// Restart starts the server again after Stop (with its data), and waits
// until it serves. The first start is Start's.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
	if err := s.waitServing(60 * time.Second); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command("java",
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m",
		"-Dzookeeper.admin.enableServer=false",
		"-cp", s.cp, s.mainCls)
	cmd.Args = append(cmd.Args, s.mainArgs...)
	cmd.Dir = s.dir
	s.output = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	// Its own process group, so Stop kills only what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("zktest: starting java: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	return nil
}

// waitServing polls the four-letter word "srvr" until the server says
// which mode it serves in.
func (s *Server) waitServing(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("zktest: zookeeper at %s exited: %s", s.Addr, s.output)
		default:
		}
		if Serving(s.Addr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zktest: zookeeper at %s not serving after %v", s.Addr, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Serving reports whether the ZooKeeper server at addr serves clients.
func Serving(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Mode: ") {
			return true
		}
	}
	return false
}

// Stop kills the server (as kill -9 would) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// EnsembleEnv is the environment switch for tests that start an ensemble
// (three JVMs, tens of seconds): they run when it is "1".
const EnsembleEnv = "APRON_ZK_ENSEMBLE"

// RequireEnsembleTests skips t unless EnsembleEnv is "1" and -short is off.
func RequireEnsembleTests(t testing.TB) {
	t.Helper()
	if os.Getenv(EnsembleEnv) != "1" || testing.Short() {
		t.Skipf("starts a three-server ZooKeeper ensemble; set %s=1 to run", EnsembleEnv)
	}
}

// Ensemble is a ZooKeeper ensemble of several servers on loopback.
type Ensemble struct {
	Servers []*Server
}

// StartEnsemble starts n servers as one ensemble and waits until every
// one serves; they are stopped at t's cleanup.
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	cp, err := classpath()
	if err != nil {
		t.Skipf("zookeeper tests skipped: %v", err)
	}
	type ports struct{ client, peer, election int }
	ps := make([]ports, n)
	free := freePorts(t, 3*n)
	for i := range ps {
		ps[i] = ports{free[3*i], free[3*i+1], free[3*i+2]}
	}
	var peers strings.Builder
	for i, p := range ps {
		fmt.Fprintf(&peers, "server.%d=127.0.0.1:%d:%d\n", i+1, p.peer, p.election)
	}
	e := &Ensemble{}
	for i, p := range ps {
		dir := t.TempDir()
		cfg := baseConfig(dir, p.client) + "initLimit=50\nsyncLimit=10\n" + peers.String()
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "myid"), []byte(fmt.Sprint(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &Server{
			Addr: fmt.Sprintf("127.0.0.1:%d", p.client), t: t, cp: cp, dir: dir,
			mainCls:  "org.apache.zookeeper.server.quorum.QuorumPeerMain",
			mainArgs: []string{filepath.Join(dir, "zoo.cfg")},
		}
		t.Cleanup(s.Stop)
		e.Servers = append(e.Servers, s)
	}
	for _, s := range e.Servers {
		if err := s.launch(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range e.Servers {
		if err := s.waitServing(90 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// Addrs returns the client addresses of the ensemble's servers.
func (e *Ensemble) Addrs() []string {
	var a []string
	for _, s := range e.Servers {
		a = append(a, s.Addr)
	}
	return a
}

// freePorts returns n distinct free ports (listening on all of them at
// once so none is handed out twice).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FourLetter sends a four-letter-word command ("srvr", "wchp", ...) to
// the server at addr and returns its answer. zktest's servers allow srvr,
// ruok, wchp and wchc.
func FourLetter(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}
