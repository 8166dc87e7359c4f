package agent_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/master"
)

// Master failover with several candidates: the agent registers with the
// first master; when it dies, the link core's next dial re-registers, with
// the agent's ID, at the next candidate (HTTPMaster tries the master it
// last reached, then the others in order), which takes the agent back.
func TestHTTPMasterFailsOverToAnotherCandidate(t *testing.T) {
	first := runHTTPMaster(t, master.Config{})
	firstRegs := &registrations{h: first.Handler()}
	firstSrv := httptest.NewServer(firstRegs)
	t.Cleanup(firstSrv.Close)
	second := runHTTPMaster(t, master.Config{})
	secondRegs := &registrations{h: second.Handler()}
	secondSrv := httptest.NewServer(secondRegs)
	t.Cleanup(secondSrv.Close)

	link, err := agent.NewHTTPMaster([]string{firstSrv.URL, secondSrv.URL})
	require.NoError(t, err)
	a := runHTTPAgent(t, link)
	require.Eventually(t, func() bool { return a.ID() != "" && agentActive(t, first, a.ID()) }, httpWait, 5*time.Millisecond)
	id := a.ID()
	assert.Equal(t, int32(1), firstRegs.register.Load())
	assert.Zero(t, secondRegs.register.Load()+secondRegs.reregist.Load())

	// The first master dies with its connections.
	firstSrv.CloseClientConnections()
	firstSrv.Close()
	require.Eventually(t, func() bool { return agentActive(t, second, id) }, httpWait, 5*time.Millisecond,
		"the agent re-registers at the other candidate")
	assert.Equal(t, id, a.ID(), "with the ID it had")
	assert.Zero(t, secondRegs.register.Load(), "REREGISTER, not REGISTER")
	assert.GreaterOrEqual(t, secondRegs.reregist.Load(), int32(1))
}
