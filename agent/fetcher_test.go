//go:build unix

package agent_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// archiveEntry is one entry of a test archive: a file (body), a directory
// (dir), or a symbolic (link) or hard (hardlink) link.
type archiveEntry struct {
	name     string
	body     string
	mode     int64
	dir      bool
	link     string
	hardlink string
}

func tarGz(t *testing.T, entries ...archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		switch {
		case e.dir:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeDir, 0, 0o755
		case e.link != "":
			hdr.Typeflag, hdr.Size, hdr.Linkname = tar.TypeSymlink, 0, e.link
		case e.hardlink != "":
			hdr.Typeflag, hdr.Size, hdr.Linkname = tar.TypeLink, 0, e.hardlink
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if hdr.Size > 0 {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func zipped(t *testing.T, entries ...archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := os.FileMode(0o644)
		if e.mode != 0 {
			mode = os.FileMode(e.mode)
		}
		body := e.body
		if e.link != "" {
			mode, body = mode|os.ModeSymlink, e.link
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		require.NoError(t, err)
		_, err = w.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func gzipped(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(body))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// fileServer serves files by path; anything else is a 404.
func fileServer(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fetchTask(id, command string, uris ...mesospb.CommandInfo_URI) mesospb.TaskInfo {
	task := commandTask(id, command)
	task.Command.URIs = uris
	return task
}

// runDir is the sandbox of the one run of an executor.
func (h *harness) runDir(execID string) string {
	h.t.Helper()
	matches, err := filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", execID, "runs", "*"))
	require.NoError(h.t, err)
	require.Len(h.t, matches, 1, "one run of executor %s", execID)
	return matches[0]
}

// waitFetchFailed waits for the task's TASK_FAILED and checks it is a
// failed fetch, whose message contains want; the task never started.
func waitFetchFailed(t *testing.T, h *harness, taskID, want string) *internalpb.Call_StatusUpdate {
	t.Helper()
	u := h.fm.waitUpdate(t, taskID, mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, u.Status.GetReason())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.True(t, strings.HasPrefix(u.Status.GetMessage(), "Failed to fetch all URIs for container '"), u.Status.GetMessage())
	assert.Contains(t, u.Status.GetMessage(), want)
	t.Log(u.Status.GetMessage())
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_FAILED}, h.fm.states(taskID), "the task never started")
	return u
}

// A command task sees its URIs in its sandbox: an executable script over
// HTTP, made executable, and a plain file left as fetched.
func TestFetchHTTPExecutable(t *testing.T) {
	srv := fileServer(t, map[string][]byte{
		"/bin/script.sh": []byte("#!/bin/sh\necho fetched-ok; cat data.txt\n"),
		"/data.txt":      []byte("some data\n"),
	})
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(fetchTask("t1", "test -x ./script.sh && ! test -x data.txt && ./script.sh",
		mesospb.CommandInfo_URI{Value: srv.URL + "/bin/script.sh", Executable: ptr(true)},
		mesospb.CommandInfo_URI{Value: srv.URL + "/data.txt?version=2"})))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, "fetched-ok\nsome data\n", h.sandboxFile("t1", "stdout"))

	st, err := os.Stat(filepath.Join(h.runDir("t1"), "script.sh"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	log := h.sandboxFile("t1", "stderr")
	assert.Contains(t, log, "Fetching URI '"+srv.URL+"/bin/script.sh'")
	assert.Contains(t, log, "Fetched '"+srv.URL+"/bin/script.sh' to '"+filepath.Join(h.runDir("t1"), "script.sh")+"'")
	assert.Contains(t, log, "does not seem to be an archive", "Mesos's warning for extract on a plain file")
}

// Archives are extracted into the sandbox and kept: tar.gz with
// directories, an executable and links, zip, and a lone .gz.
func TestFetchExtractsArchives(t *testing.T) {
	srv := fileServer(t, map[string][]byte{
		"/app.tar.gz": tarGz(t,
			archiveEntry{name: "./", dir: true},
			archiveEntry{name: "app/", dir: true},
			archiveEntry{name: "app/bin/run", body: "#!/bin/sh\necho running\n", mode: 0o755},
			archiveEntry{name: "app/README", body: "read me\n"},
			archiveEntry{name: "app/readme-link", link: "README"},
			archiveEntry{name: "app/hard", hardlink: "app/README"},
		),
		"/bundle.zip": zipped(t,
			archiveEntry{name: "z/", mode: int64(os.ModeDir | 0o755)},
			archiveEntry{name: "z/a.txt", body: "from zip\n"},
			archiveEntry{name: "z/tool", body: "#!/bin/sh\necho zip tool\n", mode: 0o755},
			archiveEntry{name: "z/a-link", link: "a.txt"},
		),
		"/notes.txt.gz": gzipped(t, "gunzipped\n"),
		"/keep.tar.gz":  tarGz(t, archiveEntry{name: "not-extracted", body: "x"}),
	})
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(fetchTask("t1", "cat app/readme-link app/hard z/a-link notes.txt && app/bin/run && z/tool",
		mesospb.CommandInfo_URI{Value: srv.URL + "/app.tar.gz"},
		mesospb.CommandInfo_URI{Value: srv.URL + "/bundle.zip", Extract: ptr(true)},
		mesospb.CommandInfo_URI{Value: srv.URL + "/notes.txt.gz"},
		mesospb.CommandInfo_URI{Value: srv.URL + "/keep.tar.gz", Extract: ptr(false)})))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, "read me\nread me\nfrom zip\ngunzipped\nrunning\nzip tool\n", h.sandboxFile("t1", "stdout"))

	dir := h.runDir("t1")
	for _, kept := range []string{"app.tar.gz", "bundle.zip", "notes.txt.gz", "keep.tar.gz"} {
		assert.FileExists(t, filepath.Join(dir, kept), "the archive stays, as in Mesos")
	}
	assert.NoFileExists(t, filepath.Join(dir, "not-extracted"), "extract=false")
	target, err := os.Readlink(filepath.Join(dir, "app", "readme-link"))
	require.NoError(t, err)
	assert.Equal(t, "README", target)
	assert.Contains(t, h.sandboxFile("t1", "stderr"), "Extracted 'app.tar.gz' into the sandbox")
}

// output_file names the file, in a directory of the sandbox it creates;
// file:// URIs and plain absolute paths are copied, not linked.
func TestFetchOutputFileAndLocalCopies(t *testing.T) {
	src := t.TempDir()
	conf := filepath.Join(src, "app.conf")
	require.NoError(t, os.WriteFile(conf, []byte("key=value\n"), 0o644))
	tool := filepath.Join(src, "tool")
	require.NoError(t, os.WriteFile(tool, []byte("#!/bin/sh\necho local tool\n"), 0o755))
	arch := filepath.Join(src, "weird-name")
	require.NoError(t, os.WriteFile(arch, tarGz(t, archiveEntry{name: "from-renamed-archive", body: "inside\n"}), 0o644))

	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(fetchTask("t1", "cat etc/my.conf from-renamed-archive && ./tool",
		mesospb.CommandInfo_URI{Value: "file://" + conf, OutputFile: ptr("etc/my.conf")},
		mesospb.CommandInfo_URI{Value: tool},
		mesospb.CommandInfo_URI{Value: arch, OutputFile: ptr("renamed.tgz")})))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, "key=value\ninside\nlocal tool\n", h.sandboxFile("t1", "stdout"))

	copied := filepath.Join(h.runDir("t1"), "etc", "my.conf")
	st, err := os.Lstat(copied)
	require.NoError(t, err)
	assert.True(t, st.Mode().IsRegular(), "a copy, not a link")
	require.NoError(t, os.WriteFile(conf, []byte("changed\n"), 0o644))
	b, err := os.ReadFile(copied)
	require.NoError(t, err)
	assert.Equal(t, "key=value\n", string(b))
	st, err = os.Stat(filepath.Join(h.runDir("t1"), "tool"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm(), "the source's mode is kept")
}

// A failed fetch fails the task with Mesos's reason and message; nothing
// is written outside the sandbox, and nothing of the executor is left.
func TestFetchFailures(t *testing.T) {
	srv := fileServer(t, map[string][]byte{
		"/escape.tar.gz":  tarGz(t, archiveEntry{name: "ok", body: "fine"}, archiveEntry{name: "../../escaped", body: "evil"}),
		"/abs.tar.gz":     tarGz(t, archiveEntry{name: "/tmp/apron-fetch-abs-escape", body: "evil"}),
		"/link.tar.gz":    tarGz(t, archiveEntry{name: "etc", link: "/etc"}),
		"/uplink.tar.gz":  tarGz(t, archiveEntry{name: "d/up", link: "../../.."}),
		"/chain.tar.gz":   tarGz(t, archiveEntry{name: "here", link: "."}, archiveEntry{name: "out", link: "here/../escaped"}),
		"/through.tar.gz": tarGz(t, archiveEntry{name: "here", link: "."}, archiveEntry{name: "here/../escaped", body: "evil"}),
		"/late.tar.gz":    tarGz(t, archiveEntry{name: "out", link: "here/../escaped"}, archiveEntry{name: "here", link: "."}),
		"/hard.tar.gz":    tarGz(t, archiveEntry{name: "h", hardlink: "../../escaped"}),
		"/escape.zip":     zipped(t, archiveEntry{name: "../escaped", body: "evil"}),
		"/zlink.zip":      zipped(t, archiveEntry{name: "l", link: "../../x"}),
		"/big":            bytes.Repeat([]byte("x"), 4096),
		"/big.tar.gz":     tarGz(t, archiveEntry{name: "a", body: strings.Repeat("y", 3000)}, archiveEntry{name: "b", body: strings.Repeat("y", 3000)}),
	})
	cases := []struct {
		name string
		uri  mesospb.CommandInfo_URI
		want string
	}{
		{"hdfs", mesospb.CommandInfo_URI{Value: "hdfs://namenode/app.tar.gz"}, `scheme "hdfs" is not supported`},
		{"s3", mesospb.CommandInfo_URI{Value: "s3://bucket/key"}, "Hadoop client"},
		{"relative", mesospb.CommandInfo_URI{Value: "some/file"}, "relative path"},
		{"404", mesospb.CommandInfo_URI{Value: srv.URL + "/missing"}, "HTTP error: 404 Not Found"},
		{"missing-file", mesospb.CommandInfo_URI{Value: "/nonexistent/apron/file"}, "no such file"},
		{"remote-file", mesospb.CommandInfo_URI{Value: "file://otherhost/etc/hosts"}, "only local files"},
		{"output-up", mesospb.CommandInfo_URI{Value: srv.URL + "/big", OutputFile: ptr("../up")}, "invalid output_file"},
		{"output-abs", mesospb.CommandInfo_URI{Value: srv.URL + "/big", OutputFile: ptr("/tmp/abs")}, "must be relative"},
		{"no-name", mesospb.CommandInfo_URI{Value: srv.URL + "/"}, "set output_file"},
		{"tar-dotdot", mesospb.CommandInfo_URI{Value: srv.URL + "/escape.tar.gz"}, "unsafe archive"},
		{"tar-abs", mesospb.CommandInfo_URI{Value: srv.URL + "/abs.tar.gz"}, "absolute path"},
		{"tar-link-abs", mesospb.CommandInfo_URI{Value: srv.URL + "/link.tar.gz"}, `points to absolute path "/etc"`},
		{"tar-link-up", mesospb.CommandInfo_URI{Value: srv.URL + "/uplink.tar.gz"}, "outside the sandbox"},
		{"tar-link-chain", mesospb.CommandInfo_URI{Value: srv.URL + "/chain.tar.gz"}, `through link "here"`},
		{"tar-through-link", mesospb.CommandInfo_URI{Value: srv.URL + "/through.tar.gz"}, "unsafe archive"},
		{"tar-link-chain-late", mesospb.CommandInfo_URI{Value: srv.URL + "/late.tar.gz"}, `link "out" leads out of the sandbox`},
		{"tar-hardlink", mesospb.CommandInfo_URI{Value: srv.URL + "/hard.tar.gz"}, "leaves the sandbox"},
		{"zip-dotdot", mesospb.CommandInfo_URI{Value: srv.URL + "/escape.zip"}, "unsafe archive"},
		{"zip-link", mesospb.CommandInfo_URI{Value: srv.URL + "/zlink.zip"}, "outside the sandbox"},
		{"too-large", mesospb.CommandInfo_URI{Value: srv.URL + "/big"}, "larger than the fetcher's size limit"},
		{"too-large-extracted", mesospb.CommandInfo_URI{Value: srv.URL + "/big.tar.gz"}, "larger than the fetcher's size limit"},
	}
	h := newHarness(t, func(c *agent.Config) { c.FetcherMaxSize = 4000 })
	h.waitRegistered()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.fm.push(runTask(fetchTask(c.name, "echo should not run", c.uri)))
			u := waitFetchFailed(t, h, c.name, c.want)
			assert.Contains(t, u.Status.GetMessage(), "fetching '")
			assert.NotContains(t, h.sandboxFile(c.name, "stderr"), "should not run")
			assert.NoFileExists(t, h.sandboxFile0(c.name, "stdout"), "the task never ran")
			assert.Contains(t, h.sandboxFile(c.name, "stderr"), "Failed to fetch '")
		})
	}
	// Nothing escaped: not next to the sandboxes, not at the absolute path.
	escaped, err := filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", "*", "escaped"))
	require.NoError(t, err)
	assert.Empty(t, escaped)
	escaped, err = filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", "*", "runs", "escaped"))
	require.NoError(t, err)
	assert.Empty(t, escaped)
	assert.NoFileExists(t, "/tmp/apron-fetch-abs-escape")

	// Every executor ended and was forgotten with its task: nothing leaked.
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assert.Len(t, h.state().CompletedTasks, len(cases))
}

// sandboxFile0 is the path of a file in an executor's run, whether or not
// it exists.
func (h *harness) sandboxFile0(execID, name string) string {
	return filepath.Join(h.runDir(execID), name)
}

// A download that stops sending data fails after the stall timeout.
func TestFetchStalled(t *testing.T) {
	release := make(chan struct{})
	var cancelled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write([]byte("a little"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			cancelled.Store(true)
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	h := newHarness(t, func(c *agent.Config) {
		c.FetcherStallTimeout = 50 * time.Millisecond
		// The default client would also wait only 50 ms for the headers,
		// which a loaded machine may take: the test is of the body's stall.
		c.FetcherHTTPClient = srv.Client()
	})
	h.waitRegistered()
	h.fm.push(runTask(fetchTask("t1", "true", mesospb.CommandInfo_URI{Value: srv.URL + "/slow"})))
	waitFetchFailed(t, h, "t1", "download stalled")
	require.Eventually(t, cancelled.Load, waitFor, tick, "the request was abandoned")
}

// A task killed while its URIs are fetched is killed; the fetch is
// abandoned and the executor forgotten.
func TestFetchKilled(t *testing.T) {
	started := make(chan struct{}, 1)
	var cancelled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		cancelled.Store(true)
	}))
	t.Cleanup(srv.Close)
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(fetchTask("t1", "true", mesospb.CommandInfo_URI{Value: srv.URL + "/forever"})))
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("the fetch did not start")
	}
	h.fm.push(killTask("t1"))
	u := h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	require.Eventually(t, cancelled.Load, waitFor, tick, "the download was cancelled")
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_KILLED}, h.fm.states("t1"))
}

// A custom executor is fetched like Mesos's: its binary comes over HTTP
// into the sandbox, and runs from there.
func TestFetchCustomExecutor(t *testing.T) {
	bin := customExecutorBinary(t)
	exe, err := os.ReadFile(bin)
	require.NoError(t, err)
	srv := fileServer(t, map[string][]byte{"/dist/executor": exe})
	h := newHTTPHarness(t)
	task := processTask("p1", "ex1", "./my-executor", "")
	task.Executor.Command.Shell = ptr(true)
	task.Executor.Command.URIs = []mesospb.CommandInfo_URI{{Value: srv.URL + "/dist/executor", Executable: ptr(true), OutputFile: ptr("my-executor")}}
	h.fm.push(runTask(task))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_FINISHED)
	assert.FileExists(t, filepath.Join(h.runDir("ex1"), "my-executor"))

	// An executor whose binary cannot be fetched fails its task.
	task = processTask("p2", "ex2", "./my-executor", "")
	task.Executor.Command.URIs = []mesospb.CommandInfo_URI{{Value: srv.URL + "/dist/missing", Executable: ptr(true)}}
	h.fm.push(runTask(task))
	waitFetchFailed(t, h.harness, "p2", "404 Not Found")
	h.fm.waitExited(t, "ex2")
}

// With the command executor as a process of its own, the task's URIs are
// fetched before that process starts, as Mesos's mesos-executor gets them.
func TestFetchCommandExecutorProcess(t *testing.T) {
	srv := fileServer(t, map[string][]byte{"/run.sh": []byte("#!/bin/sh\necho from process mode\n")})
	h := newHTTPHarness(t, func(c *agent.Config) { c.CommandExecutorMode = agent.CommandExecutorProcess })
	h.fm.push(runTask(fetchTask("c1", "./run.sh", mesospb.CommandInfo_URI{Value: srv.URL + "/run.sh", Executable: ptr(true)})))
	h.fm.waitUpdate(t, "c1", mesospb.TASK_FINISHED)
	assert.Equal(t, "from process mode\n", h.sandboxFile("c1", "stdout"))

	h.fm.push(runTask(fetchTask("c2", "./run.sh", mesospb.CommandInfo_URI{Value: srv.URL + "/gone.sh"})))
	waitFetchFailed(t, h.harness, "c2", "404 Not Found")
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

// As root, what is fetched belongs to the task's user, as the sandbox
// does, and the task can use it.
func TestFetchAsTaskUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a task as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, err := strconv.Atoi(nobody.Uid)
	require.NoError(t, err)
	srv := fileServer(t, map[string][]byte{
		"/script.sh": []byte("#!/bin/sh\nid -un; touch written-by-task\n"),
		"/a.tar.gz":  tarGz(t, archiveEntry{name: "d/", dir: true}, archiveEntry{name: "d/f", body: "x"}, archiveEntry{name: "d/l", link: "f"}),
	})
	h := newHarness(t)
	// The task's user must reach its sandbox under the test's work dir.
	require.NoError(t, os.Chmod(filepath.Dir(h.dir), 0o755))
	require.NoError(t, os.Chmod(h.dir, 0o755))
	h.waitRegistered()
	fw := framework
	fw.User = "nobody"
	h.fm.push(&internalpb.Event{Type: internalpb.Event_RUN_TASK.Enum(), RunTask: &internalpb.Event_RunTask{
		Framework: fw,
		Task: fetchTask("t1", "./script.sh && test -O d/f",
			mesospb.CommandInfo_URI{Value: srv.URL + "/script.sh", Executable: ptr(true)},
			mesospb.CommandInfo_URI{Value: srv.URL + "/a.tar.gz"}),
	}})
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, "nobody\n", h.sandboxFile("t1", "stdout"))
	dir := h.runDir("t1")
	for _, name := range []string{"script.sh", "a.tar.gz", "d", "d/f", "d/l", "stderr", "written-by-task"} {
		st, err := os.Lstat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, uint32(uid), fileUID(st), name)
	}

	// A local file the user may not read is not copied for it by the
	// agent, root as it is; nor one in a directory it may not enter.
	secret := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(secret), 0o755))
	require.NoError(t, os.Chmod(secret, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(secret, "private"), []byte("secret"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(secret, "public"), []byte("public\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(secret, "closed"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secret, "closed", "file"), []byte("secret"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(secret, "private"), filepath.Join(secret, "link")))
	for i, c := range []struct{ path, want string }{
		{filepath.Join(secret, "private"), "may not read it"},
		{"file://" + filepath.Join(secret, "link"), "may not read it"},
		{filepath.Join(secret, "closed", "file"), "may not enter"},
	} {
		id := "secret-" + strconv.Itoa(i)
		h.fm.push(&internalpb.Event{Type: internalpb.Event_RUN_TASK.Enum(), RunTask: &internalpb.Event_RunTask{
			Framework: fw, Task: fetchTask(id, "true", mesospb.CommandInfo_URI{Value: c.path}),
		}})
		waitFetchFailed(t, h, id, c.want)
	}
	h.fm.push(&internalpb.Event{Type: internalpb.Event_RUN_TASK.Enum(), RunTask: &internalpb.Event_RunTask{
		Framework: fw, Task: fetchTask("public", "cat public", mesospb.CommandInfo_URI{Value: filepath.Join(secret, "public")}),
	}})
	h.fm.waitUpdate(t, "public", mesospb.TASK_FINISHED)
	assert.Equal(t, "public\n", h.sandboxFile("public", "stdout"))
}

func fileUID(fi os.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }

// runTaskGroup is RUN_TASK_GROUP of tasks under a default executor.
func runTaskGroup(execID string, tasks ...mesospb.TaskInfo) *internalpb.Event {
	return &internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: framework,
			Executor: mesospb.ExecutorInfo{
				Type:       mesospb.ExecutorInfo_DEFAULT.Enum(),
				ExecutorID: mesospb.ExecutorID{Value: execID},
			},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: tasks},
		},
	}
}

// Under the default executor each task of a group gets its own URIs in
// its own sandbox, <run>/tasks/<task>, fetched by the agent's fetcher
// (its size limit holds there too); a failed fetch fails the whole group
// with Mesos's reason, and nothing of it runs.
func TestFetchTaskGroup(t *testing.T) {
	srv := fileServer(t, map[string][]byte{
		"/a.txt": []byte("for a\n"),
		"/big":   bytes.Repeat([]byte("x"), 4096),
	})
	h := newHarness(t, func(c *agent.Config) { c.FetcherMaxSize = 4000 })
	h.waitRegistered()
	h.fm.push(runTaskGroup("default-1",
		fetchTask("a", "cat a.txt", mesospb.CommandInfo_URI{Value: srv.URL + "/a.txt"}),
		commandTask("b", "test ! -e a.txt")))
	h.fm.waitUpdate(t, "a", mesospb.TASK_FINISHED)
	h.fm.waitUpdate(t, "b", mesospb.TASK_FINISHED)
	run := h.runDir("default-1")
	b, err := os.ReadFile(filepath.Join(run, "tasks", "a", "stdout"))
	require.NoError(t, err)
	assert.Equal(t, "for a\n", string(b))
	assert.FileExists(t, filepath.Join(run, "tasks", "a", "a.txt"))
	assert.NoFileExists(t, filepath.Join(run, "a.txt"), "not in the executor's sandbox")

	for _, c := range []struct{ exec, uri, want string }{
		{"default-2", srv.URL + "/missing", "HTTP error: 404 Not Found"},
		{"default-3", srv.URL + "/big", "larger than the fetcher's size limit"},
	} {
		bad, peer := c.exec+"-bad", c.exec+"-peer"
		h.fm.push(runTaskGroup(c.exec,
			commandTask(peer, "touch ran; sleep 1000"),
			fetchTask(bad, "touch ran", mesospb.CommandInfo_URI{Value: c.uri})))
		u := h.fm.waitUpdate(t, bad, mesospb.TASK_FAILED)
		assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, u.Status.GetReason())
		assert.True(t, strings.HasPrefix(u.Status.GetMessage(), "Failed to fetch all URIs for container '"), u.Status.GetMessage())
		assert.Contains(t, u.Status.GetMessage(), c.want)
		u = h.fm.waitUpdate(t, peer, mesospb.TASK_FAILED)
		assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, u.Status.GetReason())
		assert.Contains(t, u.Status.GetMessage(), `Task "`+bad+`" of the group failed to launch`)
		for _, id := range []string{bad, peer} {
			assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_FAILED}, h.fm.states(id), id)
			assert.NoFileExists(t, filepath.Join(h.runDir(c.exec), "tasks", id, "ran"), "%s never ran", id)
		}
		h.fm.waitExited(t, c.exec)
	}
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}
