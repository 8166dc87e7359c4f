package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/containerizer/image"
	"github.com/apronhq/apron/internal/imagetest"
	"github.com/apronhq/apron/recordio"
)

// nestedServer serves the harness's agent on loopback, for streams.
func nestedServer(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewServer(h.a.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL + agent.OperatorAPIPath
}

// post sends an operator request; the caller closes the answer's body.
func post(t *testing.T, ctx context.Context, url string, body io.Reader, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// output is what a stream of ProcessIO records carried.
type output struct {
	stdout, stderr string
	heartbeats     int
	err            error
}

func (o *output) add(m *agentpb.ProcessIO, out, errs *strings.Builder) {
	switch {
	case m.GetType() == agentpb.ProcessIO_CONTROL:
		o.heartbeats++
	case m.Data.GetType() == agentpb.ProcessIO_Data_STDOUT:
		out.Write(m.Data.Data)
	case m.Data.GetType() == agentpb.ProcessIO_Data_STDERR:
		errs.Write(m.Data.Data)
	}
}

// readOutput reads a ProcessIO stream to its end.
func readOutput(body io.Reader, c codec.Codec) output {
	var o output
	var out, errs strings.Builder
	rd := recordio.NewReader(body, 0)
	for {
		rec, err := rd.ReadRecord()
		if err != nil {
			if err != io.EOF {
				o.err = err
			}
			o.stdout, o.stderr = out.String(), errs.String()
			return o
		}
		var m agentpb.ProcessIO
		if err := c.Unmarshal(rec, &m); err != nil {
			o.err = err
			o.stdout, o.stderr = out.String(), errs.String()
			return o
		}
		o.add(&m, &out, &errs)
	}
}

// sessionCall is a LAUNCH_NESTED_CONTAINER_SESSION of command in the task
// container <run>.<task>, with a terminal when tty.
func sessionCall(run, task, name, command string, tty bool) *agentpb.Call {
	c := &agentpb.Call{Type: agentpb.Call_LAUNCH_NESTED_CONTAINER_SESSION.Enum(), LaunchNestedContainerSession: &agentpb.Call_LaunchNestedContainerSession{
		ContainerID: nestedID(run, task, name),
		Command:     &mesospb.CommandInfo{Value: ptr(command)},
	}}
	if tty {
		c.LaunchNestedContainerSession.Container = &mesospb.ContainerInfo{Type: mesospb.ContainerInfo_MESOS.Enum(), TTYInfo: &mesospb.TTYInfo{}}
	}
	return c
}

func nestedID(run, task, name string) mesospb.ContainerID {
	return mesospb.ContainerID{Value: name, Parent: &mesospb.ContainerID{Value: task, Parent: &mesospb.ContainerID{Value: run}}}
}

func marshal(t *testing.T, c codec.Codec, m proto.Message) []byte {
	t.Helper()
	b, err := c.Marshal(m)
	require.NoError(t, err)
	return b
}

// inputRecords frames calls as ATTACH_CONTAINER_INPUT's body.
func inputRecords(t *testing.T, c codec.Codec, calls ...*agentpb.Call) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := recordio.NewWriter(&buf)
	for _, call := range calls {
		require.NoError(t, w.WriteRecord(marshal(t, c, call)))
	}
	return buf.Bytes()
}

func attachFirst(id mesospb.ContainerID) *agentpb.Call {
	return &agentpb.Call{Type: agentpb.Call_ATTACH_CONTAINER_INPUT.Enum(), AttachContainerInput: &agentpb.Call_AttachContainerInput{
		Type: agentpb.Call_AttachContainerInput_CONTAINER_ID.Enum(), ContainerID: &id}}
}

func stdinData(data string) *agentpb.Call {
	return &agentpb.Call{Type: agentpb.Call_ATTACH_CONTAINER_INPUT.Enum(), AttachContainerInput: &agentpb.Call_AttachContainerInput{
		Type: agentpb.Call_AttachContainerInput_PROCESS_IO.Enum(),
		ProcessIO: &agentpb.ProcessIO{Type: agentpb.ProcessIO_DATA.Enum(),
			Data: &agentpb.ProcessIO_Data{Type: agentpb.ProcessIO_Data_STDIN.Enum(), Data: []byte(data)}}}}
}

func ttySize(rows, cols uint32) *agentpb.Call {
	return &agentpb.Call{Type: agentpb.Call_ATTACH_CONTAINER_INPUT.Enum(), AttachContainerInput: &agentpb.Call_AttachContainerInput{
		Type: agentpb.Call_AttachContainerInput_PROCESS_IO.Enum(),
		ProcessIO: &agentpb.ProcessIO{Type: agentpb.ProcessIO_CONTROL.Enum(), Control: &agentpb.ProcessIO_Control{
			Type: agentpb.ProcessIO_Control_TTY_INFO.Enum(), TTYInfo: &mesospb.TTYInfo{WindowSize: &mesospb.TTYInfo_WindowSize{Rows: rows, Columns: cols}}}}}}
}

var (
	recordioProtobuf = map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "application/x-protobuf"}
	recordioJSON     = map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"}
)

// A session's output comes back as ProcessIO records, over both
// encodings, RecordIO-framed with Mesos's headers; its container ends
// with it.
func TestNestedSessionOutput(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	for i, c := range []codec.Codec{codec.JSON, codec.Protobuf} {
		name := fmt.Sprintf("s%d", i)
		for _, streaming := range []bool{false, true} {
			name += "x"
			header := map[string]string{"Content-Type": c.MediaType(), "Accept": c.MediaType()}
			if streaming {
				header["Accept"], header["Message-Accept"] = "application/recordio", c.MediaType()
			}
			call := sessionCall(run, "t1", name, `printf out; printf err >&2; test "$PWD" = "$MESOS_SANDBOX" || echo "pwd $PWD sandbox $MESOS_SANDBOX"`, false)
			resp := post(t, context.Background(), url, bytes.NewReader(marshal(t, c, call)), header)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			if streaming {
				assert.Equal(t, "application/recordio", resp.Header.Get("Content-Type"))
				assert.Equal(t, c.MediaType(), resp.Header.Get("Message-Content-Type"))
			} else {
				assert.Equal(t, c.MediaType(), resp.Header.Get("Content-Type"))
				assert.Empty(t, resp.Header.Get("Message-Content-Type"))
			}
			o := readOutput(resp.Body, c)
			resp.Body.Close()
			require.NoError(t, o.err)
			assert.Equal(t, "out", o.stdout, name)
			assert.Equal(t, "err", o.stderr, name)
			// Destroyed once its output has ended.
			id := run + ".t1." + name
			require.Eventually(t, func() bool {
				code, _ := postOperator(t, h, `{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"`+name+`","parent":{"value":"t1","parent":{"value":"`+run+`"}}}}}`)
				return code == http.StatusNotFound
			}, waitFor, tick, id)
		}
	}
}

// ATTACH_CONTAINER_INPUT feeds the session's stdin; an empty DATA record
// is its end; one input connection at a time; WAIT_NESTED_CONTAINER and
// KILL_NESTED_CONTAINER work on it.
func TestNestedSessionInput(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	id := nestedID(run, "t1", "cat")
	resp := post(t, context.Background(), url, bytes.NewReader(marshal(t, codec.JSON, sessionCall(run, "t1", "cat", "cat; exit 7", false))),
		map[string]string{"Content-Type": "application/json", "Accept": "application/recordio"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	defer resp.Body.Close()
	waiting := waitCallNamed(t, h, context.Background(), "WAIT_NESTED_CONTAINER", `{"value":"cat","parent":{"value":"t1","parent":{"value":"`+run+`"}}}`)

	// The output, as it comes.
	var mu sync.Mutex
	var got output
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		rd := recordio.NewReader(resp.Body, 0)
		for {
			rec, err := rd.ReadRecord()
			if err != nil {
				return
			}
			var m agentpb.ProcessIO
			if codec.JSON.Unmarshal(rec, &m) == nil && m.Data.GetType() == agentpb.ProcessIO_Data_STDOUT {
				mu.Lock()
				got.stdout += string(m.Data.Data)
				mu.Unlock()
			}
		}
	}()
	stdout := func() string {
		mu.Lock()
		defer mu.Unlock()
		return got.stdout
	}

	// The first input connection stays open; a second one is refused
	// while it does.
	pr, pw := io.Pipe()
	first := make(chan *http.Response, 1)
	go func() { first <- post(t, context.Background(), url, pr, recordioProtobuf) }()
	_, err := pw.Write(inputRecords(t, codec.Protobuf, attachFirst(id), stdinData("hello ")))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return stdout() == "hello " }, waitFor, tick)
	second := post(t, context.Background(), url, bytes.NewReader(inputRecords(t, codec.JSON, attachFirst(id), stdinData("x"))), recordioJSON)
	b, _ := io.ReadAll(second.Body)
	second.Body.Close()
	assert.Equal(t, http.StatusConflict, second.StatusCode, "%s", b)
	_, err = pw.Write(inputRecords(t, codec.Protobuf, stdinData("world\n"), stdinData("")))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r1 := <-first
	r1.Body.Close()
	assert.Equal(t, http.StatusOK, r1.StatusCode)
	select {
	case <-ended:
	case <-time.After(waitFor):
		t.Fatal("the session's output did not end with its input")
	}
	assert.Equal(t, "hello world\n", stdout())
	a := answer(t, waiting)
	if a.code != http.StatusNotFound { // the session destroyed it first
		w := waitAnswerNamed(t, a, "WAIT_NESTED_CONTAINER")
		assert.Equal(t, float64(7<<8), w["exit_status"])
	}
}

// A session ends, container and all, when its client goes away; KILL and
// WAIT reach a session's container.
func TestNestedSessionClosedKillsIt(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	resp := post(t, ctx, url, strings.NewReader(`{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"s","parent":{"value":"t1","parent":{"value":"`+run+`"}}},"command":{"value":"sleep 1000"}}}`),
		map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	wait := `{"type":"WAIT_NESTED_CONTAINER","wait_nested_container":{"container_id":{"value":"s","parent":{"value":"t1","parent":{"value":"` + run + `"}}}}}`
	waiting := waitCallNamed(t, h, context.Background(), "WAIT_NESTED_CONTAINER", `{"value":"s","parent":{"value":"t1","parent":{"value":"`+run+`"}}}`)
	select {
	case a := <-waiting:
		t.Fatalf("the session's container ended at once: %v", a)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	resp.Body.Close()
	a := answer(t, waiting)
	if a.code == http.StatusOK {
		w := waitAnswerNamed(t, a, "WAIT_NESTED_CONTAINER")
		assert.Equal(t, 9.0, w["exit_status"], "killed")
	}
	require.Eventually(t, func() bool {
		code, _ := postOperator(t, h, wait)
		return code == http.StatusNotFound
	}, waitFor, tick)
	// The task still runs.
	assert.Equal(t, mesospb.TASK_RUNNING, h.state().Frameworks[0].Executors[0].Tasks[0].GetState())
}

// Bad requests get Mesos's status codes.
func TestNestedBadRequests(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	send := func(body []byte, header map[string]string) (int, string) {
		resp := post(t, context.Background(), url, bytes.NewReader(body), header)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	jsonCT := map[string]string{"Content-Type": "application/json"}
	cases := []struct {
		name   string
		body   []byte
		header map[string]string
		code   int
		msg    string
	}{
		{"unknown parent", marshal(t, codec.JSON, sessionCall("nope", "t1", "s", "true", false)), jsonCT, 400, "does not exist"},
		{"no parent", []byte(`{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"s"},"command":{"value":"true"}}}`), jsonCT, 400, "parent' to be present"},
		{"no command", []byte(`{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"s","parent":{"value":"` + run + `"}}}}`), jsonCT, 400, "command"},
		{"bad id", []byte(`{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"a.b","parent":{"value":"` + run + `"}},"command":{"value":"true"}}}`), jsonCT, 400, "invalid"},
		{"attach output unknown", []byte(`{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"x","parent":{"value":"` + run + `"}}}}`), jsonCT, 404, "cannot be found"},
		{"attach output unknown run", []byte(`{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"x"}}}`), jsonCT, 404, "cannot be found"},
		{"input not streamed", []byte(`{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID","container_id":{"value":"x"}}}`), jsonCT, 415, "application/recordio"},
		{"input unknown", inputRecords(t, codec.JSON, attachFirst(nestedID(run, "t1", "none"))), recordioJSON, 404, "cannot be found"},
		{"input malformed", []byte("12\nshort"), recordioJSON, 400, ""},
		{"input garbage", []byte("x"), recordioProtobuf, 400, ""},
		{"input empty", nil, recordioJSON, 400, "EOF"},
		{"input not attach", inputRecords(t, codec.JSON, &agentpb.Call{Type: agentpb.Call_GET_STATE.Enum()}), recordioJSON, 415, "not supported for GET_STATE"},
		{"input first not CONTAINER_ID", inputRecords(t, codec.JSON, stdinData("x")), recordioJSON, 400, "CONTAINER_ID"},
		{"input no container", inputRecords(t, codec.JSON, &agentpb.Call{Type: agentpb.Call_ATTACH_CONTAINER_INPUT.Enum(), AttachContainerInput: &agentpb.Call_AttachContainerInput{Type: agentpb.Call_AttachContainerInput_CONTAINER_ID.Enum()}}), recordioJSON, 400, "container_id"},
		{"no Message-Content-Type", inputRecords(t, codec.JSON, attachFirst(nestedID(run, "t1", "none"))), map[string]string{"Content-Type": "application/recordio"}, 400, "Message-Content-Type"},
		{"bad Message-Content-Type", inputRecords(t, codec.JSON, attachFirst(nestedID(run, "t1", "none"))), map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "text/plain"}, 415, ""},
		{"bad Message-Accept", marshal(t, codec.JSON, sessionCall(run, "t1", "s", "true", false)), map[string]string{"Content-Type": "application/json", "Accept": "application/recordio", "Message-Accept": "text/plain"}, 406, ""},
		{"streamed GET_STATE", []byte(`{"type":"GET_STATE"}`), map[string]string{"Content-Type": "application/json", "Accept": "application/recordio"}, 406, "GET_STATE"},
		{"Message-Content-Type on a plain call", marshal(t, codec.JSON, sessionCall(run, "t1", "s", "true", false)), map[string]string{"Content-Type": "application/json", "Message-Content-Type": "application/json"}, 415, ""},
	}
	for _, c := range cases {
		code, msg := send(c.body, c.header)
		assert.Equal(t, c.code, code, "%s: %s", c.name, msg)
		assert.Contains(t, msg, c.msg, c.name)
	}
	// A container ID already launched: 202, as Mesos's ALREADY_LAUNCHED.
	code, body := postOperator(t, h, `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"n","parent":{"value":"t1","parent":{"value":"`+run+`"}}},"command":{"value":"sleep 1000"}}}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = postOperator(t, h, `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"n","parent":{"value":"t1","parent":{"value":"`+run+`"}}},"command":{"value":"sleep 1000"}}}`)
	assert.Equal(t, http.StatusAccepted, code, body)
	// A plain nested container is killed and waited for as any other.
	code, body = postOperator(t, h, `{"type":"KILL_NESTED_CONTAINER","kill_nested_container":{"container_id":{"value":"n","parent":{"value":"t1","parent":{"value":"`+run+`"}}}}}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = postOperator(t, h, `{"type":"WAIT_NESTED_CONTAINER","wait_nested_container":{"container_id":{"value":"n","parent":{"value":"t1","parent":{"value":"`+run+`"}}}}}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"exit_status":9`)
}

// linuxHarness is a harness whose agent runs tasks in the Linux
// containerizer, from a busybox image of a loopback registry. It skips
// without root or cgroups.
func linuxHarness(t *testing.T) (*harness, string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the Linux containerizer needs Linux and root (namespaces, cgroups, mounts)")
	}
	root := fmt.Sprintf("apron-agent-nested-test-%d", os.Getpid())
	if _, err := cgroups.New(cgroups.Options{Root: root}); err != nil {
		t.Skip("the Linux containerizer needs cgroups:", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build the containers' init (containerizer/launcher/testdata/init)")
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "init")
	out, err := exec.Command(goTool, "build", "-o", initBin, "../containerizer/launcher/testdata/init").CombinedOutput()
	require.NoError(t, err, "%s", out)
	reg := imagetest.NewRegistry(t)
	reg.Push(t, "apron/busybox:test", imagetest.Busybox(t, map[string]string{"/marker": "from the image\n"}))
	store, err := image.Open(image.Options{Dir: filepath.Join(dir, "images"), Registry: reg.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	l, err := containerizer.NewLinux(containerizer.LinuxOptions{
		StateDir: filepath.Join(dir, "containers"),
		Cgroups:  cgroups.Options{Root: root},
		Images:   store,
		Init:     initBin,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		l.Close()
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + root)
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	h := newHarness(t, func(c *agent.Config) { c.Containerizer = l })
	h.waitRegistered()
	task := commandTask("t1", "sleep 1000")
	task.Container = &mesospb.ContainerInfo{Type: mesospb.ContainerInfo_MESOS.Enum(), Hostname: ptr("the-task"),
		Mesos: &mesospb.ContainerInfo_MesosInfo{Image: &mesospb.Image{Type: mesospb.Image_DOCKER.Enum(), Docker: &mesospb.Image_Docker{Name: "apron/busybox:test"}}}}
	h.fm.push(runTask(task))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	return h, h.state().Frameworks[0].Executors[0].ContainerID
}

// A session in a task's container of the Linux containerizer sees what
// the task sees: its host name, its image's files, its pid namespace;
// with a terminal it has a terminal; input reaches it.
func TestNestedSessionLinux(t *testing.T) {
	h, run := linuxHarness(t)
	url := nestedServer(t, h)
	jsonHeader := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}

	resp := post(t, context.Background(), url, bytes.NewReader(marshal(t, codec.JSON, sessionCall(run, "t1", "look", "hostname; cat /marker; ls /proc", false))), jsonHeader)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	o := readOutput(resp.Body, codec.JSON)
	resp.Body.Close()
	require.NoError(t, o.err)
	lines := strings.Fields(o.stdout)
	require.GreaterOrEqual(t, len(lines), 3, "%q (stderr %q)", o.stdout, o.stderr)
	assert.Equal(t, "the-task", lines[0], "the task's host name")
	assert.Equal(t, []string{"from", "the", "image"}, lines[1:4], "the task's root filesystem")
	var pids []string
	for _, f := range lines[4:] {
		if f[0] >= '0' && f[0] <= '9' {
			pids = append(pids, f)
		}
	}
	assert.Contains(t, pids, "1", "the task's pid namespace, its init pid 1")
	assert.LessOrEqual(t, len(pids), 5, "the task's pid namespace: its init, the task, the session's shell and ls: %v", pids)
	t.Logf("pids in the session: %v", pids)

	// A terminal, resized, fed through ATTACH_CONTAINER_INPUT.
	resp = post(t, context.Background(), url, bytes.NewReader(marshal(t, codec.JSON, sessionCall(run, "t1", "tty", "test -t 0 && echo is-a-tty; read x; echo got-$x", true))), jsonHeader)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := nestedID(run, "t1", "tty")
	in := post(t, context.Background(), url, bytes.NewReader(inputRecords(t, codec.JSON, attachFirst(id), ttySize(30, 100), stdinData("abc\n"))), recordioJSON)
	in.Body.Close()
	assert.Equal(t, http.StatusOK, in.StatusCode)
	o = readOutput(resp.Body, codec.JSON)
	resp.Body.Close()
	require.NoError(t, o.err)
	assert.Contains(t, o.stdout, "is-a-tty")
	assert.Contains(t, o.stdout, "got-abc")
	assert.Empty(t, o.stderr, "a terminal merges stderr into stdout")

	// A plain nested container: KILL_NESTED_CONTAINER signals it,
	// WAIT_NESTED_CONTAINER gives its wait status.
	nested := `{"value":"plain","parent":{"value":"t1","parent":{"value":"` + run + `"}}}`
	code, body := postOperator(t, h, `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":`+nested+`,"command":{"value":"sleep 1000"}}}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = postOperator(t, h, `{"type":"KILL_NESTED_CONTAINER","kill_nested_container":{"container_id":`+nested+`,"signal":15}}`)
	require.Equal(t, http.StatusOK, code, body)
	w := waitAnswerNamed(t, answer(t, waitCallNamed(t, h, context.Background(), "WAIT_NESTED_CONTAINER", nested)), "WAIT_NESTED_CONTAINER")
	assert.Equal(t, 15.0, w["exit_status"], "killed by SIGTERM")
	// The task is untouched.
	assert.Equal(t, mesospb.TASK_RUNNING, h.state().Frameworks[0].Executors[0].Tasks[0].GetState())
}

// A client outside Go: python3 launches a session with JSON and reads its
// RecordIO stream.
func TestNestedSessionFromPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	script := `
import base64, json, sys, urllib.request
url, run = sys.argv[1], sys.argv[2]
call = {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
    "container_id": {"value": "py", "parent": {"value": "t1", "parent": {"value": run}}},
    "command": {"value": "echo from-python-session"}}}
req = urllib.request.Request(url, data=json.dumps(call).encode(), headers={
    "Content-Type": "application/json", "Accept": "application/recordio", "Message-Accept": "application/json"})
resp = urllib.request.urlopen(req)
assert resp.headers["Content-Type"] == "application/recordio", resp.headers
assert resp.headers["Message-Content-Type"] == "application/json", resp.headers
out = b""
while True:
    line = resp.readline()
    if not line:
        break
    rec = json.loads(resp.read(int(line)))
    if rec["type"] == "DATA" and rec["data"]["type"] == "STDOUT":
        out += base64.b64decode(rec["data"]["data"])
sys.stdout.write(out.decode())
`
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, "-c", script, url, run)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	assert.Equal(t, "from-python-session\n", stdout.String())
}

// A slow reader of a session does not make the agent buffer: the
// container waits for it, blocked on its full pipe.
func TestNestedSessionSlowReader(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	url := nestedServer(t, h)
	const size = 24 << 20 // more than loopback's socket buffers hold
	resp := post(t, context.Background(), url, bytes.NewReader(marshal(t, codec.Protobuf, sessionCall(run, "t1", "big", fmt.Sprintf("head -c %d /dev/zero; echo done >&2", size), false))),
		map[string]string{"Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	defer resp.Body.Close()
	// Nothing read yet: the container cannot have written it all.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	a := answer(t, waitCallNamed(t, h, ctx, "WAIT_NESTED_CONTAINER", `{"value":"big","parent":{"value":"t1","parent":{"value":"`+run+`"}}}`))
	cancel()
	assert.NotEqual(t, http.StatusOK, a.code, "the container ended before its output was read: the agent buffered it")
	o := readOutput(resp.Body, codec.Protobuf)
	require.NoError(t, o.err)
	assert.Equal(t, size, len(o.stdout))
	assert.Equal(t, "done\n", o.stderr)
}
