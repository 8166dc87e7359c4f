package master

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/internal/httpapi"
)

type filesRoundTrip func(*http.Request) (*http.Response, error)

func (f filesRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An agent that does not answer in time is 504, one that cannot be
// reached 503: for a forwarded request and a forwarded operator call.
func TestFilesProxyTimeoutAndRefusal(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
		{syscall.ECONNREFUSED, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		m := &Master{}
		m.files.client = &http.Client{Transport: filesRoundTrip(func(*http.Request) (*http.Response, error) { return nil, c.err })}
		w := httptest.NewRecorder()
		m.forwardFiles(w, httptest.NewRequest(http.MethodGet, "/files/read?path=/a&agent_id=x", nil), "http://127.0.0.1:5051")
		assert.Equal(t, c.want, w.Code, c.err)

		_, err := m.forwardFilesCall(context.Background(), "http://127.0.0.1:5051",
			&masterpb.Call{Type: masterpb.Call_READ_FILE.Enum(), ReadFile: &masterpb.Call_ReadFile{Path: "/a"}})
		var he *httpapi.Error
		if assert.True(t, errors.As(err, &he), err) {
			assert.Equal(t, c.want, he.Status, err)
		}
	}
}

func TestFilesAgentIDsInPath(t *testing.T) {
	assert.Equal(t, []string{"a-1"}, agentIDsInPath("/var/lib/apron/agents/a-1/frameworks/f/executors/e/runs/r/stdout"))
	assert.Equal(t, []string{"S0"}, agentIDsInPath("/var/lib/mesos/slaves/S0/frameworks/f"))
	assert.Equal(t, []string{"a%2Fb", "a/b"}, agentIDsInPath("/w/agents/a%2Fb/x"))
	assert.Empty(t, agentIDsInPath("/frameworks/f/executors/e/runs/latest/stdout"))
	assert.Empty(t, agentIDsInPath("/w/agents/"))
}
