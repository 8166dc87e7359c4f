package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/sim"
)

func TestThousandAgentsHundredFrameworks(t *testing.T) {
	res, err := sim.Run(sim.Config{
		Agents:            1000,
		AgentResources:    "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
		Frameworks:        100,
		Shapes:            []string{"cpus:1;mem:1024", "cpus:0.5;mem:4096", "cpus:2;mem:512"},
		TasksPerFramework: 20,
		TaskDuration:      30 * time.Second,
		TaskJitter:        10 * time.Second,
		Duration:          10 * time.Minute,
		Seed:              7,
	})
	require.NoError(t, err)
	assert.Equal(t, 100*20, res.Launched)
	assert.Equal(t, res.Launched, res.Finished, "every launched task finished")
	assert.Zero(t, res.LiveTasks, "and the master forgot each once acknowledged")
	t.Logf("launched %d tasks in %v simulated (%d steps, %d offers); offer->running p50 %v p99 %v",
		res.Launched, res.SimulatedTime, res.Steps, res.OffersMade,
		res.OfferToRunning[len(res.OfferToRunning)/2], res.OfferToRunning[len(res.OfferToRunning)*99/100])
}
