// Package proctest runs programs as processes of a Go test: it builds
// commands of the caller's module into a temporary directory with one go
// build, starts processes with their output captured (and logged when the
// test fails), starts servers on loopback ports free at run time and waits
// until they answer over HTTP, and stops everything it started when the
// test ends: SIGTERM, a grace period, then SIGKILL of the process group.
//
// It is for tests only: only _test.go files import it (a test of this
// package checks that). Waits are bounded by deadlines the caller gives;
// nothing sleeps to wait for readiness, it polls. It needs a Unix: each
// process runs in a process group of its own, so that what it starts
// (executor processes) is stopped with it.
package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ErrNoGo is returned by Build when the go tool is nowhere to be found.
var ErrNoGo = errors.New("proctest: the go tool is needed to build the binaries")

// Build builds the main packages pkgs, given as directories relative to
// the root of the caller's module ("examples/master"), with one go build
// into dir, and returns each binary's path by its package's last element
// ("master"). The module root is the nearest directory holding a go.mod
// above the caller's source file (above the working directory when source
// paths are trimmed). It is for TestMain, to build once for a whole test
// binary; tests call BuildT.
func Build(dir string, pkgs ...string) (map[string]string, error) {
	_, file, _, _ := runtime.Caller(1)
	return build(file, dir, pkgs)
}

// BuildT is Build into a temporary directory of t's: it skips t when
// there is no go tool, and fails it when the build fails.
func BuildT(t testing.TB, pkgs ...string) map[string]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(1)
	bin, err := build(file, t.TempDir(), pkgs)
	if errors.Is(err, ErrNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func build(callerFile, dir string, pkgs []string) (map[string]string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, statErr := os.Stat(goTool); statErr != nil {
			return nil, fmt.Errorf("%w (%v)", ErrNoGo, err)
		}
	}
	root, err := moduleRoot(callerFile)
	if err != nil {
		return nil, err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	bin := map[string]string{}
	for _, p := range pkgs {
		p = path.Clean(filepath.ToSlash(p))
		args = append(args, "./"+p)
		bin[path.Base(p)] = filepath.Join(dir, path.Base(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return bin, nil
}

// moduleRoot returns the nearest directory holding a go.mod above
// callerFile, or above the working directory when callerFile is not an
// absolute path (built with -trimpath).
func moduleRoot(callerFile string) (string, error) {
	start := filepath.Dir(callerFile)
	if !filepath.IsAbs(callerFile) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		start = wd
	}
	for dir := start; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("proctest: no go.mod in %s or above", start)
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proctest: pick a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
