package scheduler_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// flip is a master's Leadership the test sets.
type flip struct {
	mu      sync.Mutex
	leading bool
	leader  string
}

func (f *flip) Leader() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading, f.leader
}

func (f *flip) set(leading bool, leader string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leading, f.leader = leading, leader
}

// haMaster is a master served over HTTP on 127.0.0.1, advertising that
// address in its MasterInfo, with a Leadership the test flips.
type haMaster struct {
	m       *master.Master
	stop    func()
	srv     *httptest.Server
	lead    *flip
	payload []byte // MasterInfo as JSON, what it campaigns with
}

func runHAMaster(t *testing.T) *haMaster {
	t.Helper()
	h := &swappable{}
	srv := httptest.NewUnstartedServer(h)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	lead := &flip{}
	m, stop := runMaster(t, master.Config{Hostname: "127.0.0.1", IP: "127.0.0.1", Port: uint32(p), Leadership: lead})
	h.set(m.Handler())
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	info := m.Info()
	payload, err := codec.MarshalJSON(&info)
	require.NoError(t, err)
	url, err := codec.MasterURL(&info)
	require.NoError(t, err)
	require.Equal(t, srv.URL, url, "the master advertises where it is served")
	return &haMaster{m: m, stop: stop, srv: srv, lead: lead, payload: payload}
}

func campaign(t *testing.T, c election.Contender, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	_, err := c.Campaign(ctx, payload)
	require.NoError(t, err)
}

func frameworks(t *testing.T, m *master.Master) []string {
	t.Helper()
	st, err := m.State(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, f := range st.GetFrameworks.Frameworks {
		if f.FrameworkInfo.ID != nil {
			ids = append(ids, f.FrameworkInfo.ID.Value)
		}
	}
	return ids
}

// A driver and an agent that find the master through a detector follow
// the leadership from one master to another: the framework subscribes to
// the new leader with its FrameworkID and gets the agent's resources there.
// With the old master kept running (it only stops leading, and keeps its
// streams open), it is the detector that moves them; with the old master
// stopped, its streams end and nobody leads for a while.
func TestDriverFollowsDetectedLeader(t *testing.T) {
	for _, stopOld := range []bool{false, true} {
		name := "old master standing by"
		if stopOld {
			name = "old master stopped"
		}
		t.Run(name, func(t *testing.T) {
			a, b := runHAMaster(t), runHAMaster(t)
			g := memory.NewGroup()
			det := g.NewDetector()
			t.Cleanup(func() { _ = det.Close() })
			ca, cb := g.NewContender(), g.NewContender()
			t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
			a.lead.set(true, "")
			b.lead.set(false, a.srv.URL)
			campaign(t, ca, a.payload)

			runAgent(t, []agent.HTTPOption{agent.WithMasterDetector(det)})
			ev := newEvents()
			d, _ := runDriver(t, ev, frameworkInfo("ha"), scheduler.WithMasterDetector(det))
			require.Contains(t, receive(t, ev.registered, "Registered"), "registered ")
			id := d.FrameworkID().Value
			receive(t, ev.offers, "offers from the first master")
			assert.Equal(t, []string{id}, frameworks(t, a.m))
			assert.Empty(t, frameworks(t, b.m))

			// b leads now.
			if stopOld {
				a.stop()
				a.srv.CloseClientConnections()
			}
			a.lead.set(false, b.srv.URL)
			require.NoError(t, ca.Resign(context.Background()))
			b.lead.set(true, "")
			campaign(t, cb, b.payload)

			receive(t, ev.disconnected, "Disconnected")
			assert.Equal(t, "reregistered "+id, receive(t, ev.registered, "Reregistered"))
			assert.Equal(t, []string{id}, frameworks(t, b.m), "the same framework on the new leader")
			var offers []mesospb.Offer
			for { // skip the first master's (offer IDs start with the master's ID)
				offers = receive(t, ev.offers, "offers from the new leader")
				if strings.HasPrefix(offers[0].ID.Value, b.m.Info().ID+"-") {
					break
				}
			}
			require.NoError(t, d.LaunchTasks(context.Background(), []mesospb.OfferID{offers[0].ID},
				[]mesospb.TaskInfo{trueTask(offers[0], "t1")}, nil))
			waitState(t, ev, "t1", mesospb.TASK_FINISHED)
		})
	}
}

// A driver whose detector knows no leader keeps trying, without giving up,
// and subscribes once one leads.
func TestDriverWaitsForDetectedLeader(t *testing.T) {
	m := runHAMaster(t)
	m.lead.set(true, "")
	g := memory.NewGroup()
	det := g.NewDetector()
	t.Cleanup(func() { _ = det.Close() })
	logs := &logBuffer{}
	ev := newEvents()
	d, done := runDriver(t, ev, frameworkInfo("patient"), scheduler.WithMasterDetector(det),
		scheduler.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.Eventually(t, func() bool { return strings.Count(logs.String(), "no leading master is detected") >= 3 },
		httpWait, 5*time.Millisecond, "the driver retries")
	select {
	case err := <-done:
		t.Fatalf("Run returned without a leader: %v", err)
	default:
	}
	assert.False(t, d.Connected())
	c := g.NewContender()
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, m.payload)
	assert.Contains(t, receive(t, ev.registered, "Registered"), "registered ")
}

// logBuffer is a log sink the driver's goroutines may write to.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWithMasterDetectorOptions(t *testing.T) {
	ev := newEvents()
	_, err := scheduler.NewDriver(ev, frameworkInfo("x"), scheduler.WithMasterDetector(nil))
	assert.ErrorIs(t, err, scheduler.ErrInvalid, "a nil detector and no URL")
	g := memory.NewGroup()
	det := g.NewDetector()
	defer det.Close()
	// Static URLs combine with a detector, in either order.
	_, err = scheduler.NewDriver(ev, frameworkInfo("x"), scheduler.WithMasterURL("127.0.0.1:5050"), scheduler.WithMasterDetector(det))
	assert.NoError(t, err)
	_, err = scheduler.NewDriver(ev, frameworkInfo("x"), scheduler.WithMasterDetector(det), scheduler.WithMasterURL("http://%zz"))
	assert.ErrorIs(t, err, scheduler.ErrInvalid, "the static URLs still count")
}

// A driver waiting out its backoff (an hour here, on a clock that never
// moves) subscribes at once when a new leader is detected, as Mesos's
// drivers do on a detection: the backoff grew against no master at all.
func TestDriverSubscribesAtOnceToANewLeader(t *testing.T) {
	m := runHAMaster(t)
	m.lead.set(true, "")
	g := memory.NewGroup()
	det := g.NewDetector()
	t.Cleanup(func() { _ = det.Close() })
	logs := &logBuffer{}
	ev := newEvents()
	runDriver(t, ev, frameworkInfo("prompt"), scheduler.WithMasterDetector(det),
		scheduler.WithClock(clock.NewFake(time.Unix(1e9, 0))), scheduler.WithBackoff(time.Hour, time.Hour),
		scheduler.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "re-subscribing after backoff") },
		httpWait, 5*time.Millisecond, "the driver failed once and waits")
	c := g.NewContender()
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, m.payload)
	assert.Contains(t, receive(t, ev.registered, "Registered"), "registered ")
}
