package agent_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

func TestDetectedResources(t *testing.T) {
	a, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir()})
	require.NoError(t, err)
	rs, err := resources.FromProto(a.Info().Resources)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rs.CPUs(), 1.0)
	assert.Greater(t, rs.Mem(), 0.0)
	assert.Greater(t, rs.Disk(), 0.0)
	assert.Equal(t, resources.RangesOf(resources.Range{Begin: 31000, End: 32000}), rs.Ports())

	// What the text names is taken; the rest is detected.
	b, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "cpus:3;gpus:1"})
	require.NoError(t, err)
	rs, err = resources.FromProto(b.Info().Resources)
	require.NoError(t, err)
	assert.Equal(t, 3.0, rs.CPUs())
	assert.Equal(t, 1.0, rs.GPUs())
	assert.Greater(t, rs.Mem(), 0.0)

	// The JSON form works too.
	c, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(),
		Resources: `[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},{"name":"mem","type":"SCALAR","scalar":{"value":512}}]`})
	require.NoError(t, err)
	rs, err = resources.FromProto(c.Info().Resources)
	require.NoError(t, err)
	assert.Equal(t, 4.0, rs.CPUs())
	assert.Equal(t, 512.0, rs.Mem())
}

func TestBadConfig(t *testing.T) {
	for name, cfg := range map[string]agent.Config{
		"no master":       {WorkDir: t.TempDir()},
		"no work dir":     {Master: &fakeMaster{}},
		"bad resources":   {Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "cpus:lots"},
		"bad ranges":      {Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "ports:[5-1]"},
		"attribute pair":  {Master: &fakeMaster{}, WorkDir: t.TempDir(), Attributes: "rack"},
		"attribute set":   {Master: &fakeMaster{}, WorkDir: t.TempDir(), Attributes: "zones:{a,b}"},
		"attribute range": {Master: &fakeMaster{}, WorkDir: t.TempDir(), Attributes: "slots:[4-1]"},
		"negative period": {Master: &fakeMaster{}, WorkDir: t.TempDir(), ExecutorShutdownGracePeriod: -1},
	} {
		_, err := agent.New(cfg)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, name)
	}
	_, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "cpus:lots"})
	assert.ErrorContains(t, err, "cpus")
	_, err = agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), Attributes: "rack:r1;zone"})
	assert.ErrorContains(t, err, "zone")
}

func TestParseAttributes(t *testing.T) {
	attrs, err := agent.ParseAttributes("rack:r1; level:3.5\nslots:[1-4,8-9];empty-ish:a-b ;")
	require.NoError(t, err)
	require.Len(t, attrs, 4)
	assert.Equal(t, mesospb.Attribute{Name: "rack", Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: "r1"}}, attrs[0])
	assert.Equal(t, mesospb.Attribute{Name: "level", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 3.5}}, attrs[1])
	assert.Equal(t, mesospb.Value_RANGES, attrs[2].Type)
	assert.Equal(t, []mesospb.Value_Range{{Begin: 1, End: 4}, {Begin: 8, End: 9}}, attrs[2].Ranges.Range)
	assert.Equal(t, "a-b", attrs[3].Text.Value)

	none, err := agent.ParseAttributes("")
	require.NoError(t, err)
	assert.Empty(t, none)
}
