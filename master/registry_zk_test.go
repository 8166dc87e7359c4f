package master_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/master/registrytest"
)

type quietZKLogger struct{}

func (quietZKLogger) Printf(string, ...any) {}

// connectZK opens a session of its own, closed at t's cleanup.
func connectZK(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZKLogger{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	for ev := range events {
		if ev.State == zk.StateHasSession {
			break
		}
	}
	go func() { // drain: the library drops events when nobody reads
		for range events {
		}
	}()
	return conn
}

func openZKRegistry(t testing.TB, conn *zk.Conn, path string, cfg master.ZKRegistryConfig) *master.ZKRegistry {
	t.Helper()
	cfg.Conn, cfg.Path = conn, path
	r, err := master.NewZKRegistry(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestZKRegistry(t *testing.T) {
	srv := zktest.Start(t)
	n := 0
	registrytest.Run(t, func(t *testing.T) registrytest.Store {
		n++
		path := fmt.Sprintf("/apron/suite-%d/registry", n)
		return registrytest.Store{
			Open: func(t *testing.T) master.Registry {
				// Small chunks and an early compaction, so the suite goes
				// through chunked snapshots and batches and compactions
				// with small states.
				return openZKRegistry(t, connectZK(t, srv.Addr), path, master.ZKRegistryConfig{
					ChunkBytes: 4 << 10, CompactEntries: 40, CompactBytes: 64 << 10, Owner: "suite"})
			},
			SharedWriters: true,
		}
	})
}

// TestZKRegistryDefaultsFitZooKeeper runs a large state with the default
// chunk size against a server with the default 1 MB jute.maxbuffer.
func TestZKRegistryDefaultsFitZooKeeper(t *testing.T) {
	n := 5000
	if registrytest.Large() {
		n = 50000
	}
	srv := zktest.Start(t)
	conn := connectZK(t, srv.Addr)
	ctx := context.Background()
	r := openZKRegistry(t, conn, "/apron/registry", master.ZKRegistryConfig{})
	_, err := r.Recover(ctx)
	require.NoError(t, err)
	// One batch of every agent: far over 1 MB at 50,000.
	require.NoError(t, r.Apply(ctx, registrytest.Admissions(0, n)))
	require.NoError(t, r.Apply(ctx, registrytest.Admissions(n, n+1)))
	require.NoError(t, r.Close())

	// Every znode is under the limit.
	children, _, err := conn.Children("/apron/registry/chunks")
	require.NoError(t, err)
	require.NotEmpty(t, children)
	for _, c := range children {
		_, stat, err := conn.Get("/apron/registry/chunks/" + c)
		require.NoError(t, err)
		assert.LessOrEqual(t, stat.DataLength, int32(1<<20-1))
	}

	r2 := openZKRegistry(t, connectZK(t, srv.Addr), "/apron/registry", master.ZKRegistryConfig{})
	s, err := r2.Recover(ctx)
	require.NoError(t, err)
	assert.Len(t, s.Agents, n+1)
}

// TestZKRegistryWritesCheckHead: a write of head by anyone else fences
// the registry, and its batch is not written.
func TestZKRegistryWritesCheckHead(t *testing.T) {
	srv := zktest.Start(t)
	conn := connectZK(t, srv.Addr)
	ctx := context.Background()
	r := openZKRegistry(t, conn, "/r", master.ZKRegistryConfig{Owner: "master-1"})
	_, err := r.Recover(ctx)
	require.NoError(t, err)
	_, before, err := conn.Get("/r/head")
	require.NoError(t, err)
	// Someone (an operator, another master's tool) rewrites head: this
	// registry must not write over it.
	_, err = conn.Set("/r/head", nil, before.Version)
	require.NoError(t, err)
	assert.ErrorIs(t, r.Apply(ctx, registrytest.Admissions(0, 1)), master.ErrRegistryFenced)
	children, _, err := conn.Children("/r/log")
	require.NoError(t, err)
	assert.Empty(t, children)
}

func TestZKRegistryConnectionLostIsFailed(t *testing.T) {
	srv := zktest.Start(t)
	conn := connectZK(t, srv.Addr)
	ctx := context.Background()
	r := openZKRegistry(t, conn, "/r", master.ZKRegistryConfig{})
	_, err := r.Recover(ctx)
	require.NoError(t, err)
	conn.Close()
	assert.ErrorIs(t, r.Apply(ctx, registrytest.Admissions(0, 1)), master.ErrRegistryFailed)
	assert.ErrorIs(t, r.Apply(ctx, registrytest.Admissions(0, 1)), master.ErrRegistryFailed)
}
