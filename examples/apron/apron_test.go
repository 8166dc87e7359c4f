package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// wait bounds the waits of these tests: generous, since the machines are
// shared and noisy; no test asserts a duration.
const wait = 30 * time.Second

func ptr[T any](v T) *T { return &v }

// testCluster is a master serving HTTP on loopback, agents serving their
// HTTP API on loopback (the master forwards files requests to them, and
// task kill calls them), and a framework that ran one task.
type testCluster struct {
	m      *master.Master
	url    string
	agents []*agent.Agent
	fw     *greeter
	task   string
	goFile string // the task writes its second line once this exists
}

// greeter launches one command task on its first offer and declines the
// rest.
type greeter struct {
	scheduler.Base
	cmd      string
	mu       sync.Mutex
	launched bool
	agent    string
	id       chan mesospb.FrameworkID
	updates  chan mesospb.TaskStatus
}

func (g *greeter) Registered(_ context.Context, _ *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	g.id <- id
}

func (g *greeter) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	g.mu.Lock()
	launch := !g.launched
	g.launched = true
	g.mu.Unlock()
	var decline []mesospb.OfferID
	for i, o := range offers {
		if i == 0 && launch {
			g.mu.Lock()
			g.agent = o.AgentID.Value
			g.mu.Unlock()
			_ = d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{{
				Name: "greeter", TaskID: mesospb.TaskID{Value: "greeter"}, AgentID: o.AgentID,
				Resources: []mesospb.Resource{
					{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
					{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 64}},
				},
				Command: &mesospb.CommandInfo{Value: ptr(g.cmd)},
			}}, nil)
			continue
		}
		decline = append(decline, o.ID)
	}
	if len(decline) > 0 {
		_ = d.DeclineOffer(ctx, decline, &mesospb.Filters{RefuseSeconds: ptr(3600.0)})
	}
}

func (g *greeter) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	select {
	case g.updates <- st:
	default:
	}
}

// startCluster starts a master with two agents and the greeter, and
// waits for its task to run.
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	m, err := master.New(master.Config{AllocationInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	srv := httptest.NewServer(m.Handler())
	c := &testCluster{m: m, url: srv.URL, task: "greeter"}

	dir := t.TempDir()
	var agentSrvs []*http.Server
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		a, err := agent.New(agent.Config{
			Master:    m,
			WorkDir:   filepath.Join(dir, fmt.Sprintf("agent-%d", i)),
			Resources: "cpus:2;mem:1024;disk:1000;ports:[31000-31100]",
			Hostname:  "127.0.0.1",
			IP:        "127.0.0.1",
			Port:      ln.Addr().(*net.TCPAddr).Port,
			Endpoint:  ln.Addr().String(),
		})
		require.NoError(t, err)
		hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: wait}
		agentSrvs = append(agentSrvs, hs)
		go func() { _ = hs.Serve(ln) }()
		c.agents = append(c.agents, a)
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		for _, a := range c.agents {
			_ = a.Shutdown(sctx)
		}
		cancel()
		wg.Wait()
		for _, hs := range agentSrvs {
			_ = hs.Close()
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	require.Eventually(t, func() bool {
		for _, a := range c.agents {
			if a.ID() == "" {
				return false
			}
		}
		return true
	}, wait, 10*time.Millisecond, "agents register")

	c.goFile = filepath.Join(t.TempDir(), "go")
	u, err := user.Current()
	require.NoError(t, err)
	c.fw = &greeter{
		cmd: fmt.Sprintf(`printf 'hello from the greeter \377\n'; while [ ! -e %s ]; do sleep 0.02; done; echo second line; exec sleep 600`, c.goFile),
		id:  make(chan mesospb.FrameworkID, 4), updates: make(chan mesospb.TaskStatus, 64),
	}
	d, err := scheduler.NewDriver(c.fw, mesospb.FrameworkInfo{User: u.Username, Name: "greeter", Roles: []string{"web"},
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}},
		scheduler.WithMaster(m))
	require.NoError(t, err)
	dctx, dcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(dctx) }()
	t.Cleanup(func() { _ = d.Abort(); dcancel(); <-done })
	select {
	case <-c.fw.id:
	case <-time.After(wait):
		t.Fatal("the framework did not register")
	}
	for {
		select {
		case st := <-c.fw.updates:
			if st.State == nil || *st.State == mesospb.TASK_STAGING || *st.State == mesospb.TASK_STARTING {
				continue
			}
			require.Equal(t, mesospb.TASK_RUNNING, st.GetState(), st.GetMessage())
			return c
		case <-time.After(wait):
			t.Fatal("the task did not start")
		}
	}
}

// apron runs the tool in-process and returns its exit status and output.
func apron(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	code = run(ctx, args, env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" },
		sleep: func(ctx context.Context, d time.Duration) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
				return nil
			}
		}})
	return code, out.String(), errOut.String()
}

// ok runs the tool and requires exit status 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := apron(t, args...)
	require.Equal(t, exitOK, code, "apron %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out
}

func decode(t *testing.T, text string) []map[string]any {
	t.Helper()
	var v []map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &v), text)
	return v
}

func TestCommandsOnACluster(t *testing.T) {
	c := startCluster(t)
	m := "-master=" + c.url
	agentIDs := []string{c.agents[0].ID(), c.agents[1].ID()}
	c.fw.mu.Lock()
	taskAgent := c.fw.agent
	c.fw.mu.Unlock()
	other := agentIDs[0]
	if other == taskAgent {
		other = agentIDs[1]
	}

	t.Run("agents", func(t *testing.T) {
		out := ok(t, m, "agents")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3, out)
		assert.Regexp(t, `^ID\s+HOSTNAME\s+STATE\s+CPUS\s+MEM\s+DISK$`, lines[0])
		assert.Contains(t, out, taskAgent)
		assert.Regexp(t, taskAgent+`\s+127\.0\.0\.1:\d+\s+active\s+0\.5/2\s+64/1024\s+0/1000`, out)
		js := decode(t, ok(t, "agents", m, "-json"))
		require.Len(t, js, 2)
		assert.Contains(t, agentIDs, js[0]["agent_info"].(map[string]any)["id"].(map[string]any)["value"])
	})

	t.Run("frameworks", func(t *testing.T) {
		out := ok(t, m, "frameworks")
		assert.Regexp(t, `(?m)^\S+\s+greeter\s+web\s+active\s+0\.5\s+64$`, out)
		js := decode(t, ok(t, m, "-json", "frameworks"))
		require.Len(t, js, 1)
		assert.Equal(t, "greeter", js[0]["framework_info"].(map[string]any)["name"])
	})

	t.Run("tasks", func(t *testing.T) {
		out := ok(t, m, "tasks")
		assert.Regexp(t, `(?m)^greeter\s+greeter\s+TASK_RUNNING\s+\S+\s+`+taskAgent+`\s+0\.5\s+64$`, out)
		js := decode(t, ok(t, m, "tasks", "-json", "-state", "running"))
		require.Len(t, js, 1)
		assert.Equal(t, "TASK_RUNNING", js[0]["state"])
		assert.Empty(t, decode(t, ok(t, m, "tasks", "-json", "-state", "finished,failed")))
		assert.Empty(t, decode(t, ok(t, m, "tasks", "-json", "-agent", other)))
		code, _, errOut := apron(t, m, "tasks", "-state", "sleepy")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, `unknown task state "TASK_SLEEPY"`)
	})

	t.Run("task log", func(t *testing.T) {
		// RUNNING comes when the task has started, maybe before it wrote.
		require.Eventually(t, func() bool { return ok(t, m, "task", "log", "greeter") != "" }, wait, 10*time.Millisecond)
		assert.Equal(t, "hello from the greeter \xff\n", ok(t, m, "task", "log", "greeter"))
		assert.Equal(t, "r \xff\n", ok(t, m, "task", "log", "-tail", "4", "greeter"), "not UTF-8: the bytes as written")
		ok(t, m, "task", "log", "-stderr", "greeter") // there, maybe empty
	})

	t.Run("task log -f", func(t *testing.T) {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		printed := make(chan struct{}, 1000)
		done := make(chan int, 1)
		w := &notifyWriter{w: &out, ch: printed}
		go func() {
			done <- run(ctx, []string{m, "task", "log", "-f", "-interval=10ms", "greeter"}, env{stdout: w, stderr: &errOut})
		}()
		waitFor(t, w, "hello from the greeter \xff\n")
		require.NoError(t, os.WriteFile(c.goFile, nil, 0o644))
		waitFor(t, w, "hello from the greeter \xff\nsecond line\n")
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, exitOK, code, errOut.String())
		case <-time.After(wait):
			t.Fatal("task log -f did not end when interrupted")
		}
	})

	t.Run("quota and weights", func(t *testing.T) {
		assert.Equal(t, "quota of web: guarantees cpus:1;mem:256, limits cpus:1;mem:256\n", ok(t, m, "quota", "set", "web", "cpus:1;mem:256"))
		ok(t, m, "quota", "set", "batch", "cpus:2", "-guarantee", "cpus:1")
		out := ok(t, m, "quota", "get")
		assert.Regexp(t, `(?m)^batch\s+cpus:1\s+cpus:2$`, out)
		assert.Regexp(t, `(?m)^web\s+cpus:1;mem:256\s+cpus:1;mem:256$`, out)
		js := decode(t, ok(t, m, "-json", "quota", "get", "web"))
		require.Len(t, js, 1)
		assert.Equal(t, map[string]any{"value": 256.0}, js[0]["limits"].(map[string]any)["mem"])
		ok(t, m, "quota", "remove", "batch")
		assert.NotContains(t, ok(t, m, "quota", "get"), "batch")

		assert.Equal(t, "weights set: web=2.5 batch=0.5\n", ok(t, m, "weights", "set", "web=2.5", "batch=0.5"))
		assert.Regexp(t, `(?m)^web\s+2\.5$`, ok(t, m, "weights"))
		js = decode(t, ok(t, m, "weights", "-json"))
		assert.Contains(t, js, map[string]any{"role": "batch", "weight": 0.5})
		code, _, _ := apron(t, m, "weights", "set", "web=-1")
		assert.Equal(t, exitUsage, code)

		out = ok(t, m, "roles")
		assert.Regexp(t, `(?m)^web\s+2\.5\s+1\s+0\.5\s+64\s+cpus:1;mem:256$`, out)
		js = decode(t, ok(t, m, "roles", "-json"))
		var names []any
		for _, r := range js {
			names = append(names, r["name"])
		}
		assert.Contains(t, names, "web")
	})

	t.Run("reserve", func(t *testing.T) {
		assert.Equal(t, fmt.Sprintf("reserved on %s: cpus(web):0.5;mem(web):32\n", other), ok(t, m, "reserve", other, "cpus:0.5;mem:32", "-role", "web"))
		js := decode(t, ok(t, m, "-json", "agents"))
		var reserved float64
		for _, ag := range js {
			for _, r := range ag["total_resources"].([]any) {
				res := r.(map[string]any)
				if res["name"] == "cpus" && res["reservations"] != nil {
					reserved += res["scalar"].(map[string]any)["value"].(float64)
				}
			}
		}
		assert.Equal(t, 0.5, reserved)
		ok(t, m, "unreserve", other, "cpus(web):0.5;mem(web):32")
		code, _, errOut := apron(t, m, "reserve", other, "cpus:1")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, "names no role")
		code, _, errOut = apron(t, m, "reserve", "no-such-agent", "cpus(web):1")
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, `unknown agent "no-such-agent"`)
	})

	t.Run("maintenance", func(t *testing.T) {
		ok(t, m, "maintenance", "schedule", "add", "-start", "+1h", "-duration", "30m", "127.0.0.1/127.0.0.1")
		out := ok(t, m, "maintenance", "schedule")
		assert.Regexp(t, `(?m)^\S+Z\s+30m0s\s+127\.0\.0\.1/127\.0\.0\.1$`, out)
		out = ok(t, m, "maintenance", "status")
		assert.Regexp(t, `(?m)^127\.0\.0\.1/127\.0\.0\.1\s+draining`, out)
		ok(t, m, "maintenance", "schedule", "clear")
		assert.Equal(t, "START  DURATION  MACHINES\n", ok(t, m, "maintenance", "schedule"))
	})

	t.Run("drain", func(t *testing.T) {
		assert.Equal(t, fmt.Sprintf("draining %s (127.0.0.1)\n", other), ok(t, m, "drain", other))
		out := ok(t, m, "agents")
		assert.Regexp(t, other+`\s+\S+\s+(draining|drained)\s`, out)
	})

	t.Run("state", func(t *testing.T) {
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(ok(t, m, "state")), &st))
		assert.Contains(t, st, "get_tasks")
		assert.Contains(t, st, "get_agents")
	})

	t.Run("task kill", func(t *testing.T) {
		// A follower ends by itself once the task has ended.
		w := &notifyWriter{w: &bytes.Buffer{}, ch: make(chan struct{}, 1000)}
		var errOut bytes.Buffer
		followed := make(chan int, 1)
		go func() {
			followed <- run(context.Background(), []string{m, "task", "log", "-f", "-interval=10ms", "greeter"}, env{stdout: w, stderr: &errOut})
		}()
		waitFor(t, w, "hello from the greeter \xff\nsecond line\n")

		out := ok(t, m, "task", "kill", "-interval=10ms", "greeter")
		assert.Regexp(t, `^task greeter: TASK_(KILLED|FAILED)\n$`, out)
		js := decode(t, ok(t, m, "-json", "tasks", "-all"))
		require.Len(t, js, 1)
		assert.Contains(t, []any{"TASK_KILLED", "TASK_FAILED"}, js[0]["state"])
		select {
		case code := <-followed:
			assert.Equal(t, exitOK, code, errOut.String())
		case <-time.After(wait):
			t.Fatal("task log -f did not end when the task did")
		}
		code, _, stderr := apron(t, m, "task", "kill", "greeter")
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, stderr, "has already ended")
	})

	t.Run("unknown task", func(t *testing.T) {
		code, _, errOut := apron(t, m, "task", "log", "nope")
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, `unknown task "nope"`)
	})

	t.Run("redirect to the leader", func(t *testing.T) {
		standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "//"+strings.TrimPrefix(c.url, "http://")+r.URL.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
		}))
		defer standby.Close()
		assert.Contains(t, ok(t, "-master="+standby.URL, "tasks", "-all"), "greeter")
	})

	t.Run("a list of masters, the first down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		down := ln.Addr().String()
		require.NoError(t, ln.Close())
		assert.Contains(t, ok(t, "-master="+down+","+strings.TrimPrefix(c.url, "http://"), "tasks", "-all"), "greeter")
	})
}

// notifyWriter signals each write, so a test waits for output without
// polling a buffer that another goroutine writes.
type notifyWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
	ch chan struct{}
}

func (n *notifyWriter) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k, err := n.w.Write(p)
	select {
	case n.ch <- struct{}{}:
	default:
	}
	return k, err
}

func (n *notifyWriter) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.w.String()
}

func waitFor(t *testing.T, n *notifyWriter, want string) {
	t.Helper()
	deadline := time.After(wait)
	for n.String() != want {
		select {
		case <-n.ch:
		case <-deadline:
			t.Fatalf("output %q, want %q", n.String(), want)
		}
	}
}

func TestExitStatuses(t *testing.T) {
	t.Run("bad flag", func(t *testing.T) {
		code, _, errOut := apron(t, "-no-such-flag", "agents")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, "no-such-flag")
		code, _, _ = apron(t, "agents", "-no-such-flag")
		assert.Equal(t, exitUsage, code)
		code, _, errOut = apron(t, "frobnicate")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, `unknown command "frobnicate"`)
		code, _, _ = apron(t)
		assert.Equal(t, exitUsage, code)
		code, _, _ = apron(t, "quota", "set", "web")
		assert.Equal(t, exitUsage, code)
		code, _, _ = apron(t, "-master=zk://", "agents")
		assert.Equal(t, exitUsage, code)
	})

	t.Run("help", func(t *testing.T) {
		code, out, _ := apron(t, "help")
		assert.Equal(t, exitOK, code)
		assert.Contains(t, out, "exit status: 0 done; 1 a call failed")
		assert.Contains(t, out, "task log")
	})

	t.Run("master down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		code, out, errOut := apron(t, "-master="+addr, "agents")
		assert.Equal(t, exitFailed, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "no master answered")
		assert.Contains(t, errOut, "connection refused")
	})

	t.Run("wrong credential", func(t *testing.T) {
		m, err := master.New(master.Config{
			Authenticator:             auth.NewBasic([]auth.Credential{{Principal: "ops", Secret: "s3cret"}}),
			AuthenticateHTTPReadOnly:  true,
			AuthenticateHTTPReadWrite: true,
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		srv := httptest.NewServer(m.Handler())
		defer func() { srv.Close(); cancel(); <-done }()
		dir := t.TempDir()
		wrong, right := filepath.Join(dir, "wrong"), filepath.Join(dir, "right")
		require.NoError(t, os.WriteFile(wrong, []byte("ops guess\n"), 0o600))
		require.NoError(t, os.WriteFile(right, []byte(`{"principal":"ops","secret":"s3cret"}`), 0o600))

		code, _, errOut := apron(t, "-master="+srv.URL, "-credential="+wrong, "agents")
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, "401 Unauthorized")
		code, _, errOut = apron(t, "-master="+srv.URL, "weights", "set", "web=2")
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, "401")
		assert.Equal(t, "ID  HOSTNAME  STATE  CPUS  MEM  DISK\n", ok(t, "-master="+srv.URL, "-credential="+right, "agents"))
		ok(t, "-master="+srv.URL, "weights", "set", "-credential="+right, "web=2")
		assert.Regexp(t, `(?m)^web\s+2$`, ok(t, "-master="+srv.URL, "-credential="+right, "weights"))
	})
}

// -master zk://... calls the master the ZooKeeper election names.
func TestZooKeeperMaster(t *testing.T) {
	zks := zktest.Start(t) // skips when ZooKeeper is missing
	m, err := master.New(master.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	srv := httptest.NewServer(m.Handler())
	defer func() { srv.Close(); cancel(); <-done }()

	port := srv.Listener.Addr().(*net.TCPAddr).Port
	u, err := zookeeper.ParseURL("zk://" + zks.Addr + "/apron")
	require.NoError(t, err)
	con, err := zookeeper.NewContender(u, zookeeper.Options{})
	require.NoError(t, err)
	defer con.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), wait)
	defer ccancel()
	_, err = con.Campaign(cctx, []byte(fmt.Sprintf(`{"id":"m1","ip":16777343,"port":%d,"address":{"ip":"127.0.0.1","port":%d}}`, port, port)))
	require.NoError(t, err)

	ok(t, "-master=zk://"+zks.Addr+"/apron", "weights", "set", "zk=3")
	assert.Regexp(t, `(?m)^zk\s+3$`, ok(t, "-master=zk://"+zks.Addr+"/apron", "weights"))
}

// With -tls-ca, host:port is https, and the master's certificate is
// checked against the CA.
func TestTLS(t *testing.T) {
	m, err := master.New(master.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	srv := httptest.NewUnstartedServer(m.Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer func() { srv.Close(); cancel(); <-done }()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	addr := srv.Listener.Addr().String()

	assert.Equal(t, "ID  HOSTNAME  STATE  CPUS  MEM  DISK\n", ok(t, "-master="+addr, "-tls-ca="+ca, "agents"))
	code, _, errOut := apron(t, "-master=https://"+addr, "agents")
	assert.Equal(t, exitFailed, code, "a certificate no CA given signed")
	assert.Contains(t, errOut, "certificate")
}
