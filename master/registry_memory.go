package master

import (
	"context"
	"sync"
)

// MemoryRegistryStore keeps a registry in memory: for tests, and for
// several masters in one process (with an in-memory election), which open
// it each through Open. It behaves as the durable stores do, fencing
// included (a registry that recovers fences off those that recovered
// before it), but nothing survives the process.
type MemoryRegistryStore struct {
	mu    sync.Mutex
	state *RegistryState
	epoch uint64 // bumped by every Recover; the writer holding it may write
}

// NewMemoryRegistryStore returns an empty store.
func NewMemoryRegistryStore() *MemoryRegistryStore {
	return &MemoryRegistryStore{state: NewRegistryState()}
}

// NewMemoryRegistry returns a registry on a store of its own.
func NewMemoryRegistry() Registry { return NewMemoryRegistryStore().Open() }

// Open returns a new registry on the store.
func (s *MemoryRegistryStore) Open() Registry { return &memoryRegistry{store: s} }

type memoryRegistry struct {
	store  *MemoryRegistryStore
	epoch  uint64 // 0 until Recover
	closed bool
}

func (r *memoryRegistry) Recover(ctx context.Context) (*RegistryState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := r.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.closed {
		return nil, ErrRegistryClosed
	}
	s.epoch++
	r.epoch = s.epoch
	return s.state.Clone(), nil
}

func (r *memoryRegistry) Apply(ctx context.Context, ops []RegistryOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := r.store
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.closed:
		return ErrRegistryClosed
	case r.epoch == 0:
		return ErrRegistryNotRecovered
	case r.epoch != s.epoch:
		return ErrRegistryFenced
	}
	return s.state.Apply(ops...)
}

func (r *memoryRegistry) Close() error {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	r.closed = true
	return nil
}
