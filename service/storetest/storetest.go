// Package storetest is the conformance suite every service.Store passes.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/service"
)

// Run runs the suite; open returns a new, empty store each time it is
// called, and reopen (may be nil) a second handle on the same storage as
// the last store open returned, as a restarted scheduler or another
// instance (RunElected) would get: for a shared store, through a
// connection (session) of its own.
func Run(t *testing.T, open func(t *testing.T) service.Store, reopen func(t *testing.T) service.Store) {
	ctx := context.Background()
	t.Run("empty", func(t *testing.T) {
		s := open(t)
		data, v, err := s.Load(ctx)
		require.NoError(t, err)
		assert.Empty(t, data)
		assert.Zero(t, v)
	})
	t.Run("save and load", func(t *testing.T) {
		s := open(t)
		v1, err := s.Save(ctx, []byte("one"), 0)
		require.NoError(t, err)
		assert.Positive(t, v1)
		v2, err := s.Save(ctx, []byte("two"), v1)
		require.NoError(t, err)
		assert.Greater(t, v2, v1)
		data, v, err := s.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, "two", string(data))
		assert.Equal(t, v2, v)
		if reopen != nil {
			data, v, err = reopen(t).Load(ctx)
			require.NoError(t, err)
			assert.Equal(t, "two", string(data))
			assert.Equal(t, v2, v)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		s := open(t)
		v1, err := s.Save(ctx, []byte("one"), 0)
		require.NoError(t, err)
		_, err = s.Save(ctx, []byte("stale"), 0)
		assert.ErrorIs(t, err, service.ErrConflict)
		_, err = s.Save(ctx, []byte("two"), v1)
		require.NoError(t, err)
		_, err = s.Save(ctx, []byte("stale"), v1)
		assert.ErrorIs(t, err, service.ErrConflict)
		data, _, err := s.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, "two", string(data), "a refused save changes nothing")
	})
	t.Run("a takeover fences the writer before it", func(t *testing.T) {
		if reopen == nil {
			t.Skip("needs a second handle on the storage (reopen)")
		}
		deposed := open(t)
		v, err := deposed.Save(ctx, []byte("one"), 0)
		require.NoError(t, err)
		// The successor loads and saves back at once (RunElected's
		// takeover)...
		successor := reopen(t)
		data, sv, err := successor.Load(ctx)
		require.NoError(t, err)
		require.Equal(t, v, sv)
		sv, err = successor.Save(ctx, data, sv)
		require.NoError(t, err)
		// ...so the deposed instance's late write fails.
		_, err = deposed.Save(ctx, []byte("late"), v)
		assert.ErrorIs(t, err, service.ErrConflict)
		_, err = successor.Save(ctx, []byte("two"), sv)
		require.NoError(t, err)
		data, _, err = deposed.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, "two", string(data), "the successor's state stands")
	})
	t.Run("concurrent writers: one wins each version", func(t *testing.T) {
		s := open(t)
		v, err := s.Save(ctx, []byte("base"), 0)
		require.NoError(t, err)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Save(ctx, []byte(fmt.Sprint(i)), v); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else {
					assert.ErrorIs(t, err, service.ErrConflict)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, wins)
	})
	t.Run("large", func(t *testing.T) {
		s := open(t)
		big := make([]byte, 256<<10)
		for i := range big {
			big[i] = byte(i)
		}
		_, err := s.Save(ctx, big, 0)
		require.NoError(t, err)
		data, _, err := s.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, big, data)
	})
}
