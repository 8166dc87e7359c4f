package containerizer_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
)

// readAll reads a nested container's output until its end (io.EOF, or
// EIO from a terminal nobody holds any more).
func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// nestedParent launches the parent of the nested tests: a shell that
// sleeps, with an environment and host name to inherit. The sleep runs
// with no environment at all: a nested container inherits its parent's
// as launched (as Mesos's DEBUG containers do), never what /proc shows,
// which is nothing while a process execs.
func nestedParent(t *testing.T, c containerizer.Containerizer) string {
	t.Helper()
	ctx := context.Background()
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	require.NoError(t, c.Launch(ctx, containerizer.Config{
		ID: "parent", Command: containerizer.ShellCommand(`exec env -i /bin/sh -c ': >ready; exec /bin/sleep 1000'`), Sandbox: sandbox,
		Env: []string{"PATH=/usr/bin:/bin", "FROM_PARENT=yes", "OVER=parent"}, Hostname: "nested-parent",
	}))
	t.Cleanup(func() { c.Destroy(context.Background(), "parent") })
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(sandbox, "ready"))
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "the parent did not start")
	return sandbox
}

// testNested checks what a nested container gets from its parent, its
// pipes, its end and its destruction, in any NestedLauncher.
func testNested(t *testing.T, c containerizer.Containerizer, namespaces, pidNamespace bool) {
	ctx := context.Background()
	sandbox := nestedParent(t, c)
	nl := c.(containerizer.NestedLauncher)

	script := `echo "host=$(hostname) from=$FROM_PARENT over=$OVER pwd=$(pwd) pid=$$"; read line; echo "got $line"; echo oops >&2; exit 3`
	stdio, err := nl.LaunchNested(ctx, containerizer.NestedConfig{ID: "parent.s1", Parent: "parent", Command: containerizer.ShellCommand(script), Env: []string{"OVER=nested"}})
	require.NoError(t, err)
	defer stdio.Close()
	ids, err := c.Containers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"parent", "parent.s1"}, ids)

	_, err = stdio.Stdin.WriteString("hello\n")
	require.NoError(t, err)
	require.NoError(t, stdio.Stdin.Close())
	errOut := make(chan string, 1)
	go func() { errOut <- readAll(t, stdio.Stderr) }()
	out := readAll(t, stdio.Stdout)
	assert.Equal(t, "oops\n", <-errOut)
	m := regexp.MustCompile(`^host=(\S*) from=yes over=nested pwd=(\S*) pid=(\d+)\ngot hello\n$`).FindStringSubmatch(out)
	require.NotNil(t, m, "%q", out)
	pid, _ := strconv.Atoi(m[3])
	if namespaces {
		assert.Equal(t, "nested-parent", m[1], "the parent's uts namespace")
		if pidNamespace {
			assert.Less(t, pid, 100, "the parent's pid namespace")
		}
		assert.Equal(t, sandbox, m[2])
	} else {
		assert.Equal(t, sandbox, m[2])
	}
	term, err := c.Wait(ctx, "parent.s1")
	require.NoError(t, err)
	assert.Equal(t, 3, term.ExitCode)
	require.NoError(t, c.Destroy(ctx, "parent.s1"))
	_, err = c.Wait(ctx, "parent.s1")
	assert.ErrorIs(t, err, containerizer.ErrUnknownContainer)

	// Errors: a nested parent, an unknown one, a taken ID.
	_, err = nl.LaunchNested(ctx, containerizer.NestedConfig{ID: "nope.s", Parent: "nope", Command: containerizer.ShellCommand("true")})
	assert.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	_, err = nl.LaunchNested(ctx, containerizer.NestedConfig{ID: "parent", Parent: "parent", Command: containerizer.ShellCommand("true")})
	assert.ErrorIs(t, err, containerizer.ErrInvalidConfig)

	// A terminal; then the parent's destruction takes the nested
	// container with it.
	stdio, err = nl.LaunchNested(ctx, containerizer.NestedConfig{ID: "parent.tty", Parent: "parent", TTY: true, Rows: 33, Columns: 101,
		Command: containerizer.ShellCommand(`test -t 0 && echo "a tty of $(stty size)"; sleep 1000`)})
	require.NoError(t, err)
	defer stdio.Close()
	assert.Nil(t, stdio.Stderr)
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := stdio.Stdout.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				close(got)
				return
			}
		}
	}()
	var tty string
	for !strings.Contains(tty, "a tty of 33 101") {
		select {
		case s, ok := <-got:
			require.True(t, ok, "the terminal closed after %q", tty)
			tty += s
		case <-time.After(20 * time.Second):
			t.Fatalf("no tty: %q", tty)
		}
	}
	require.NoError(t, stdio.Resize(40, 120))
	require.NoError(t, c.Destroy(ctx, "parent"))
	select {
	case <-func() chan struct{} {
		ch := make(chan struct{})
		go func() {
			for range got {
			}
			close(ch)
		}()
		return ch
	}():
	case <-time.After(20 * time.Second):
		t.Fatal("the nested container's terminal was not closed with its parent")
	}
	ids, err = c.Containers(ctx)
	require.NoError(t, err)
	assert.Empty(t, ids)
	_, err = nl.LaunchNested(ctx, containerizer.NestedConfig{ID: "parent.late", Parent: "parent", Command: containerizer.ShellCommand("true")})
	assert.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func TestLinuxNested(t *testing.T) {
	needLinux(t)
	l := newLinux(t, t.TempDir())
	t.Cleanup(func() { l.Close() })
	testNested(t, l, true, true)
}

// Without a pid namespace nothing kills a nested container with its
// parent's init: its parent's end and destruction do.
func TestLinuxNestedHostPID(t *testing.T) {
	needLinux(t)
	l := newLinux(t, t.TempDir(), func(o *containerizer.LinuxOptions) { o.HostPIDNamespace = true })
	t.Cleanup(func() { l.Close() })
	testNested(t, l, true, false)
}

func TestProcessNested(t *testing.T) {
	p, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	testNested(t, p, false, false)
}
