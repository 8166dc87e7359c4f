package fetch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/fetch"
)

// The zero Fetcher fetches into a sandbox it creates; the sentinel errors
// say why a fetch failed. (The agent's tests cover the rest of the
// fetcher through the agent.)
func TestZeroFetcher(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/file.txt" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("content\n"))
	}))
	t.Cleanup(srv.Close)
	var f fetch.Fetcher
	sandbox := filepath.Join(t.TempDir(), "new", "sandbox")
	require.NoError(t, f.Fetch(context.Background(), sandbox, "", []mesospb.CommandInfo_URI{{Value: srv.URL + "/file.txt"}}))
	b, err := os.ReadFile(filepath.Join(sandbox, "file.txt"))
	require.NoError(t, err)
	assert.Equal(t, "content\n", string(b))

	err = f.Fetch(context.Background(), sandbox, "", []mesospb.CommandInfo_URI{{Value: srv.URL + "/missing"}})
	require.ErrorIs(t, err, fetch.ErrHTTP)
	err = f.Fetch(context.Background(), sandbox, "", []mesospb.CommandInfo_URI{{Value: "s3://bucket/key"}})
	require.ErrorIs(t, err, fetch.ErrUnsupported)
	err = f.Fetch(context.Background(), sandbox, "", []mesospb.CommandInfo_URI{{Value: srv.URL + "/file.txt", OutputFile: new("../out")}})
	require.ErrorIs(t, err, fetch.ErrBadOutput)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = f.Fetch(ctx, sandbox, "", []mesospb.CommandInfo_URI{{Value: srv.URL + "/file.txt"}})
	require.ErrorIs(t, err, context.Canceled)
}

func TestMakeSandboxMakesEveryLevelOnce(t *testing.T) {
	root := t.TempDir()
	sandbox := filepath.Join(root, "executors", "e1", "runs", "c1")
	require.NoError(t, fetch.MakeSandbox(sandbox, ""))
	assert.DirExists(t, sandbox)
	// Again, and a sibling under parents that exist: both fine.
	require.NoError(t, fetch.MakeSandbox(sandbox, ""))
	require.NoError(t, fetch.MakeSandbox(filepath.Join(root, "executors", "e1", "runs", "c2"), ""))
	// A file in the way is an error, not a sandbox.
	blocker := filepath.Join(root, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	require.Error(t, fetch.MakeSandbox(blocker, ""))
	require.Error(t, fetch.MakeSandbox(filepath.Join(blocker, "runs", "c"), ""))
}
