package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/scheduler"
)

func TestParseMastersURLs(t *testing.T) {
	m, err := cli.ParseMasters(" 127.0.0.1:5050, http://127.0.0.1:5051 ,,https://localhost:5052/mesos ", nil)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, []string{"127.0.0.1:5050", "http://127.0.0.1:5051", "https://localhost:5052/mesos"}, m.URLs)
	assert.Nil(t, m.Detector)
	assert.Equal(t, "127.0.0.1:5050,http://127.0.0.1:5051,https://localhost:5052/mesos", m.String())
	_, err = scheduler.NewDriver(scheduler.Base{}, mesospb.FrameworkInfo{User: "u", Name: "n"}, m.SchedulerOption())
	assert.NoError(t, err)
	_, err = m.AgentLink()
	assert.NoError(t, err)
	assert.NoError(t, m.Close())
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A zk:// value gives a ZooKeeper detector; an unreachable ZooKeeper is
// no error: the binary waits for a leader, saying so.
func TestParseMastersZooKeeper(t *testing.T) {
	a, b := closedPort(t), closedPort(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := cli.ParseMasters("zk://jane:s3cret@"+a+","+b+"/apron/masters", log)
	require.NoError(t, err)
	defer m.Close()
	require.IsType(t, &zookeeper.Detector{}, m.Detector)
	assert.Empty(t, m.URLs)
	assert.Equal(t, "zk://jane:***@"+a+","+b+"/apron/masters", m.String(), "the password is masked")
	assert.False(t, m.Detector.Leader().Known())

	_, err = scheduler.NewDriver(scheduler.Base{}, mesospb.FrameworkInfo{User: "u", Name: "n"}, m.SchedulerOption())
	assert.NoError(t, err)
	_, err = m.AgentLink()
	assert.NoError(t, err)

	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("waiting for a leading master")) },
		10*time.Second, 5*time.Millisecond)
	assert.NotContains(t, logs.String(), "s3cret")
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "twice")
}

func TestParseMastersRejects(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "-master is empty",
		" , ":                               "names no master",
		"zk://":                             "no servers",
		"zk://127.0.0.1/apron":              "want host:port",
		"zk://127.0.0.1:99999/apron":        "bad port",
		"zk://jane@127.0.0.1:2181/apron":    "credentials must be user:password",
		"zk://127.0.0.1:2181/a//b":          "empty, . or ..",
		"127.0.0.1:5050,zk://h:2181/apron":  "must be the whole value",
		"ftp://127.0.0.1:21":                "must be the whole value",
		"http://":                           "bad master URL",
		"http://127.0.0.1:5050/?leader=yes": "bad master URL",
	} {
		_, err := cli.ParseMasters(in, nil)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), want, in)
		}
	}
}

// Against a real ZooKeeper: the detector finds a master campaigning with
// its MasterInfo and skips a znode that is not one. Skipped where java or
// the ZooKeeper jar is missing (see internal/zktest), and with -short.
func TestParseMastersFindsLeaderInZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server; skipped with -short")
	}
	srv := zktest.Start(t)
	u, err := zookeeper.ParseURL("zk://" + srv.Addr + "/apron/cli-test")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Garbage first: it has the lowest sequence but is no MasterInfo.
	garbage, err := zookeeper.NewContender(u, zookeeper.Options{})
	require.NoError(t, err)
	defer garbage.Close()
	_, err = garbage.Campaign(ctx, []byte("not a master"))
	require.NoError(t, err)
	port := uint32(5050)
	info := mesospb.MasterInfo{ID: "m1", Port: &port, Address: &mesospb.Address{IP: ptr("127.0.0.1"), Port: 5050}}
	payload, err := codec.MarshalJSON(&info)
	require.NoError(t, err)
	valid := func(data []byte) error { _, err := codec.ParseMasterInfo(data); return err }
	c, err := zookeeper.NewContender(u, zookeeper.Options{Validate: valid})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Campaign(ctx, payload)
	require.NoError(t, err)

	var logs syncBuffer
	m, err := cli.ParseMasters(u.String(), slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer m.Close()
	l, err := m.Detector.Detect(ctx, election.Leader{})
	require.NoError(t, err)
	assert.Equal(t, payload, l.Payload)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `msg="leading master detected" master=http://127.0.0.1:5050`)
	}, 30*time.Second, 5*time.Millisecond, "%s", &logs)
}

func ptr[T any](v T) *T { return &v }
