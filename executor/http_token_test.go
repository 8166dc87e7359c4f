package executor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The link sends the token the agent gave the executor
// (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) with every call, and none when
// there is none.
func TestHTTPAgentSendsToken(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	call := &executorpb.Call{Type: executorpb.Call_HEARTBEAT.Enum(), FrameworkID: mesospb.FrameworkID{Value: "f"}, ExecutorID: mesospb.ExecutorID{Value: "e"}}
	for _, token := range []string{"a.b.c", ""} {
		env := map[string]string{AuthenticationTokenEnv: token}
		link, err := HTTPAgentFromEnv(srv.URL, func(k string) string { return env[k] })
		require.NoError(t, err)
		require.NoError(t, link.ExecutorCall(context.Background(), "", call))
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"Bearer a.b.c", ""}, seen)
}
