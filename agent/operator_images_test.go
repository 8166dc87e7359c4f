package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/containerizer"
)

// pruner is a containerizer with an image store, as far as PRUNE_IMAGES
// sees it.
type pruner struct {
	containerizer.Containerizer
	mu       sync.Mutex
	excluded [][]string
}

func (p *pruner) PruneImages(_ context.Context, excluded []string) ([]string, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.excluded = append(p.excluded, excluded)
	return []string{"index.docker.io/library/old:1"}, 2, nil
}

func operatorCall(t *testing.T, a *agent.Agent, body string) httpAnswer {
	t.Helper()
	require.Eventually(t, func() bool { _, err := a.State(context.Background()); return err == nil }, waitFor, tick, "the agent runs")
	req := httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	return httpAnswer{rec.Code, rec.Body.String()}
}

func TestPruneImages(t *testing.T) {
	p := &pruner{Containerizer: containerizer.NewNoop(containerizer.NoopOptions{})}
	h := newHarness(t, func(c *agent.Config) { c.Containerizer = p })

	got := operatorCall(t, h.a, `{"type":"PRUNE_IMAGES","prune_images":{"excluded_images":[{"type":"DOCKER","docker":{"name":"busybox:1.36"}}]}}`)
	assert.Equal(t, http.StatusOK, got.code, got.body)
	assert.Empty(t, got.body, "Mesos answers 200 OK with no body")
	got = operatorCall(t, h.a, `{"type":"PRUNE_IMAGES"}`)
	assert.Equal(t, http.StatusOK, got.code, got.body)
	p.mu.Lock()
	assert.Equal(t, [][]string{{"busybox:1.36"}, nil}, p.excluded)
	p.mu.Unlock()

	got = operatorCall(t, h.a, `{"type":"PRUNE_IMAGES","prune_images":{"excluded_images":[{"type":"APPC","appc":{"name":"x"}}]}}`)
	assert.Equal(t, http.StatusBadRequest, got.code, got.body)
	assert.Contains(t, got.body, "excluded_images[0]")
}

// A containerizer without images has nothing to prune.
func TestPruneImagesWithoutStore(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.Containerizer = containerizer.NewNoop(containerizer.NoopOptions{}) })
	got := operatorCall(t, h.a, `{"type":"PRUNE_IMAGES"}`)
	require.Equal(t, http.StatusOK, got.code, got.body)
}
