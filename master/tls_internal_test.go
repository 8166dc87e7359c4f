package master

import (
	"crypto/tls"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// With Config.AgentTLS, the agents serve HTTPS: Offer.url says https.
func TestOfferURLHTTPS(t *testing.T) {
	for _, tc := range []struct {
		tls  *tls.Config
		want string
	}{{nil, "http"}, {&tls.Config{}, "https"}} {
		cfg, err := Config{Rand: rand.New(rand.NewPCG(1, 2)), AgentTLS: tc.tls}.withDefaults()
		require.NoError(t, err)
		c := newCore(cfg, time.Unix(1_700_000_000, 0))
		call := &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{
			AgentInfo: mesospb.AgentInfo{Hostname: "agent.example", Port: ptr(int32(5051))},
		}}
		stream, err := c.connectAgentFrom(call, "10.0.0.7")
		require.NoError(t, err)
		a := c.agents[c.streams[stream].peer]
		require.NotNil(t, a)
		assert.Equal(t, tc.want, offerURL(a).Scheme)
	}
}
