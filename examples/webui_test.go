package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/master/webui"
	"github.com/apronhq/apron/scheduler"
)

// uiCluster is a master serving its HTTP API (and so the web UI) on
// loopback, with agents in the same process, each serving its own HTTP API
// so that the master's files proxy reaches their sandboxes.
type uiCluster struct {
	url    string
	m      *master.Master
	ctx    context.Context
	agents []*agent.Agent
	wg     sync.WaitGroup
}

// startUICluster starts a master and n agents; everything stops at the
// end of the test.
func startUICluster(t *testing.T, n int) *uiCluster {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	m, err := master.New(master.Config{
		Logger:             logger,
		TickInterval:       10 * time.Millisecond,
		AllocationInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	c := &uiCluster{m: m, ctx: ctx}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: m.Handler()}
	c.url = "http://" + ln.Addr().String()
	var servers []*http.Server
	servers = append(servers, srv)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); _ = m.Run(ctx) }()
	go func() { defer c.wg.Done(); _ = srv.Serve(ln) }()
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		aln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := aln.Addr().(*net.TCPAddr).Port
		a, err := agent.New(agent.Config{
			Master:     m,
			WorkDir:    filepath.Join(dir, fmt.Sprintf("agent-%d", i+1)),
			Resources:  "cpus:2;mem:2048;disk:10000;ports:[31000-32000]",
			Attributes: fmt.Sprintf("rack:r%d;zone:z%d", i%2+1, i%3+1),
			Hostname:   "127.0.0.1",
			IP:         "127.0.0.1",
			Port:       port,
			Endpoint:   aln.Addr().String(),
			Logger:     logger,
		})
		require.NoError(t, err)
		asrv := &http.Server{Handler: a.Handler()}
		servers = append(servers, asrv)
		c.agents = append(c.agents, a)
		c.wg.Add(2)
		go func() { defer c.wg.Done(); _ = a.Run(ctx) }()
		go func() { defer c.wg.Done(); _ = asrv.Serve(aln) }()
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		for _, a := range c.agents {
			_ = a.Shutdown(sctx)
		}
		cancel()
		for _, s := range servers {
			_ = s.Close()
		}
		c.wg.Wait()
	})
	require.Eventually(t, func() bool { return agentsRegistered(ln.Addr().String()) == n }, wait, 20*time.Millisecond,
		"the agents register with the master")
	return c
}

// runJob runs the batch framework on the cluster with tasks, as name,
// until the test ends.
func (c *uiCluster) runJob(t *testing.T, name string, tasks []batch.Task) *batch.Framework {
	t.Helper()
	fw := batch.New(tasks, io.Discard)
	d, err := scheduler.NewDriver(fw, mesospb.FrameworkInfo{User: "root", Name: name, Roles: []string{"web"},
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}},
		scheduler.WithMaster(c.m))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return fw
}

// operator makes an operator API call, which must succeed.
func (c *uiCluster) operator(t *testing.T, body string) {
	t.Helper()
	resp, err := http.Post(c.url+"/api/v1", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "%s: %s", body, b)
}

// TestWebUIDevCluster serves a populated cluster for a person to look at
// (APRON_WEBUI_DEV=1): it prints the master's URL and runs until
// interrupted or for APRON_WEBUI_DEV_FOR (a Go duration, default 10m).
func TestWebUIDevCluster(t *testing.T) {
	if os.Getenv("APRON_WEBUI_DEV") != "1" {
		t.Skip("serves a cluster for a person to look at; set APRON_WEBUI_DEV=1")
	}
	c := startUICluster(t, 3)
	c.runJob(t, "webui-demo", demoTasks(12))
	fmt.Println("master:", c.url)
	d := 10 * time.Minute
	if s := os.Getenv("APRON_WEBUI_DEV_FOR"); s != "" {
		var err error
		d, err = time.ParseDuration(s)
		require.NoError(t, err)
	}
	time.Sleep(d)
}

// demoTasks is a job of n tasks: some finish at once, some run long and
// write to their stdout every second.
func demoTasks(n int) []batch.Task {
	var tasks []batch.Task
	for i := 0; i < n; i++ {
		cmd := fmt.Sprintf("echo task %d done", i)
		if i%3 == 0 {
			cmd = fmt.Sprintf("i=0; while true; do echo \"tick $i from task %d\"; echo \"warn $i\" >&2; i=$((i+1)); sleep 1; done", i)
		}
		tasks = append(tasks, batch.Task{Name: fmt.Sprintf("demo-%02d", i), Command: cmd, CPUs: 0.1 + float64(i%4)/10, Mem: 32 + float64(i%3)*32})
	}
	return tasks
}

// chromium finds headless Chromium (Debian's chromium, or
// APRON_CHROMIUM) and skips the test without one.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("APRON_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Skip("browser test: needs headless Chromium (Debian's chromium package, or APRON_CHROMIUM=/path/to/chrome)")
	}
	return path
}

// browser starts the Chromium at path for the test and returns a tab's
// context. Every uncaught exception or console error of the page fails
// the test at its end. Start what the page talks to first: the browser
// closes before it, so that no stream is cut under the page.
func browser(t *testing.T, path string, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, wait)
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		assert.Empty(t, problems, "the page logs no errors and throws no exceptions")
	})
	return ctx
}

// poll waits until the JavaScript expression is truthy.
func poll(ctx context.Context, expr string) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(wait), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", expr, err)
	}
	return nil
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// screenshot saves the tab's viewport as docs/ui/<name>.png when
// APRON_UPDATE_SCREENSHOTS=1 (so a CI run does not rewrite them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("APRON_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	time.Sleep(300 * time.Millisecond) // let a debounced render land
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "ui", name+".png"), png, 0o644))
}

// setField sets an input's or select's value as a person would, firing
// the events the page listens to.
func setField(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); })()`, sel, value))
}

// TestWebUI drives the master's web UI in headless Chromium against a
// cluster in this process (a master, two agents with their HTTP APIs, and
// the batch framework): every page renders; the running-task count on
// the overview changes, without a reload, when a task starts; the tasks
// page filters by state and searches; a task's sandbox lists its files
// and its stdout shows what the task wrote. With
// APRON_UPDATE_SCREENSHOTS=1 it also runs a bigger job and saves the
// screenshots in docs/ui.
func TestWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: starts Chromium and a cluster; skipped with -short")
	}
	path := chromium(t)
	c := startUICluster(t, 2)
	ctx := browser(t, path, 1280, 860)
	q := func(s string) string { return strings.ReplaceAll(s, `"`, `\"`) }

	// The overview, live, before any framework.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/")))
	require.NoError(t, poll(ctx, `document.querySelector("#conn").dataset.state === "live"`))
	require.NoError(t, poll(ctx, `document.querySelector("#ov-agents").textContent === "2"`))
	assert.Equal(t, "0", eval[string](t, ctx, `document.querySelector('[data-count-state="TASK_RUNNING"]').textContent`))

	// A task starts: the count follows, with no reload (the marker
	// survives only in this document).
	eval[chromedp.Void](t, ctx, `window.__sameDocument = true`)
	const marker = "hello from the webui test"
	c.runJob(t, "webui-test", []batch.Task{
		{Name: "long", Command: "echo '" + marker + "'; echo 'to stderr' >&2; exec sleep 300", CPUs: 0.5, Mem: 64},
		{Name: "quick", Command: "echo quick done", CPUs: 0.1, Mem: 32},
	})
	require.NoError(t, poll(ctx, `document.querySelector('[data-count-state="TASK_RUNNING"]').textContent === "1" &&
		document.querySelector('[data-count-state="TASK_FINISHED"]').textContent === "1"`))
	assert.True(t, eval[bool](t, ctx, `window.__sameDocument === true`), "the page was not reloaded")
	assert.Equal(t, "1", eval[string](t, ctx, `document.querySelector("#ov-frameworks").textContent`))
	screenshot(t, ctx, "overview")

	// Agents, frameworks, roles and maintenance render what the master has.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/agents")))
	require.NoError(t, poll(ctx, `document.querySelectorAll(".vt-row[data-agent-id]").length === 2`))
	agentID := eval[string](t, ctx, `document.querySelector(".vt-row[data-agent-id]").dataset.agentId`)
	c.operator(t, `{"type":"RESERVE_RESOURCES","reserve_resources":{"agent_id":{"value":"`+agentID+`"},
		"resources":[{"name":"disk","type":"SCALAR","scalar":{"value":512},"reservations":[{"type":"DYNAMIC","role":"ops-reserved"}]}]}}`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/agents/"+url.PathEscape(agentID))))
	require.NoError(t, poll(ctx, `document.querySelector("#agent-body .card") !== null && document.body.textContent.includes("rack:") &&
		document.querySelector("#agent-body").textContent.includes("ops-reserved")`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/frameworks")))
	require.NoError(t, poll(ctx, `[...document.querySelectorAll(".vt-row[data-framework-id]")].some(r => r.textContent.includes("webui-test"))`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(".vt-row[data-framework-id] a")))
	require.NoError(t, poll(ctx, `document.querySelectorAll("#fw-tasks .vt-row[data-task-id]").length === 2 &&
		document.querySelector("#fw-body").textContent.includes("MULTI_ROLE") && document.querySelector("#fw-offers .vt") !== null`))
	c.operator(t, `{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"web","weight":2.5}]}}`)
	c.operator(t, `{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"web","guarantees":{"cpus":{"value":1}},"limits":{"cpus":{"value":3.5},"mem":{"value":2048}}}]}}`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/roles")))
	role := `document.querySelector('.vt-row[data-role="web"]')?.textContent || ""`
	require.NoError(t, poll(ctx, role+`.includes("2.5") && (`+role+`).includes("cpus 3.5, mem 2 GB")`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/maintenance")))
	require.NoError(t, poll(ctx, `document.querySelector("#mt-schedule").textContent.includes("No maintenance scheduled") &&
		document.querySelector("#mt-agents .vt-empty") !== null`))
	// Deactivating an agent (it keeps its tasks, gets no offers) shows here.
	idle := eval[string](t, ctx, `[...window.apron.store.agents.values()].sort((a, b) => a.tasks - b.tasks)[0].id`)
	c.operator(t, `{"type":"DEACTIVATE_AGENT","deactivate_agent":{"agent_id":{"value":"`+idle+`"}}}`)
	require.NoError(t, poll(ctx, `document.querySelector('#mt-agents .vt-row')?.textContent.includes("deactivated")`))
	c.operator(t, `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":{"value":"`+idle+`"}}}`)

	// The tasks page: by state, then by search.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks")))
	rows := `[...document.querySelectorAll(".vt-row[data-task-id]")]`
	require.NoError(t, poll(ctx, rows+`.length === 2`))
	setField(t, ctx, "#task-state", "TASK_RUNNING")
	require.NoError(t, poll(ctx, rows+`.map(r => r.dataset.taskId).join() === "long-1"`))
	setField(t, ctx, "#task-state", "TASK_FINISHED")
	require.NoError(t, poll(ctx, rows+`.map(r => r.dataset.taskId).join() === "quick-1"`))
	setField(t, ctx, "#task-state", "")
	setField(t, ctx, "#task-q", "LONG")
	require.NoError(t, poll(ctx, rows+`.map(r => r.dataset.taskId).join() === "long-1"`))
	assert.Contains(t, eval[string](t, ctx, `location.hash`), "q=LONG", "the filter is in the URL")
	setField(t, ctx, "#task-q", "")
	screenshot(t, ctx, "tasks")

	// The sandbox: its listing, then stdout, tailed.
	fw := eval[string](t, ctx, `[...window.apron.store.frameworks.keys()][0]`)
	longAgent := eval[string](t, ctx, `[...window.apron.store.tasks.values()].find(t => t.id === "long-1").agent`)
	dir := "/frameworks/" + fw + "/executors/long-1/runs/latest"
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/sandbox?"+url.Values{"agent": {longAgent}, "path": {dir}}.Encode())))
	require.NoError(t, poll(ctx, `document.querySelector('.vt-row[data-file="stdout"]') !== null && document.querySelector('.vt-row[data-file="stderr"]') !== null`))
	// A finished task's page lists its updates, newest first.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks/"+url.PathEscape(fw)+"/quick-1")))
	history := `[...document.querySelectorAll("#task-history tr[data-state]")].map(r => r.dataset.state)`
	require.NoError(t, poll(ctx, history+`.join() === "TASK_FINISHED,TASK_RUNNING,TASK_STARTING"`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks/"+url.PathEscape(fw)+"/long-1")))
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible("#task-stdout"), chromedp.Click("#task-stdout")))
	require.NoError(t, poll(ctx, `(document.querySelector("#sb-log")?.textContent || "").includes("`+q(marker)+`")`))
	screenshot(t, ctx, "sandbox")

	// The UI's own assets, as the browser got them.
	ct, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("ui/app.js").then(r => r.headers.get("content-type"))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Equal(t, "text/javascript; charset=utf-8", ct)

	// Names come from frameworks: shown as text, never as markup.
	const probe = `<img src="x" id="xss-probe">`
	c.runJob(t, probe, []batch.Task{{Name: "probe", Command: "true", CPUs: 0.1, Mem: 32}})
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/frameworks")))
	require.NoError(t, poll(ctx, `[...document.querySelectorAll(".vt-row[data-framework-id]")].some(r => r.textContent.includes("`+q(probe)+`"))`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks")))
	require.NoError(t, poll(ctx, `[...document.querySelectorAll("#task-fw option")].some(o => o.textContent.includes("`+q(probe)+`"))`))
	assert.False(t, eval[bool](t, ctx, `document.getElementById("xss-probe") !== null`), "a framework's name became an element")

	if os.Getenv("APRON_UPDATE_SCREENSHOTS") == "1" {
		populate(t, ctx, c)
	}
}

// populate runs a bigger job and takes the screenshots of a busy cluster.
func populate(t *testing.T, ctx context.Context, c *uiCluster) {
	c.runJob(t, "webui-demo", demoTasks(30))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/")))
	time.Sleep(40 * time.Second) // the overview's plot fills over minutes
	screenshot(t, ctx, "overview")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/agents")))
	screenshot(t, ctx, "agents")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks")))
	screenshot(t, ctx, "tasks")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/frameworks")))
	screenshot(t, ctx, "frameworks")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/roles")))
	screenshot(t, ctx, "roles")
	fw := eval[string](t, ctx, `[...window.apron.store.frameworks.values()].find(f => f.info.name === "webui-demo").id`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/tasks/"+url.PathEscape(fw)+"/demo-00-1"), chromedp.WaitVisible("#task-history")))
	screenshot(t, ctx, "task")
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible("#task-stdout"), chromedp.Click("#task-stdout")))
	require.NoError(t, poll(ctx, `(document.querySelector("#sb-log")?.textContent || "").includes("tick 3")`))
	screenshot(t, ctx, "sandbox")
	c.operator(t, fmt.Sprintf(`{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[
		{"machine_ids":[{"hostname":"rack2-host7","ip":"10.0.2.7"}],"unavailability":{"start":{"nanoseconds":%d},"duration":{"nanoseconds":%d}}}]}}}`,
		time.Now().Add(time.Hour).UnixNano(), (2*time.Hour).Nanoseconds()))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url+"/#/maintenance")))
	require.NoError(t, poll(ctx, `document.querySelector("#mt-schedule").textContent.includes("rack2-host7")`))
	screenshot(t, ctx, "maintenance")
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(c.url+"/#/")))
	screenshot(t, ctx, "overview-phone")
}

// TestWebUIBigState measures the UI with a big cluster (APRON_WEBUI_BIG=1;
// no timed assertion): a stand-in master serves the UI and answers
// SUBSCRIBE with a synthetic SUBSCRIBED of APRON_WEBUI_AGENTS agents
// (default 10,000) and APRON_WEBUI_TASKS tasks (default 100,000); the
// test then reads, in the page, how long loading, rendering, filtering
// and applying events took, and logs the numbers.
func TestWebUIBigState(t *testing.T) {
	if os.Getenv("APRON_WEBUI_BIG") != "1" {
		t.Skip("measures the UI with a big synthetic state; set APRON_WEBUI_BIG=1")
	}
	nAgents, nTasks := envInt(t, "APRON_WEBUI_AGENTS", 10000), envInt(t, "APRON_WEBUI_TASKS", 100000)
	subscribed := bigSubscribed(nAgents, nTasks)
	t.Logf("SUBSCRIBED event: %d agents, %d tasks, %.1f MB of JSON", nAgents, nTasks, float64(len(subscribed))/1e6)
	mux := http.NewServeMux()
	ui := webui.Handler()
	mux.Handle("/{$}", ui)
	mux.Handle(webui.AssetPrefix, ui)
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var call struct{ Type string }
		_ = json.Unmarshal(b, &call)
		w.Header().Set("Content-Type", "application/json")
		switch call.Type {
		case "SUBSCRIBE":
			fmt.Fprintf(w, "%d\n%s", len(subscribed), subscribed)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "GET_MASTER":
			fmt.Fprint(w, `{"type":"GET_MASTER","get_master":{"master_info":{"id":"big","port":5050,"hostname":"localhost","version":"1.11.0"}}}`)
		case "GET_METRICS":
			fmt.Fprint(w, `{"type":"GET_METRICS","get_metrics":{"metrics":[]}}`)
		default:
			fmt.Fprintf(w, `{"type":%q}`, call.Type)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := browser(t, chromium(t), 1280, 860)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	require.NoError(t, poll(ctx, fmt.Sprintf(`document.querySelector("#ov-active")?.textContent === %q`, commas(nTasks/2))))
	loaded := eval[float64](t, ctx, `performance.now()`)
	measure := func(what, js string) float64 {
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js, chromedp.EvalAwaitPromise))
		require.NoError(t, err, what)
		t.Logf("%-58s %8.1f ms", what, ms)
		return ms
	}
	t.Logf("%-58s %8.1f ms", "navigation to overview showing every task", loaded)
	for _, mark := range []string{"apron:subscribe-answered", "apron:subscribed-parsed", "apron:subscribed-applied"} {
		measure("  of which, since navigation: "+mark, fmt.Sprintf(`performance.getEntriesByName(%q)[0]?.startTime ?? -1`, mark))
	}
	measure("JS heap after loading (MB, not ms)", `performance.memory.usedJSHeapSize / 1e6`)
	measure("open the tasks page (filter + sort all tasks)", `(() => {
		history.replaceState(null, "", "#/tasks"); const t = performance.now();
		window.dispatchEvent(new HashChangeEvent("hashchange")); return performance.now() - t; })()`)
	require.NoError(t, poll(ctx, `document.querySelectorAll(".vt-row[data-task-id]").length > 10`))
	measure("rows in the DOM for the whole list (count, not ms)", `document.querySelectorAll(".vt-row").length`)
	measure("filter tasks by state", `(() => { const e = document.querySelector("#task-state"); e.value = "TASK_FAILED";
		const t = performance.now(); e.dispatchEvent(new Event("change")); return performance.now() - t; })()`)
	measure("search tasks by ID", `(() => { const e = document.querySelector("#task-q"); e.value = "task-0999";
		const t = performance.now(); e.dispatchEvent(new Event("input")); return performance.now() - t; })()`)
	measure("scroll the full list to the middle, to the next frame", `(async () => { const e = document.querySelector("#task-state"); e.value = "";
		e.dispatchEvent(new Event("change")); const q = document.querySelector("#task-q"); q.value = ""; q.dispatchEvent(new Event("input"));
		await new Promise(requestAnimationFrame);
		const s = document.querySelector(".vt-scroll"); const t = performance.now(); s.scrollTop = s.scrollHeight / 2;
		await new Promise(requestAnimationFrame); await new Promise(requestAnimationFrame);
		return performance.now() - t; })()`)
	measure("parse the SUBSCRIBED JSON alone (JSON.parse)", `fetch("api/v1", {method: "POST", body: '{"type":"SUBSCRIBE"}'}).then(async (r) => {
		const rd = r.body.getReader(); const { RecordIO } = await import("./ui/api.js"); const rio = new RecordIO();
		for (;;) { const { value } = await rd.read(); const recs = rio.push(value); if (recs.length) { rd.cancel();
			const t = performance.now(); JSON.parse(recs[0]); return performance.now() - t; } } })`)
	measure("apply 10,000 TASK_UPDATED events (store only)", `(() => { const st = window.apron.store; const keys = [...st.tasks.values()].slice(0, 10000);
		const t = performance.now();
		for (const k of keys) st.apply({type: "TASK_UPDATED", task_updated: {framework_id: {value: k.fw}, state: "TASK_FINISHED",
			status: {task_id: {value: k.id}, state: "TASK_FINISHED", timestamp: Date.now() / 1000}}});
		return performance.now() - t; })()`)
	measure("open the agents page (all agents, sorted)", `(() => {
		history.replaceState(null, "", "#/agents"); const t = performance.now();
		window.dispatchEvent(new HashChangeEvent("hashchange")); return performance.now() - t; })()`)
	require.NoError(t, poll(ctx, `document.querySelectorAll(".vt-row[data-agent-id]").length > 10`))
	measure("open the overview (every aggregate from the store)", `(() => {
		history.replaceState(null, "", "#/"); const t = performance.now();
		window.dispatchEvent(new HashChangeEvent("hashchange")); return performance.now() - t; })()`)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, name)
		return n
	}
	return def
}

// commas writes n as the page does (en-US grouping).
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// bigSubscribed is a SUBSCRIBED event, as JSON, with nAgents agents and
// nTasks tasks of 10 frameworks: half running, the rest finished or failed.
func bigSubscribed(nAgents, nTasks int) []byte {
	var b strings.Builder
	b.WriteString(`{"type":"SUBSCRIBED","subscribed":{"heartbeat_interval_seconds":15,"get_state":{"get_agents":{"agents":[`)
	for i := 0; i < nAgents; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"agent_info":{"hostname":"host-%05d","port":5051,"id":{"value":"S%d"},"attributes":[{"name":"rack","type":"TEXT","text":{"value":"r%d"}}]},"active":true,"version":"1.11.0","total_resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":16}},{"name":"mem","type":"SCALAR","scalar":{"value":65536}},{"name":"disk","type":"SCALAR","scalar":{"value":500000}}]}`, i, i, i%40)
	}
	b.WriteString(`]},"get_frameworks":{"frameworks":[`)
	for i := 0; i < 10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"framework_info":{"user":"root","name":"fw-%d","id":{"value":"F%d"},"roles":["r%d"]},"active":true,"connected":true,"recovered":false}`, i, i, i)
	}
	b.WriteString(`]},"get_tasks":{"tasks":[`)
	states := []string{"TASK_RUNNING", "TASK_FINISHED", "TASK_RUNNING", "TASK_FAILED"}
	for i := 0; i < nTasks; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"task-%06d","task_id":{"value":"task-%06d"},"framework_id":{"value":"F%d"},"agent_id":{"value":"S%d"},"state":%q,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"mem","type":"SCALAR","scalar":{"value":256}}],"statuses":[{"task_id":{"value":"task-%06d"},"state":%q,"timestamp":%d}]}`,
			i, i, i%10, i%nAgents, states[i%4], i, states[i%4], 1796000000+i%3600)
	}
	b.WriteString(`]}}}}`)
	return []byte(b.String())
}

// TestWebUIBasicAuth: with the master's HTTP endpoints behind HTTP Basic
// (both the read-only realm, which holds the page, and the read-write
// one, which holds the operator API), a person answers the browser's own
// prompt once, for the page, and the page's requests carry the
// credential: the event stream goes live. The test answers the prompt
// through the DevTools protocol (Fetch.authRequired), as a person would.
func TestWebUIBasicAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: starts Chromium; skipped with -short")
	}
	path := chromium(t)
	m, err := master.New(master.Config{
		Logger:                    slog.New(slog.DiscardHandler),
		Authenticator:             auth.NewBasic([]auth.Credential{{Principal: "ops", Secret: "s3cret"}}),
		AuthenticateHTTPReadOnly:  true,
		AuthenticateHTTPReadWrite: true,
	})
	require.NoError(t, err)
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(mctx) }()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	ctx := browser(t, path, 1024, 768)

	var prompts atomic.Int32
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	challenges := chromedp.Events(ctx, fetch.AuthRequired)
	answer := func(ev func(context.Context, *chromedp.Target) error) {
		_ = chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			return chromedp.Void{}, ev(ctx, tg)
		})
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			go answer(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				return err
			})
		}
	}()
	go func() {
		for ev, err := range challenges {
			if err != nil {
				return
			}
			prompts.Add(1)
			go answer(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
					AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "ops", Password: "s3cret"}})
				return err
			})
		}
	}()
	handle := true
	require.NoError(t, chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handle})
		return chromedp.Void{}, err
	}))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	require.NoError(t, poll(ctx, `document.querySelector("#conn").dataset.state === "live" && document.querySelector("#footer").textContent.includes("version")`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#/roles")))
	require.NoError(t, poll(ctx, `document.querySelector(".vt-empty")?.textContent === "No roles."`))
	assert.Equal(t, int32(1), prompts.Load(), "one prompt, for the page; the page's requests carry its credential")
}

// TestWebUIModules checks the UI's JavaScript modules in the browser, on
// their own: RecordIO framing across any split of the bytes, and the
// store's aggregates as events come.
func TestWebUIModules(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: starts Chromium; skipped with -short")
	}
	path := chromium(t)
	mux := http.NewServeMux()
	ui := webui.Handler()
	mux.Handle(webui.AssetPrefix, ui)
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><link rel="icon" href="data:,"><title>modules</title>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := browser(t, path, 800, 600)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/blank")))
	failures, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(async () => {
		const { RecordIO } = await import("/ui/api.js");
		const { Store } = await import("/ui/store.js");
		const bad = [];
		const check = (ok, what) => { if (!ok) bad.push(what); };

		// RecordIO: two records, one with multi-byte UTF-8, split at every byte and whole.
		const recs = ['{"type":"HEARTBEAT","x":"héllo ✓"}', "{}"];
		const bytes = new TextEncoder().encode(recs.map((r) => new TextEncoder().encode(r).length + "\n" + r).join(""));
		for (const size of [1, 2, 3, 7, bytes.length]) {
			const rio = new RecordIO();
			const got = [];
			for (let i = 0; i < bytes.length; i += size) got.push(...rio.push(bytes.slice(i, i + size)));
			check(JSON.stringify(got) === JSON.stringify(recs), "RecordIO in chunks of " + size + ": " + JSON.stringify(got));
		}
		let threw = false;
		try { new RecordIO().push(new TextEncoder().encode("x12\n{}")); } catch { threw = true; }
		check(threw, "RecordIO rejects a malformed length");

		// Store: aggregates follow the events.
		const s = new Store({ maxDone: 2 });
		const res = (cpus) => [{ name: "cpus", type: "SCALAR", scalar: { value: cpus } }, { name: "mem", type: "SCALAR", scalar: { value: 64 } }];
		const agent = { agent_info: { hostname: "h", id: { value: "A" } }, active: true, total_resources: res(4) };
		const fw = { framework_info: { name: "f", id: { value: "F" } }, active: true };
		s.apply({ type: "SUBSCRIBED", subscribed: { get_state: { get_agents: { agents: [agent] }, get_frameworks: { frameworks: [fw] } } } });
		check(s.total.cpus === 4 && s.agents.size === 1 && s.frameworks.size === 1, "SUBSCRIBED loads agents and frameworks");
		const task = (id, state, cpus) => ({ type: "TASK_ADDED", task_added: { task: { task_id: { value: id }, name: id, framework_id: { value: "F" }, agent_id: { value: "A" }, state, resources: res(cpus) } } });
		const update = (id, state) => ({ type: "TASK_UPDATED", task_updated: { framework_id: { value: "F" }, state, status: { task_id: { value: id }, state, timestamp: 1 } } });
		s.apply(task("t1", "TASK_RUNNING", 1));
		s.apply(task("t2", "TASK_STAGING", 2));
		check(s.used.cpus === 3 && s.agents.get("A").used.cpus === 3 && s.frameworks.get("F").tasks === 2, "tasks hold resources: " + s.used.cpus);
		check(s.byState.get("TASK_RUNNING") === 1 && s.byState.get("TASK_STAGING") === 1 && s.launched === 2, "tasks by state");
		s.apply(update("t1", "TASK_FINISHED"));
		s.apply(update("t2", "TASK_FAILED"));
		check(s.used.cpus === 0 && s.agents.get("A").tasks === 0, "ended tasks free their resources: " + s.used.cpus);
		check(s.ended === 2 && s.failed === 1 && s.byState.get("TASK_RUNNING") === 0 && s.byState.get("TASK_FAILED") === 1, "ended and failed counted");
		s.apply(update("t2", "TASK_FAILED"));
		check(s.ended === 2, "a repeated terminal update counts once");
		s.apply(task("t3", "TASK_RUNNING", 1));
		s.apply(update("t3", "TASK_KILLED"));
		check(s.tasks.size === 2 && !s.tasks.has("F\u0000t1") && s.byState.get("TASK_FINISHED") === 0, "the oldest ended task goes beyond maxDone");
		s.apply(update("t9", "TASK_RUNNING"));
		check(s.tasks.get("F\u0000t9")?.state === "TASK_RUNNING", "an update for an unknown task adds it");
		s.apply({ type: "FRAMEWORK_REMOVED", framework_removed: { framework_info: fw.framework_info } });
		s.apply({ type: "AGENT_REMOVED", agent_removed: { agent_id: { value: "A" } } });
		check(s.frameworks.size === 0 && s.doneFrameworks.size === 1 && s.total.cpus === 0, "removals");
		return bad;
	})()`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Empty(t, failures)
}
