package master_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/master"
)

// A master forwarding a sandbox read to an agent that authenticates its
// read-only endpoints presents Config.AgentCredential; without it the
// agent's 401 comes back.
func TestFilesMasterCredentialToAgent(t *testing.T) {
	cred := auth.Credential{Principal: "master", Secret: "s3cret"}
	for _, tc := range []struct {
		name string
		cred *auth.Credential
		want int
	}{{"with", &cred, http.StatusOK}, {"without", nil, http.StatusUnauthorized}} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHTTPMaster(t, master.Config{AgentCredential: tc.cred})
			dir := t.TempDir()
			a, err := agent.New(agent.Config{Master: h.m, WorkDir: dir, Resources: "cpus:1;mem:64;disk:64", Hostname: "127.0.0.1",
				Authenticator: auth.NewBasic([]auth.Credential{cred}), AuthenticateHTTPReadOnly: true})
			require.NoError(t, err)
			srv := httptest.NewServer(a.Handler())
			t.Cleanup(srv.Close)
			id := registerFilesAgent(t, h.m, srv.Listener.Addr().(*net.TCPAddr).Port)
			sandbox := filepath.Join(dir, "agents", id, "frameworks", "fw-1", "executors", "ex-1", "runs", "run-1")
			require.NoError(t, os.MkdirAll(sandbox, 0o750))
			require.NoError(t, os.WriteFile(filepath.Join(sandbox, "stdout"), []byte("task output\n"), 0o640))
			require.NoError(t, a.AttachFile(sandbox, sandbox))
			resp, text := h.get(filesQuery("/files/read", "path", sandbox+"/stdout", "offset", "0"))
			assert.Equal(t, tc.want, resp.StatusCode, text)
		})
	}
}
