package master

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's IP in Offer.url comes from the address its connection came
// from, which the HTTP handler puts in the call's context.
func TestAgentIPFromItsConnection(t *testing.T) {
	ctx := context.Background()
	assert.Equal(t, "10.0.0.7", peerIP(withPeerAddr(ctx, "10.0.0.7:40000")))
	assert.Equal(t, "::1", peerIP(withPeerAddr(ctx, "[::1]:40000")))
	assert.Equal(t, "10.0.0.8", peerIP(withPeerAddr(ctx, "[::ffff:10.0.0.8]:40000")), "IPv4-mapped")
	assert.Equal(t, "", peerIP(withPeerAddr(ctx, "pipe")))
	assert.Equal(t, "", peerIP(ctx))

	cfg, err := Config{Rand: rand.New(rand.NewPCG(1, 2))}.withDefaults()
	require.NoError(t, err)
	c := newCore(cfg, time.Unix(1_700_000_000, 0))
	call := &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{
		AgentInfo: mesospb.AgentInfo{Hostname: "agent.example", Port: ptr(int32(5051))},
	}}
	stream, err := c.connectAgentFrom(call, "10.0.0.7")
	require.NoError(t, err)
	a := c.agents[c.streams[stream].peer]
	require.NotNil(t, a)
	u := offerURL(a)
	assert.Equal(t, "10.0.0.7", u.Address.GetIP())
	assert.Equal(t, "agent.example", u.Address.GetHostname())
	assert.Equal(t, int32(5051), u.Address.Port)
}

// MasterInfo.ip is in_addr.s_addr as Mesos stores it: the address's bytes
// in network order, read as a little-endian integer.
func TestIPv4Uint32(t *testing.T) {
	assert.Equal(t, uint32(16777343), ipv4Uint32(netip.MustParseAddr("127.0.0.1")))
	assert.Equal(t, uint32(0x0302010a), ipv4Uint32(netip.MustParseAddr("10.1.2.3")))
	assert.Equal(t, uint32(0x0302010a), ipv4Uint32(netip.MustParseAddr("::ffff:10.1.2.3")))
	assert.Zero(t, ipv4Uint32(netip.MustParseAddr("::1")))
}
