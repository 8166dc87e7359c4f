package codec_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// A znode's data as a Mesos 1.11 master writes it (JSON::protobuf of its
// MasterInfo): ip is 127.0.0.1 in network order read little-endian.
const mesosZnode = `{"address":{"hostname":"localhost","ip":"127.0.0.1","port":5050},"capabilities":[{"type":"AGENT_UPDATE"},{"type":"AGENT_DRAINING"},{"type":"QUOTA_V2"}],"hostname":"localhost","id":"8a1f8e3c-2b7e-4d0b-9a52-6c1e2f0b7f11","ip":16777343,"pid":"master@127.0.0.1:5050","port":5050,"version":"1.11.0"}`

func TestParseMasterInfo(t *testing.T) {
	info, err := codec.ParseMasterInfo([]byte(mesosZnode))
	require.NoError(t, err)
	require.Equal(t, "8a1f8e3c-2b7e-4d0b-9a52-6c1e2f0b7f11", info.ID)
	u, err := codec.MasterURL(info)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:5050", u)

	// Round trip: what an Apron master writes reads back the same.
	data, err := codec.MarshalJSON(info)
	require.NoError(t, err)
	again, err := codec.ParseMasterInfo(data)
	require.NoError(t, err)
	require.Equal(t, info, again)
}

func TestMasterURLFallbacks(t *testing.T) {
	port := uint32(5051)
	host := "m1.example"
	for name, tc := range map[string]struct {
		info mesospb.MasterInfo
		want string
	}{
		"deprecated ip":   {mesospb.MasterInfo{ID: "a", IP: 0x0100000a, Port: &port}, "http://10.0.0.1:5051"},
		"hostname":        {mesospb.MasterInfo{ID: "a", Port: &port, Hostname: &host}, "http://m1.example:5051"},
		"address port":    {mesospb.MasterInfo{ID: "a", Port: &port, Address: &mesospb.Address{Hostname: &host, Port: 6000}}, "http://m1.example:6000"},
		"ipv6 address ip": {mesospb.MasterInfo{ID: "a", Port: &port, Address: &mesospb.Address{IP: strp("::1"), Port: 6000}}, "http://[::1]:6000"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := codec.MasterURL(&tc.info)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseMasterInfoRefusesWhatIsNotOne(t *testing.T) {
	for name, data := range map[string]string{
		"empty":      ``,
		"garbage":    `not json`,
		"other app":  `{"leader":"x"}`,
		"no address": `{"id":"a","ip":0,"port":5050}`,
		"no port":    `{"id":"a","ip":16777343,"port":0}`,
		"bad host":   `{"id":"a","ip":0,"port":5050,"hostname":"evil/x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := codec.ParseMasterInfo([]byte(data))
			require.Error(t, err)
			require.True(t, errors.Is(err, codec.ErrInvalid) || errors.Is(err, codec.ErrNoMasterAddress), "%v", err)
		})
	}
}

func strp(s string) *string { return &s }
