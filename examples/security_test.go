package examples

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

// TestSecuredCluster runs the binaries with authentication and ACLs on, as
// README's "Security" section shows: a master with -credentials, -acls
// and every -authenticate-* switch; an agent with its -credential; and
// the batch framework. An agent without a credential is never admitted;
// a framework without one, or with a principal the ACLs do not allow to
// register or to run tasks as root, gets nothing launched; the operator
// API refuses changes without a credential or permission.
func TestSecuredCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	me, err := user.Current()
	require.NoError(t, err)
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	creds := write("credentials.json", `{"credentials": [
		{"principal": "agent", "secret": "agent-secret"},
		{"principal": "batch", "secret": "batch-secret"},
		{"principal": "ops", "secret": "ops-secret"},
		{"principal": "guest", "secret": "guest-secret"}]}`)
	acls := write("acls.json", fmt.Sprintf(`{"permissive": false,
		"register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}],
		"register_frameworks": [{"principals": {"values": ["batch"]}, "roles": {"values": ["*", "batch"]}}],
		"run_tasks": [{"principals": {"values": ["batch"]}, "users": {"values": [%q]}}],
		"update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
		"view_roles": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
		"view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
		"view_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
		"view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]}`, me.Username))
	agentCred := write("agent.cred", "agent agent-secret\n")
	batchCred := write("batch.cred", `{"principal": "batch", "secret": "batch-secret"}`)
	guestCred := write("guest.cred", "guest guest-secret\n")
	wrongCred := write("wrong.cred", "batch not-the-secret\n")

	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms",
			"-credentials", creds, "-acls", acls, "-authenticate-frameworks", "-authenticate-agents",
			"-authenticate-http-readwrite", "-log-level", "info")
	})
	agentArgs := func(name string) []string {
		return []string{"-master", master.Addr, "-work-dir", filepath.Join(dir, name), "-hostname", name,
			"-resources", "cpus:2;mem:1024;disk:1000;ports:[31000-32000]", "-log-level", "info"}
	}
	proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["agent"], append(agentArgs("agent"), "-listen", addr, "-credential", agentCred)...)
	})
	require.Eventually(t, func() bool { return agentsRegistered(master.Addr) == 1 }, wait, 50*time.Millisecond,
		"the agent with a credential registers")

	t.Run("AgentWithoutCredential", func(t *testing.T) {
		intruder := proctest.StartServer(t, "intruder", "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(bin["agent"], append(agentArgs("intruder"), "-listen", addr)...)
		})
		intruder.WaitFor(t, regexp.MustCompile(`401|[Uu]nauthori[sz]ed`), wait)
		assert.Equal(t, 1, agentsRegistered(master.Addr), "the agent without a credential is not admitted")
	})

	batch := func(name string, args ...string) *proctest.Proc {
		return proctest.Start(t, name, exec.Command(bin["batch"], append([]string{"-master", master.Addr, "-tasks", "2",
			"-cmd", "echo ok", "-cpus", "0.1", "-mem", "16", "-name", name, "-journal-dir", t.TempDir(), "-timeout", "60s"}, args...)...))
	}
	t.Run("FrameworkWithCredential", func(t *testing.T) {
		p := batch("allowed", "-credential", batchCred)
		require.Equal(t, 0, p.Wait(t, wait), p.Output())
		assert.Contains(t, p.Output(), "2 tasks: 2 finished, 0 failed for good")
	})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{name: "NoCredential", want: "401"},
		{name: "WrongSecret", args: []string{"-credential", wrongCred}, want: "401"},
		{name: "PrincipalNotAllowedToRegister", args: []string{"-credential", guestCred}, want: "REGISTER_FRAMEWORK"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := batch(strings.ToLower(c.name), c.args...)
			assert.NotEqual(t, 0, p.Wait(t, wait), "the framework is refused")
			assert.Contains(t, p.Output(), c.want)
			assert.NotContains(t, p.Output(), "finished on")
		})
	}
	if me.Username != "root" {
		t.Run("RunAsRoot", func(t *testing.T) {
			p := batch("as-root", "-credential", batchCred, "-user", "root", "-max-attempts", "1")
			p.Wait(t, wait)
			assert.Contains(t, p.Output(), "not authorized to launch")
			assert.NotContains(t, p.Output(), "finished on")
		})
	} else {
		t.Run("RunAsAnotherUser", func(t *testing.T) {
			p := batch("as-nobody", "-credential", batchCred, "-user", "nobody", "-max-attempts", "1")
			p.Wait(t, wait)
			assert.Contains(t, p.Output(), "not authorized to launch")
			assert.NotContains(t, p.Output(), "finished on")
		})
	}

	t.Run("OperatorAPI", func(t *testing.T) {
		update := func(principal, secret string) int {
			req, err := http.NewRequest(http.MethodPost, "http://"+master.Addr+"/api/v1",
				strings.NewReader(`{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"batch","weight":3}]}}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if principal != "" {
				req.SetBasicAuth(principal, secret)
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		assert.Equal(t, http.StatusUnauthorized, update("", ""))
		assert.Equal(t, http.StatusUnauthorized, update("ops", "nope"))
		assert.Equal(t, http.StatusForbidden, update("guest", "guest-secret"))
		assert.Equal(t, http.StatusOK, update("ops", "ops-secret"))
	})
}
