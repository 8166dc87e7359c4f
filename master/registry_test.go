package master_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/master/registrytest"
)

func TestMemoryRegistry(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Store {
		store := master.NewMemoryRegistryStore()
		return registrytest.Store{
			Open:          func(*testing.T) master.Registry { return store.Open() },
			SharedWriters: true,
		}
	})
}

func TestRegistryStateApplyIsAllOrNothing(t *testing.T) {
	s := master.NewRegistryState()
	err := s.Apply(master.AdmitAgent{Info: registrytest.AgentInfo(1)}, master.RemoveAgent{})
	require.ErrorIs(t, err, master.ErrInvalidRegistryOp)
	assert.Equal(t, master.NewRegistryState(), s)
}

func TestNewMemoryRegistry(t *testing.T) {
	r := master.NewMemoryRegistry()
	_, err := r.Recover(context.Background())
	require.NoError(t, err)
	require.NoError(t, r.Apply(context.Background(), registrytest.Admissions(0, 1)))
	s, err := r.Recover(context.Background())
	require.NoError(t, err)
	assert.Len(t, s.Agents, 1)
}
