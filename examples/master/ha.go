package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/master"
)

// haFlags are the flags of high availability and the registry.
type haFlags struct {
	zk             string
	sessionTimeout time.Duration
	quorum         int
	registry       string
	workDir        string
}

// registryKind decides -registry: as given, else zk with -zk, file with
// -work-dir, in_memory otherwise (with a warning: nothing survives).
func (f haFlags) registryKind() (string, error) {
	kind := f.registry
	if kind == "" {
		switch {
		case f.zk != "":
			kind = "zk"
		case f.workDir != "":
			kind = "file"
		default:
			kind = "in_memory"
		}
	}
	switch kind {
	case "in_memory":
	case "file":
		if f.workDir == "" {
			return "", errors.New("-registry file keeps the registry under -work-dir: give -work-dir")
		}
		if f.zk != "" {
			return "", errors.New("-registry file with -zk: each master would keep a registry of its own and a failover would lose it; use -registry zk (the default with -zk)")
		}
	case "zk":
		if f.zk == "" {
			return "", errors.New("-registry zk keeps the registry in the ZooKeeper of -zk: give -zk")
		}
	default:
		return "", fmt.Errorf("-registry %q: want in_memory, file or zk", kind)
	}
	if f.zk != "" && f.quorum <= 0 {
		return "", errors.New("-zk needs -quorum: the number of masters that make a majority of the group (2 of 3), the same on every master, as Mesos's --quorum")
	}
	if f.zk == "" && f.quorum != 0 {
		return "", errors.New("-quorum is for a group of masters: give -zk")
	}
	return kind, nil
}

// openRegistry returns the master's registry of kind.
func openRegistry(kind string, f haFlags, u zookeeper.URL, log *slog.Logger) (master.Registry, error) {
	switch kind {
	case "file":
		return master.NewFileRegistry(master.FileRegistryConfig{Dir: filepath.Join(f.workDir, "registry"), Logger: log})
	case "zk":
		return &zkRegistry{url: u, quorum: f.quorum, opts: zookeeper.Options{SessionTimeout: f.sessionTimeout, Logger: log}, log: log}, nil
	}
	log.Warn("the registry is in memory: a restarted master forgets its agents' admission, weights and quotas (use -work-dir, or -zk)")
	return master.NewMemoryRegistry(), nil
}

// zkRegistry is the ZooKeeper registry, connected when the master first
// recovers it (once elected: a standby holds no connection of its own),
// under <path>/registry beside the election's znodes. Its first Recover
// also checks the group's quorum.
type zkRegistry struct {
	url    zookeeper.URL
	quorum int
	opts   zookeeper.Options
	log    *slog.Logger

	mu   sync.Mutex
	conn *zk.Conn
	reg  *master.ZKRegistry
}

func (r *zkRegistry) open(ctx context.Context) (*master.ZKRegistry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg != nil {
		return r.reg, nil
	}
	conn, err := zookeeper.Dial(ctx, r.url, r.opts)
	if err != nil {
		return nil, err
	}
	if err := checkQuorum(conn, r.url, r.quorum); err != nil {
		conn.Close()
		return nil, err
	}
	reg, err := master.NewZKRegistry(master.ZKRegistryConfig{
		Conn: conn, Path: path.Join(r.url.Path, "registry"), ACL: zookeeper.ACL(r.url), Logger: r.log,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.conn, r.reg = conn, reg
	return reg, nil
}

func (r *zkRegistry) Recover(ctx context.Context) (*master.RegistryState, error) {
	reg, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	return reg.Recover(ctx)
}

func (r *zkRegistry) Apply(ctx context.Context, ops []master.RegistryOp) error {
	r.mu.Lock()
	reg := r.reg
	r.mu.Unlock()
	if reg == nil {
		return master.ErrRegistryNotRecovered
	}
	return reg.Apply(ctx, ops)
}

func (r *zkRegistry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.reg != nil {
		err = r.reg.Close()
	}
	if r.conn != nil {
		r.conn.Close()
	}
	return err
}

// checkQuorum makes sure every master of the group was started with the
// same -quorum: the first records it in <path>/quorum, the others must
// agree, so a master configured for another group never joins this one.
func checkQuorum(conn *zk.Conn, u zookeeper.URL, quorum int) error {
	p := path.Join(u.Path, "quorum")
	want := strconv.Itoa(quorum)
	// The group's path, as the election makes it, if it is not there yet.
	for i := 1; i <= len(u.Path); i++ {
		if i < len(u.Path) && u.Path[i] != '/' {
			continue
		}
		if _, err := conn.Create(u.Path[:i], nil, 0, zookeeper.ACL(u)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", u.Path[:i], err)
		}
	}
	_, err := conn.Create(p, []byte(want), 0, zookeeper.ACL(u))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("recording -quorum in %s: %w", p, err)
	}
	data, _, err := conn.Get(p)
	if err != nil {
		return fmt.Errorf("reading the group's quorum from %s: %w", p, err)
	}
	if got := strings.TrimSpace(string(data)); got != want {
		return fmt.Errorf("the masters of %s run with -quorum %s, this one with -quorum %d: refusing to join another group's election", u, got, quorum)
	}
	return nil
}

// masterInfoValid is the election's check of a znode's data: a MasterInfo
// as Mesos writes it.
func masterInfoValid(data []byte) error {
	_, err := codec.ParseMasterInfo(data)
	return err
}
