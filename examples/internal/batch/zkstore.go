package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/clock"
)

// Znodes of a job's state under the election's path (see the package
// documentation, "High availability").
const (
	// FrameworkZnode holds the job's JobState, as JSON.
	FrameworkZnode = "framework"
	// JournalZnode's children, journal-NNNNNNNNNN, are the journal's
	// records in order, one per Write.
	JournalZnode  = "journal"
	journalPrefix = "journal-"
)

// MaxZKJournalRecords bounds a job's journal in ZooKeeper: a znode's
// children are listed in one response, which the server limits to
// jute.maxbuffer (1 MB by default), about 20 bytes a child. A job's
// journal has about two records per task attempt, so MaxZKTasks is what
// RunHA accepts.
const (
	MaxZKJournalRecords = 45000
	MaxZKTasks          = 15000
)

// JobState is what the leader of a highly available job keeps in
// ZooKeeper besides the journal: the framework it runs as, which job that
// is, and whether it is over.
type JobState struct {
	// FrameworkID is the framework the master registered for the job.
	FrameworkID string `json:"framework_id"`
	// Job is JobFingerprint of the job's tasks: an instance started with
	// other job flags on the same path refuses to take the job over.
	Job   string `json:"job"`
	Tasks int    `json:"tasks"`
	// Done is set once every task has finished or failed for good,
	// before the framework is torn down; Succeeded says which.
	Done      bool      `json:"done,omitempty"`
	Succeeded bool      `json:"succeeded,omitempty"`
	Updated   time.Time `json:"updated"`
}

// zkStore reads and writes a job's state in ZooKeeper, on a connection of
// its own (the contender's is not exposed). Its znodes are persistent: they
// outlive the instances. Every operation retries while ZooKeeper cannot be
// reached, until its context is done.
type zkStore struct {
	url   zookeeper.URL
	conn  *zk.Conn
	clock clock.Clock
	out   io.Writer

	mu        sync.Mutex
	lastWarn  time.Time
	connected chan struct{} // closed at the first session
	once      sync.Once
}

// dialStore connects in the background; unreachable servers are retried
// (go-zookeeper's loop), and reported on out at most every 10 s.
func dialStore(u zookeeper.URL, sessionTimeout time.Duration, c clock.Clock, out io.Writer) (*zkStore, error) {
	s := &zkStore{url: u, clock: c, out: out, connected: make(chan struct{})}
	conn, _, err := zk.Connect(u.Servers, sessionTimeout, zk.WithLogger(s), zk.WithEventCallback(func(ev zk.Event) {
		if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
			s.once.Do(func() { close(s.connected) })
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("zookeeper %s: %w", u, err)
	}
	s.conn = conn
	return s, nil
}

// Printf is go-zookeeper's logger: connection failures go to the user
// (rate-limited), the rest is dropped.
func (s *zkStore) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, "failed to connect") {
		return
	}
	s.mu.Lock()
	now := s.clock.Now()
	warn := s.lastWarn.IsZero() || now.Sub(s.lastWarn) >= 10*time.Second
	if warn {
		s.lastWarn = now
	}
	s.mu.Unlock()
	if warn {
		fmt.Fprintf(s.out, "cannot reach ZooKeeper at %s (%s); retrying\n", s.url, msg)
	}
}

func (s *zkStore) close() { s.conn.Close() }

// waitConnected blocks until the first session is established, and
// authenticates it (go-zookeeper sends the credentials again on every
// new connection).
func (s *zkStore) waitConnected(ctx context.Context) error {
	select {
	case <-s.connected:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.url.User == "" {
		return nil
	}
	return s.retry(ctx, func() error { return s.conn.AddAuth("digest", []byte(s.url.User+":"+s.url.Password)) })
}

func (s *zkStore) acl() []zk.ACL {
	if s.url.User != "" {
		return []zk.ACL{{Perms: zk.PermRead, Scheme: "world", ID: "anyone"}, {Perms: zk.PermAll, Scheme: "auth", ID: ""}}
	}
	return zk.WorldACL(zk.PermAll)
}

func (s *zkStore) child(name string) string {
	if s.url.Path == "/" {
		return "/" + name
	}
	return s.url.Path + "/" + name
}

// retry runs op until it succeeds, fails for a reason reconnecting does
// not cure, or ctx is done.
//
// go-zookeeper's calls do not take a context, and one can block for a
// few seconds while the client reconnects: op runs on a goroutine of its
// own, so that a leader whose term ended (ctx) does not wait for it.
func (s *zkStore) retry(ctx context.Context, op func() error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := make(chan error, 1)
		go func() { res <- op() }()
		var err error
		select {
		case err = <-res:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err == nil || !transientZK(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		t := s.clock.NewTimer(200 * time.Millisecond)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
	}
}

func transientZK(err error) bool {
	return errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}

// ensure creates path and its parents, persistent, when missing.
func (s *zkStore) ensure(ctx context.Context, path string) error {
	return s.retry(ctx, func() error {
		p := ""
		for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
			p += "/" + part
			if _, err := s.conn.Create(p, nil, 0, s.acl()); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
		}
		return nil
	})
}

// load reads the job's state: the zero JobState and version -1 when no
// leader has registered a framework yet.
func (s *zkStore) load(ctx context.Context) (JobState, int32, error) {
	var st JobState
	var version int32 = -1
	err := s.retry(ctx, func() error {
		data, stat, err := s.conn.Get(s.child(FrameworkZnode))
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("znode %s: %w", s.child(FrameworkZnode), err)
		}
		version = stat.Version
		return nil
	})
	if err != nil {
		return JobState{}, -1, err // op may still run: leave st alone
	}
	return st, version, nil
}

// save writes the job's state: creates it when version is -1, else
// replaces the version read (zk.ErrBadVersion, zk.ErrNodeExists: someone
// else wrote it meanwhile). It returns the new version.
func (s *zkStore) save(ctx context.Context, st JobState, version int32) (int32, error) {
	st.Updated = s.clock.Now().UTC()
	data, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	var next int32
	err = s.retry(ctx, func() error {
		if version == -1 {
			_, err := s.conn.Create(s.child(FrameworkZnode), data, 0, s.acl())
			next = 0
			return err
		}
		stat, err := s.conn.Set(s.child(FrameworkZnode), data, version)
		if err == nil {
			next = stat.Version
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// journalRecords returns the journal's children in order.
func (s *zkStore) journalRecords(ctx context.Context) ([]string, error) {
	var names []string
	err := s.retry(ctx, func() error {
		children, _, err := s.conn.Children(s.child(JournalZnode))
		if errors.Is(err, zk.ErrNoNode) {
			names = nil
			return nil
		}
		names = children
		return err
	})
	if err != nil {
		return nil, err
	}
	var recs []string
	for _, n := range names {
		if strings.HasPrefix(n, journalPrefix) {
			recs = append(recs, n)
		}
	}
	// The sequence numbers are fixed-width: name order is write order.
	sort.Strings(recs)
	return recs, nil
}

// readJournal returns the journal's content, its records concatenated in
// the order they were written.
func (s *zkStore) readJournal(ctx context.Context) ([]byte, int, error) {
	names, err := s.journalRecords(ctx)
	if err != nil {
		return nil, 0, err
	}
	// go-zookeeper pipelines concurrent requests on its connection.
	datas := make([][]byte, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.retry(ctx, func() error {
				data, _, err := s.conn.Get(s.child(JournalZnode) + "/" + n)
				if errors.Is(err, zk.ErrNoNode) {
					return nil // deleted by a leader cleaning up after the job
				}
				datas[i] = data
				return err
			})
		}()
	}
	wg.Wait()
	var buf []byte
	for i := range names {
		if errs[i] != nil {
			return nil, 0, errs[i]
		}
		buf = append(buf, datas[i]...)
		if len(datas[i]) > 0 && datas[i][len(datas[i])-1] != '\n' {
			buf = append(buf, '\n')
		}
	}
	return buf, len(names), nil
}

// clearJournal deletes the journal's records, once the job is over.
func (s *zkStore) clearJournal(ctx context.Context) error {
	names, err := s.journalRecords(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		err := s.retry(ctx, func() error { return s.conn.Delete(s.child(JournalZnode)+"/"+n, -1) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return nil
}

// zkJournal is the journal of one term (Framework.SetJournal): each Write
// is a sequential znode. A Write returns only once ZooKeeper has the
// record, the term is over, or ZooKeeper refused it: the Framework writes
// a record before the update it records is acknowledged, and an update
// whose record could not be written must not be acknowledged. Once the
// term is over the driver's context is cancelled too (and fail cancels
// it on a refusal), so the acknowledgement is not sent and the agent
// sends the update again to the next leader.
//
// A retried create may have succeeded the first time (the connection
// dropped before the answer): the record is then there twice in a row,
// which replay tolerates (a repeated launch or end changes nothing).
type zkJournal struct {
	s   *zkStore
	ctx context.Context
	// fail, when set, is called with a record's error before Write
	// returns it: it stops the driver, so that the update is not
	// acknowledged.
	fail func(error)
}

func (j zkJournal) Write(p []byte) (int, error) {
	rec := append([]byte(nil), p...)
	err := j.s.retry(j.ctx, func() error {
		_, err := j.s.conn.Create(j.s.child(JournalZnode)+"/"+journalPrefix, rec, zk.FlagSequence, j.s.acl())
		return err
	})
	if err != nil {
		err = fmt.Errorf("journal in ZooKeeper: %w", err)
		if j.fail != nil {
			j.fail(err)
		}
		return 0, err
	}
	return len(p), nil
}

// members returns the election's json.info_ znodes' data, lowest sequence
// first.
func (s *zkStore) members() ([][]byte, error) {
	children, _, err := s.conn.Children(s.url.Path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range children {
		if strings.HasPrefix(c, zookeeper.Label+"_") {
			names = append(names, c)
		}
	}
	sort.Strings(names)
	var out [][]byte
	for _, n := range names {
		data, _, err := s.conn.Get(s.child(n))
		if err == nil {
			out = append(out, data)
		}
	}
	return out, nil
}
