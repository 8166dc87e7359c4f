package service

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// ZKStore is a Store in one ZooKeeper znode; its version is the znode's
// version plus one, and Save is a conditional set, so two scheduler
// instances cannot overwrite each other. The state must fit in a znode
// (1 MB by default): thousands of pods.
type ZKStore struct {
	conn *zk.Conn
	path string
	acl  []zk.ACL
}

// NewZKStore returns a store at the znode path (parents are created as
// needed) over an established connection, which the caller owns.
func NewZKStore(conn *zk.Conn, znode string) (*ZKStore, error) {
	if conn == nil || !strings.HasPrefix(znode, "/") || znode == "/" {
		return nil, fmt.Errorf("service: ZKStore needs a connection and an absolute znode path, got %q", znode)
	}
	return &ZKStore{conn: conn, path: path.Clean(znode), acl: zk.WorldACL(zk.PermAll)}, nil
}

// Load implements Store.
func (z *ZKStore) Load(context.Context) ([]byte, int64, error) {
	data, stat, err := z.conn.Get(z.path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("service: loading state from %s: %w", z.path, err)
	}
	return data, int64(stat.Version) + 1, nil
}

// Save implements Store.
func (z *ZKStore) Save(_ context.Context, data []byte, version int64) (int64, error) {
	if version == 0 {
		if err := z.parents(); err != nil {
			return 0, err
		}
		_, err := z.conn.Create(z.path, data, 0, z.acl)
		if errors.Is(err, zk.ErrNodeExists) {
			return 0, fmt.Errorf("%w: %s exists", ErrConflict, z.path)
		}
		if err != nil {
			return 0, fmt.Errorf("service: saving state to %s: %w", z.path, err)
		}
		return 1, nil
	}
	stat, err := z.conn.Set(z.path, data, int32(version-1))
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		return 0, fmt.Errorf("%w: %s changed", ErrConflict, z.path)
	}
	if err != nil {
		return 0, fmt.Errorf("service: saving state to %s: %w", z.path, err)
	}
	return int64(stat.Version) + 1, nil
}

func (z *ZKStore) parents() error {
	parts := strings.Split(strings.TrimPrefix(path.Dir(z.path), "/"), "/")
	p := ""
	for _, part := range parts {
		if part == "" {
			continue
		}
		p += "/" + part
		if _, err := z.conn.Create(p, nil, 0, z.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("service: creating %s: %w", p, err)
		}
	}
	return nil
}
