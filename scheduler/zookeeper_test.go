package scheduler_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/scheduler"
)

// A driver finds a master through a real ZooKeeper, where the master
// campaigns with its MasterInfo as JSON, as Mesos's masters do. Skipped
// where java or the ZooKeeper jar is missing (see internal/zktest).
func TestDriverFindsMasterThroughZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server; skipped with -short")
	}
	srv := zktest.Start(t)
	u, err := zookeeper.ParseURL("zk://" + srv.Addr + "/apron/scheduler-test")
	require.NoError(t, err)
	opts := zookeeper.Options{
		SessionTimeout: 2 * time.Second,
		Validate: func(data []byte) error {
			_, err := codec.ParseMasterInfo(data)
			return err
		},
	}

	m := runHAMaster(t)
	m.lead.set(true, "")
	c, err := zookeeper.NewContender(u, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, m.payload)

	det, err := zookeeper.NewDetector(u, opts)
	require.NoError(t, err)
	// Closed after the driver has stopped (cleanups run last first).
	t.Cleanup(func() { _ = det.Close() })
	ev := newEvents()
	d, done := runDriver(t, ev, frameworkInfo("zk"), scheduler.WithMasterDetector(det))
	assert.Contains(t, receive(t, ev.registered, "Registered"), "registered ")
	assert.Equal(t, []string{d.FrameworkID().Value}, frameworks(t, m.m))
	require.NoError(t, d.Stop(false))
	require.NoError(t, receive(t, done, "Run to return"))
}
