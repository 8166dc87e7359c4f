package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ErrConflict is returned by Store.Save when the stored version is not the
// one the caller read: another scheduler instance wrote in between, and
// this one must stop (it is no longer the leader).
var ErrConflict = errors.New("service: state store version conflict")

// Store keeps the service's state: one snapshot blob with a version.
// Versions start at 0 (nothing stored) and every successful Save returns
// a new, larger one. Save is a compare-and-set on the version, so two
// scheduler instances that both believe they lead cannot both write.
// Implementations are safe for concurrent use.
type Store interface {
	// Load returns the stored blob and its version; (nil, 0) when none.
	Load(ctx context.Context) (data []byte, version int64, err error)
	// Save stores data if the stored version is still version, returning
	// the new version; otherwise it fails with ErrConflict.
	Save(ctx context.Context, data []byte, version int64) (int64, error)
}

// MemStore is a Store in memory, for tests and single-process setups that
// need no durability.
type MemStore struct {
	mu      sync.Mutex
	data    []byte
	version int64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Load implements Store.
func (m *MemStore) Load(context.Context) ([]byte, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.data...), m.version, nil
}

// Save implements Store.
func (m *MemStore) Save(_ context.Context, data []byte, version int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if version != m.version {
		return 0, fmt.Errorf("%w: stored %d, expected %d", ErrConflict, m.version, version)
	}
	m.data = append([]byte(nil), data...)
	m.version++
	return m.version, nil
}

// FileStore is a Store in one file, replaced atomically (write a temporary
// file, fsync, rename, fsync the directory): a crash leaves the old state
// or the new one, never a mix. It serializes its own callers; two
// processes sharing the file are not protected from each other.
type FileStore struct {
	path string
	mu   sync.Mutex
}

// NewFileStore returns a FileStore at path; its directory must exist.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

type fileEnvelope struct {
	Version int64  `json:"version"`
	Data    []byte `json:"data"`
}

func (f *FileStore) read() (fileEnvelope, error) {
	var env fileEnvelope
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return env, fmt.Errorf("service: reading state: %w", err)
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, fmt.Errorf("service: decoding state file %s: %w", f.path, err)
	}
	return env, nil
}

// Load implements Store.
func (f *FileStore) Load(context.Context) ([]byte, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	env, err := f.read()
	return env.Data, env.Version, err
}

// Save implements Store.
func (f *FileStore) Save(_ context.Context, data []byte, version int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	env, err := f.read()
	if err != nil {
		return 0, err
	}
	if env.Version != version {
		return 0, fmt.Errorf("%w: stored %d, expected %d", ErrConflict, env.Version, version)
	}
	b, err := json.Marshal(fileEnvelope{Version: version + 1, Data: data})
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("service: saving state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("service: saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("service: saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("service: saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return 0, fmt.Errorf("service: saving state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return version + 1, nil
}
