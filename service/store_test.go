package service_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/service"
	"github.com/apronhq/apron/service/storetest"
)

func TestMemStore(t *testing.T) {
	var last *service.MemStore
	storetest.Run(t, func(*testing.T) service.Store { last = service.NewMemStore(); return last },
		func(*testing.T) service.Store { return last })
}

func TestFileStore(t *testing.T) {
	var last string
	storetest.Run(t, func(t *testing.T) service.Store {
		last = filepath.Join(t.TempDir(), "state.json")
		return service.NewFileStore(last)
	}, func(*testing.T) service.Store { return service.NewFileStore(last) })
}

func TestZKStore(t *testing.T) {
	srv := zktest.Start(t) // skips without ZooKeeper
	conn, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogInfo(false))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	// Another instance's handles use a session of their own.
	other, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogInfo(false))
	require.NoError(t, err)
	t.Cleanup(other.Close)
	n := 0
	var last string
	storetest.Run(t, func(t *testing.T) service.Store {
		n++
		last = fmt.Sprintf("/apron/services/suite-%d/state", n)
		s, err := service.NewZKStore(conn, last)
		require.NoError(t, err)
		return s
	}, func(t *testing.T) service.Store {
		s, err := service.NewZKStore(other, last)
		require.NoError(t, err)
		return s
	})
}
