package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/httplink"
	"github.com/apronhq/apron/scheduler"
)

// MasterFlagHelp is the help text of the binaries' -master flag.
const MasterFlagHelp = "the master: its `host:port` or URL, several comma-separated (candidates of which one leads), " +
	"or zk://[user:pass@]host:port[,host:port...]/path to follow the leader the masters elect in ZooKeeper, as Mesos's --master=zk://"

// Masters is what a -master flag names: static master URLs, or a
// ZooKeeper election whose leader a Detector follows. Build it with
// ParseMasters; Close it after the agent or driver using it has stopped.
type Masters struct {
	// URLs are the static candidates; empty with a detector.
	URLs []string
	// Detector follows the elected master (zk://); nil for static URLs.
	Detector election.Detector

	desc   string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// ParseMasters reads a -master value: "host:port" or "http(s)://..." items,
// comma-separated, or a single zk:// URL. A zk:// URL starts a detector
// on that election at once, in the background, with payloads checked as
// MasterInfo JSON: a ZooKeeper that cannot be reached is no error here;
// the detector keeps retrying (log says why) and the agent or driver waits
// for a leader, retrying with backoff, as Mesos's do. Every change of
// leader is logged. A malformed value is an error that says what is wrong.
func ParseMasters(value string, log *slog.Logger) (*Masters, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("-master is empty: want host:port, URLs or zk://host:port/path")
	}
	if strings.HasPrefix(value, "zk://") {
		u, err := zookeeper.ParseURL(value)
		if err != nil {
			return nil, fmt.Errorf("-master: %w", err)
		}
		d, err := zookeeper.NewDetector(u, zookeeper.Options{
			Validate: func(data []byte) error {
				_, err := codec.ParseMasterInfo(data)
				return err
			},
			Logger: log.With("component", "detector"),
		})
		if err != nil {
			return nil, fmt.Errorf("-master: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &Masters{Detector: d, desc: u.String(), cancel: cancel, done: make(chan struct{})}
		go m.logLeaders(ctx, log)
		return m, nil
	}
	urls := SplitList(value)
	for _, raw := range urls {
		if strings.Contains(raw, "://") && !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
			return nil, fmt.Errorf("-master %q: a zk:// URL must be the whole value; other items must be host:port or http(s) URLs", raw)
		}
		if _, err := httplink.Endpoint(raw, ""); err != nil {
			return nil, fmt.Errorf("-master: %w", err)
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("-master %q names no master", value)
	}
	return &Masters{URLs: urls, desc: strings.Join(urls, ",")}, nil
}

// logLeaders tells the operator who leads, and that the binary waits
// while nobody does.
func (m *Masters) logLeaders(ctx context.Context, log *slog.Logger) {
	defer close(m.done)
	log.Info("waiting for a leading master", "zk", m.desc)
	var last election.Leader
	for {
		l, err := m.Detector.Detect(ctx, last)
		if err != nil {
			return
		}
		last = l
		if !l.Known() {
			log.Warn("no leading master detected; waiting", "zk", m.desc)
			continue
		}
		url, err := httplink.DefaultLeaderURL(l.Payload)
		if err != nil {
			log.Warn("the leader's MasterInfo names no master; waiting", "zk", m.desc, "leader", l.ID, "err", err)
			continue
		}
		log.Info("leading master detected", "master", url, "leader", l.ID)
	}
}

// String describes the masters for messages (a password is masked).
func (m *Masters) String() string { return m.desc }

// SchedulerOption connects a scheduler driver to the masters.
func (m *Masters) SchedulerOption() scheduler.Option {
	if m.Detector != nil {
		return scheduler.WithMasterDetector(m.Detector)
	}
	return scheduler.WithMasterURL(m.URLs...)
}

// AgentLink returns the agent's link to the masters.
func (m *Masters) AgentLink(opts ...agent.HTTPOption) (*agent.HTTPMaster, error) {
	if m.Detector != nil {
		opts = append(opts, agent.WithMasterDetector(m.Detector))
	}
	return agent.NewHTTPMaster(m.URLs, opts...)
}

// Close stops the detector, if any; call it once the agent or driver
// has stopped.
func (m *Masters) Close() error {
	var err error
	m.once.Do(func() {
		if m.Detector == nil {
			return
		}
		m.cancel()
		err = m.Detector.Close()
		<-m.done
	})
	return err
}
