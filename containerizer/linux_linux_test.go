package containerizer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/containerizer/containerizertest"
	"github.com/apronhq/apron/containerizer/image"
	"github.com/apronhq/apron/containerizer/launcher"
)

// hogEnv makes the test binary, started in a container, allocate memory
// until the kernel kills it.
const hogEnv = "APRON_LINUX_TEST_HOG"

// init lets the test binary be the containers' init (the package's
// TestMain, in reaper_test.go, serves the process containerizer's reaper)
// and a memory hog. Package initialization runs before TestMain.
func init() {
	if launcher.IsInit() {
		launcher.RunInit()
		os.Exit(1)
	}
	if os.Getenv(hogEnv) == "1" {
		var hog [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hog = append(hog, b)
		}
	}
}

// needLinux skips a test that needs what the Linux containerizer needs:
// root (namespaces, mounts, cgroups) and the cpu and memory cgroups.
func needLinux(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Linux containerizer needs root (namespaces, mounts, cgroups); running as uid", os.Geteuid())
	}
	if _, err := cgroups.New(cgroups.Options{Root: "apron-containerizer-test"}); err != nil {
		t.Skip("the Linux containerizer needs cgroups:", err)
	}
}

// cgroupRoot is the cgroup root of the containerizers on stateDir: one per
// state directory, so that parallel tests' containers of the same ID do
// not meet.
func cgroupRoot(t testing.TB, stateDir string) string {
	sum := sha256.Sum256([]byte(stateDir))
	root := "apron-containerizer-test/" + hex.EncodeToString(sum[:8])
	t.Cleanup(func() {
		// Empty cgroup directories are removed with rmdir; a non-empty
		// one stays (and says that something leaked).
		for _, pattern := range []string{"/sys/fs/cgroup/" + root, "/sys/fs/cgroup/*/" + root} {
			dirs, _ := filepath.Glob(pattern)
			for _, d := range dirs {
				os.Remove(d)
				os.Remove(filepath.Dir(d)) // fails while other tests use it
			}
		}
	})
	return root
}

type linuxOpt func(*containerizer.LinuxOptions)

func newLinux(t testing.TB, stateDir string, opts ...linuxOpt) *containerizer.Linux {
	t.Helper()
	o := containerizer.LinuxOptions{
		StateDir: stateDir,
		Cgroups:  cgroups.Options{Root: cgroupRoot(t, stateDir)},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := containerizer.NewLinux(o)
	require.NoError(t, err)
	return l
}

// TestLinuxConformance runs the conformance suite in the host's pid
// namespace: the suite checks host pids that its containers write, which
// a pid namespace would hide (it has them in its own numbering), and
// that a background process outlives its container's main process, which
// a pid namespace ends with its init.
func TestLinuxConformance(t *testing.T) {
	needLinux(t)
	containerizertest.Run(t, func(t *testing.T, stateDir string) containerizer.Containerizer {
		return newLinux(t, stateDir, func(o *containerizer.LinuxOptions) { o.HostPIDNamespace = true })
	})
}

func linuxCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func destroyOnCleanup(t *testing.T, c containerizer.Containerizer) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if ids, err := c.Containers(ctx); err == nil {
			for _, id := range ids {
				c.Destroy(ctx, id)
			}
		}
		c.Close()
	})
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	require.Eventually(t, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0 && b[len(b)-1] == '\n'
	}, 30*time.Second, 5*time.Millisecond, "waiting for %s", path)
	return string(b)
}

// testRegistry serves images on loopback.
type testRegistry struct{ srv *httptest.Server }

func newTestRegistry(t *testing.T) *testRegistry {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &testRegistry{srv: srv}
}

func (r *testRegistry) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *testRegistry) push(t *testing.T, repoTag string, img v1.Image) {
	ref, err := name.ParseReference(r.host()+"/"+repoTag, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
}

func (r *testRegistry) store(t *testing.T) *image.Store {
	s, err := image.Open(image.Options{Dir: t.TempDir(), Registry: r.srv.URL, Retry: remote.Backoff{Steps: 1, Duration: time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// busyboxImage is an image of the host's static busybox, with a marker
// file, the host's has not.
func busyboxImage(t *testing.T) v1.Image {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs a static /bin/busybox (apt-get install busybox-static)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(hdr *tar.Header, body []byte) {
		hdr.ModTime = time.Unix(1700000000, 0)
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(body))
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if len(body) > 0 {
			_, err := tw.Write(body)
			require.NoError(t, err)
		}
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bb)
	for _, n := range []string{"sh", "cat", "hostname", "pwd", "tr", "grep", "sleep", "touch"} {
		add(&tar.Header{Name: "bin/" + n, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil)
	add(&tar.Header{Name: "apron-image-marker", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("from the image\n"))
	require.NoError(t, tw.Close())
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	require.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin", "FROM_IMAGE=yes"}
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func TestLinuxImage(t *testing.T) {
	needLinux(t)
	reg := newTestRegistry(t)
	reg.push(t, "apron/busybox:1", busyboxImage(t))
	stateDir := t.TempDir()
	c := newLinux(t, stateDir, func(o *containerizer.LinuxOptions) { o.Images = reg.store(t) })
	destroyOnCleanup(t, c)

	sandbox := filepath.Join(t.TempDir(), "sandbox")
	vol := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(vol, "v"), []byte("volume\n"), 0o644))
	script := strings.Join([]string{
		"hostname",
		"cat /proc/1/cmdline | tr '\\0' ' ' | grep -q 'apron container init' && echo init-is-pid-1",
		"echo $$",
		"cat /apron-image-marker",
		"echo MESOS_SANDBOX=$MESOS_SANDBOX FROM_IMAGE=$FROM_IMAGE TASK=$TASK",
		"pwd",
		"cat /mnt/mesos/sandbox/in",
		"cat data/v /abs/v",
		"touch /abs/x 2>/dev/null || echo read-only",
	}, "; ")
	cfg := containerizer.Config{
		ID:       "img",
		Command:  containerizer.ShellCommand(script),
		Sandbox:  sandbox,
		Env:      []string{"TASK=env", "MESOS_SANDBOX=" + sandbox},
		Image:    reg.host() + "/apron/busybox:1",
		Hostname: "apron-box",
		Volumes: []containerizer.Volume{
			{HostPath: vol, ContainerPath: "data"},
			{HostPath: vol, ContainerPath: "/abs", ReadOnly: true},
		},
	}
	require.NoError(t, os.MkdirAll(sandbox, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "in"), []byte("sandbox\n"), 0o644))
	require.NoError(t, c.Launch(linuxCtx(t), cfg))
	term, err := c.Wait(linuxCtx(t), "img")
	require.NoError(t, err)
	stderr, _ := os.ReadFile(filepath.Join(sandbox, "stderr"))
	require.Equal(t, 0, term.ExitCode, "%+v; stderr: %s", term, stderr)
	out, err := os.ReadFile(filepath.Join(sandbox, "stdout"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	require.Len(t, lines, 10, "%q; stderr %s", out, stderr)
	assert.Equal(t, "apron-box", lines[0], "the hostname")
	assert.Equal(t, "init-is-pid-1", lines[1])
	assert.NotEqual(t, "1", lines[2], "the task is not pid 1: the init is")
	assert.Equal(t, "from the image", lines[3], "the image's root filesystem")
	assert.Equal(t, "MESOS_SANDBOX=/mnt/mesos/sandbox FROM_IMAGE=yes TASK=env", lines[4])
	assert.Equal(t, "/mnt/mesos/sandbox", lines[5], "the working directory")
	assert.Equal(t, "sandbox", lines[6])
	assert.Equal(t, []string{"volume", "volume", "read-only"}, lines[7:10])
	_, err = os.Stat("/apron-image-marker")
	assert.ErrorIs(t, err, os.ErrNotExist, "the host has no marker: the test means something")

	// Destroy releases the root filesystem and the state.
	require.NoError(t, c.Destroy(linuxCtx(t), "img"))
	_, err = os.Stat(filepath.Join(stateDir, "img"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLinuxUnknownImage(t *testing.T) {
	needLinux(t)
	reg := newTestRegistry(t)
	stateDir := t.TempDir()
	root := cgroupRoot(t, stateDir)
	c := newLinux(t, stateDir, func(o *containerizer.LinuxOptions) { o.Images = reg.store(t) })
	destroyOnCleanup(t, c)
	ref := reg.host() + "/apron/no-such-image:1"
	err := c.Launch(linuxCtx(t), containerizer.Config{
		ID: "missing", Command: containerizer.ShellCommand("true"),
		Sandbox: filepath.Join(t.TempDir(), "s"), Image: ref,
	})
	require.ErrorIs(t, err, containerizer.ErrLaunchFailed)
	assert.ErrorIs(t, err, image.ErrNotFound)
	assert.Contains(t, err.Error(), ref, "the error names the image")
	ids, err := c.Containers(linuxCtx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
	entries, err := os.ReadDir(stateDir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no state left")
	m, err := cgroups.New(cgroups.Options{Root: root})
	require.NoError(t, err)
	cgs, err := m.List()
	require.NoError(t, err)
	assert.Empty(t, cgs, "no cgroup left")

	// No image store: refused.
	plain := newLinux(t, t.TempDir())
	destroyOnCleanup(t, plain)
	err = plain.Launch(linuxCtx(t), containerizer.Config{
		ID: "x", Command: containerizer.ShellCommand("true"),
		Sandbox: filepath.Join(t.TempDir(), "s"), Image: ref,
	})
	require.ErrorIs(t, err, containerizer.ErrUnsupported)
}

func TestLinuxMemoryLimit(t *testing.T) {
	needLinux(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	c := newLinux(t, t.TempDir())
	destroyOnCleanup(t, c)
	cfg := containerizer.Config{
		ID:      "hog",
		Command: containerizer.ExecCommand(exe),
		Sandbox: filepath.Join(t.TempDir(), "s"),
		Env:     []string{hogEnv + "=1"},
		Limits:  containerizer.Limits{MemoryBytes: 32 << 20},
	}
	require.NoError(t, c.Launch(linuxCtx(t), cfg))
	term, err := c.Wait(linuxCtx(t), "hog")
	require.NoError(t, err)
	assert.Equal(t, containerizer.ReasonMemoryLimit, term.Reason, "%+v", term)
	assert.Contains(t, term.Message, "Memory limit exceeded: ")
	assert.Equal(t, -1, term.ExitCode)
	require.NoError(t, c.Destroy(linuxCtx(t), "hog"))
}

func TestLinuxPidsLimit(t *testing.T) {
	needLinux(t)
	const limit = 16
	c := newLinux(t, t.TempDir(), func(o *containerizer.LinuxOptions) { o.PidsMax = limit })
	destroyOnCleanup(t, c)
	cfg := containerizer.Config{
		ID:      "bomb",
		Command: containerizer.ShellCommand("bomb() { bomb | bomb & }; bomb; sleep 600"),
		Sandbox: filepath.Join(t.TempDir(), "s"),
		Env:     []string{"PATH=/usr/bin:/bin"},
	}
	require.NoError(t, c.Launch(linuxCtx(t), cfg))
	require.Eventually(t, func() bool {
		st, err := c.Stats(linuxCtx(t), "bomb")
		return err == nil && st.PidsLimited > 0
	}, 30*time.Second, 5*time.Millisecond, "no fork ever failed on the pids limit")
	st, err := c.Stats(linuxCtx(t), "bomb")
	require.NoError(t, err)
	assert.LessOrEqual(t, st.PidsCurrent, uint64(limit), "%+v", st)
	assert.Equal(t, uint64(limit), st.PidsMax)
	require.NoError(t, c.Destroy(linuxCtx(t), "bomb"))
}

func TestLinuxRecover(t *testing.T) {
	needLinux(t)
	stateDir := t.TempDir()
	c1 := newLinux(t, stateDir)
	destroyOnCleanup(t, c1)
	sandbox := filepath.Join(t.TempDir(), "s")
	require.NoError(t, c1.Launch(linuxCtx(t), containerizer.Config{
		ID:      "survivor",
		Command: containerizer.ShellCommand("echo ready > ready; while [ ! -e stop ]; do sleep 0.01; done; exit 7"),
		Sandbox: sandbox,
		Env:     []string{"PATH=/usr/bin:/bin"},
	}))
	waitFile(t, filepath.Join(sandbox, "ready"))
	// Another ends while no containerizer watches it: its init records how.
	alone := filepath.Join(t.TempDir(), "alone")
	require.NoError(t, c1.Launch(linuxCtx(t), containerizer.Config{
		ID:      "alone",
		Command: containerizer.ShellCommand("while [ ! -e stop ]; do sleep 0.01; done; exit 3"),
		Sandbox: alone,
		Env:     []string{"PATH=/usr/bin:/bin"},
	}))
	require.NoError(t, c1.Close())
	require.NoError(t, os.WriteFile(filepath.Join(alone, "stop"), nil, 0o644))
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(stateDir, "alone", "status"))
		return err == nil && len(b) > 0
	}, 30*time.Second, 10*time.Millisecond, "the init wrote the task's status")

	c2 := newLinux(t, stateDir)
	destroyOnCleanup(t, c2)
	ids, err := c2.Recover(linuxCtx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"alone", "survivor"}, ids)
	term, err := c2.Wait(linuxCtx(t), "alone")
	require.NoError(t, err)
	require.True(t, term.StatusKnown(), "%+v", term)
	assert.Equal(t, 3, term.ExitCode, "the status its init recorded")
	require.NoError(t, c2.Destroy(linuxCtx(t), "alone"))
	u, err := c2.Usage(linuxCtx(t), "survivor")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Processes, 1)

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c2.Wait(short, "survivor")
	require.ErrorIs(t, err, context.DeadlineExceeded, "still running")

	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "stop"), nil, 0o644))
	term, err = c2.Wait(linuxCtx(t), "survivor")
	require.NoError(t, err)
	assert.Equal(t, containerizer.ReasonNone, term.Reason)
	require.True(t, term.StatusKnown(), "a re-attached container's status comes from its init: %+v", term)
	assert.Equal(t, 7, term.ExitCode)
	require.NoError(t, c2.Destroy(linuxCtx(t), "survivor"))
	_, err = os.Stat(filepath.Join(stateDir, "survivor"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	ids, err = c2.Containers(linuxCtx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
}

// TestLinuxVolumeMountPointFollowsNoLink: a link a task left in its
// sandbox does not make the agent create a volume's mount point elsewhere.
func TestLinuxVolumeMountPointFollowsNoLink(t *testing.T) {
	needLinux(t)
	c := newLinux(t, t.TempDir())
	destroyOnCleanup(t, c)
	sandbox, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(sandbox, "data")))
	err := c.Launch(linuxCtx(t), containerizer.Config{
		ID: "link", Command: containerizer.ShellCommand("true"), Sandbox: sandbox,
		Volumes: []containerizer.Volume{{HostPath: t.TempDir(), ContainerPath: "data/vol"}},
	})
	require.ErrorIs(t, err, containerizer.ErrLaunchFailed)
	_, err = os.Stat(filepath.Join(outside, "vol"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing made through the link")
}

// TestLinuxRecoverRemovesHalfLaunched: a launch that died before its
// checkpoint leaves a state directory and a cgroup; Recover removes both
// and does not report the container.
func TestLinuxRecoverRemovesHalfLaunched(t *testing.T) {
	needLinux(t)
	stateDir := t.TempDir()
	m, err := cgroups.New(cgroups.Options{Root: cgroupRoot(t, stateDir)})
	require.NoError(t, err)
	require.NoError(t, m.Create("half", cgroups.Limits{}))
	require.NoError(t, os.Mkdir(filepath.Join(stateDir, "half"), 0o700))

	c := newLinux(t, stateDir)
	destroyOnCleanup(t, c)
	ids, err := c.Recover(linuxCtx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
	cgs, err := m.List()
	require.NoError(t, err)
	assert.Empty(t, cgs, "the cgroup is removed")
	_, err = os.Stat(filepath.Join(stateDir, "half"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the state directory is removed")
}

// BenchmarkLaunchTrueLinux and BenchmarkLaunchTrueParallelLinux are
// BenchmarkLaunchTrue and BenchmarkLaunchTrueParallel (260 at once) in the
// Linux containerizer: each /bin/true in new namespaces and cgroups (no
// image), against the process containerizer and the bare exec of
// BenchmarkExecTrueBaseline in the same run:
//
//	go test ./containerizer -run '^$' -bench 'LaunchTrue(Parallel)?(Linux)?$|ExecTrueBaseline' -benchtime 1000x
func BenchmarkLaunchTrueLinux(b *testing.B) {
	needLinux(b)
	benchLaunchTrue(b, newLinux(b, b.TempDir()))
}

func BenchmarkLaunchTrueParallelLinux(b *testing.B) {
	needLinux(b)
	benchLaunchTrueParallel(b, newLinux(b, b.TempDir()))
}
