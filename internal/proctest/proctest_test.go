package proctest_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

// The test binary doubles as the program the tests run: with
// PROCTEST_HELPER set, it does what that says instead of testing.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCTEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "serve":
		serve(os.Getenv("PROCTEST_ADDR"))
	case "exit":
		fmt.Println("exiting with 3")
		os.Exit(3)
	}
}

// serve answers /health on addr until SIGTERM.
func serve(addr string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("serving on", ln.Addr())
	go func() { _ = http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	<-term
	fmt.Println("stopping on SIGTERM")
	os.Exit(0)
}

func helper(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, "PROCTEST_HELPER="+mode)...)
	return cmd
}

const wait = time.Minute

func TestStartServer(t *testing.T) {
	p := proctest.StartServer(t, "server", "/health", wait, func(addr string) *exec.Cmd {
		return helper("serve", "PROCTEST_ADDR="+addr)
	})
	assert.Equal(t, "127.0.0.1:"+strconv.Itoa(p.Port), p.Addr)
	m := p.WaitFor(t, regexp.MustCompile(`serving on (\S+)`), wait)
	assert.Equal(t, p.Addr, m[1])
	assert.False(t, p.Exited())

	p.Stop()
	assert.True(t, p.Exited())
	assert.Equal(t, 0, p.Wait(t, wait))
	assert.Contains(t, p.Output(), "stopping on SIGTERM", "stopped gracefully first")
	p.Stop() // again: no harm
}

func TestStartAndWait(t *testing.T) {
	p := proctest.Start(t, "exit", helper("exit"))
	assert.Equal(t, 3, p.Wait(t, wait))
	assert.Equal(t, "exiting with 3\n", p.Output())
	assert.Equal(t, []string{"with 3"}, p.WaitFor(t, regexp.MustCompile(`with \d`), wait),
		"output printed before the exit is matched after it")
}

// TestOnlyTestsImport checks the package's rule: no code but tests
// imports it.
func TestOnlyTestsImport(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	const self = "github.com/apronhq/apron/internal/proctest"
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote(self) {
				t.Errorf("%s imports %s, which is for tests only", path, self)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

func TestKillAndRestart(t *testing.T) {
	p := proctest.StartServer(t, "server", "/health", wait, func(addr string) *exec.Cmd {
		return helper("serve", "PROCTEST_ADDR="+addr)
	})
	pid := p.Pid()
	p.Kill(t, wait)
	assert.True(t, p.Exited())
	assert.NotContains(t, p.Output(), "stopping on SIGTERM", "killed, not stopped")

	q := p.Restart(t, wait)
	assert.NotEqual(t, pid, q.Pid())
	assert.Equal(t, p.Addr, q.Addr, "serves on the same address again")
	assert.Equal(t, p.Port, q.Port)
	q.WaitFor(t, regexp.MustCompile(`serving on `+regexp.QuoteMeta(p.Addr)), wait)

	require.NoError(t, q.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, q.Wait(t, wait))
	assert.Contains(t, q.Output(), "stopping on SIGTERM")
	assert.Error(t, q.Signal(syscall.SIGTERM), "it has exited")

	r := q.Restart(t, wait)
	assert.Equal(t, p.Addr, r.Addr)
	r.Stop()
}

// Find sees a child by its arguments and environment, and its sandbox.
func TestFind(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("Find reads Linux's /proc")
	}
	dir := t.TempDir()
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), "PROCTEST_MARK=find-me", "MESOS_DIRECTORY="+filepath.Join(dir, "sandbox"))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })

	var found proctest.Process
	require.Eventually(t, func() bool { // its environ is readable once it has exec'd
		pid := proctest.Find(func(p proctest.Process) bool {
			mark, _ := p.Getenv("PROCTEST_MARK")
			if mark == "find-me" {
				found = p
			}
			return mark == "find-me"
		})
		return pid == cmd.Process.Pid
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"sleep", "30"}, found.Args)
	assert.True(t, found.InSandboxUnder(dir))
	assert.False(t, found.InSandboxUnder(dir+"/sand"), "a sandbox under dir, not a path that starts like it")
	assert.Zero(t, proctest.Find(func(p proctest.Process) bool { return p.Pid == os.Getpid() }), "not itself")
}
