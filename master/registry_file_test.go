package master_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/master/registrytest"
)

func openFileRegistry(t *testing.T, dir string, compactBytes int64) *master.FileRegistry {
	t.Helper()
	r, err := master.NewFileRegistry(master.FileRegistryConfig{Dir: dir, CompactBytes: compactBytes})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestFileRegistry(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Store {
		dir := filepath.Join(t.TempDir(), "work", "registry")
		return registrytest.Store{Open: func(t *testing.T) master.Registry {
			// A low threshold, so the suite goes through compactions.
			return openFileRegistry(t, dir, 16<<10)
		}}
	})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// fileWithRecords leaves a registry directory whose log holds three
// batches, and returns the log's path and the offsets where records end.
func fileWithRecords(t *testing.T) (dir, log string, ends []int64) {
	dir = t.TempDir()
	r := openFileRegistry(t, dir, 0)
	_, err := r.Recover(context.Background())
	require.NoError(t, err)
	log = filepath.Join(dir, "log.0000000000000000")
	for i := range 3 {
		require.NoError(t, r.Apply(context.Background(), registrytest.Admissions(i, i+1)))
		fi, err := os.Stat(log)
		require.NoError(t, err)
		ends = append(ends, fi.Size())
	}
	require.NoError(t, r.Close())
	return dir, log, ends
}

func recoverDir(t *testing.T, dir string) (*master.RegistryState, error) {
	t.Helper()
	r := openFileRegistry(t, dir, 0)
	s, err := r.Recover(context.Background())
	if err == nil {
		require.NoError(t, r.Close())
	}
	return s, err
}

func TestFileRegistryTornLastRecordIsDropped(t *testing.T) {
	cases := map[string]func(t *testing.T, log string, ends []int64){
		"cut in the payload": func(t *testing.T, log string, ends []int64) {
			require.NoError(t, os.Truncate(log, ends[2]-5))
		},
		"cut in the header": func(t *testing.T, log string, ends []int64) {
			require.NoError(t, os.Truncate(log, ends[1]+7))
		},
		"last payload damaged": func(t *testing.T, log string, ends []int64) {
			flipByte(t, log, ends[2]-3)
		},
		"zeros after the last write": func(t *testing.T, log string, ends []int64) {
			require.NoError(t, os.Truncate(log, ends[1]))
			require.NoError(t, os.Truncate(log, ends[1]+4096))
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir, log, ends := fileWithRecords(t)
			damage(t, log, ends)
			s, err := recoverDir(t, dir)
			require.NoError(t, err)
			want := master.NewRegistryState()
			require.NoError(t, want.Apply(registrytest.Admissions(0, 2)...))
			assert.Equal(t, want, s)
			// The torn end is cut off: what is written next follows the
			// last whole record and is recovered.
			fi, err := os.Stat(log)
			require.NoError(t, err)
			assert.Equal(t, ends[1], fi.Size())
			r := openFileRegistry(t, dir, 0)
			_, err = r.Recover(context.Background())
			require.NoError(t, err)
			require.NoError(t, r.Apply(context.Background(), registrytest.Admissions(5, 6)))
			require.NoError(t, r.Close())
			s, err = recoverDir(t, dir)
			require.NoError(t, err)
			require.NoError(t, want.Apply(registrytest.Admissions(5, 6)...))
			assert.Equal(t, want, s)
		})
	}
}

func flipByte(t *testing.T, name string, off int64) {
	t.Helper()
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	data[off] ^= 0x40
	require.NoError(t, os.WriteFile(name, data, 0o644))
}

func TestFileRegistryCorruptionIsAnError(t *testing.T) {
	cases := map[string]func(t *testing.T, dir, log string, ends []int64){
		"first payload damaged": func(t *testing.T, dir, log string, ends []int64) {
			flipByte(t, log, ends[0]-3)
		},
		"middle header damaged": func(t *testing.T, dir, log string, ends []int64) {
			flipByte(t, log, ends[0]+1)
		},
		"garbage after the last record": func(t *testing.T, dir, log string, ends []int64) {
			f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte("this is not a record of the registry log"))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		},
		"a record that is not a batch": func(t *testing.T, dir, log string, ends []int64) {
			require.NoError(t, os.Truncate(log, ends[0]))
			appendRecord(t, log, []byte{0xff, 0xff, 0xff})
			appendRecord(t, log, []byte{})
		},
		"log of a later generation without its snapshot": func(t *testing.T, dir, log string, ends []int64) {
			require.NoError(t, os.Rename(log, filepath.Join(dir, "log.0000000000000003")))
		},
		"snapshot damaged": func(t *testing.T, dir, log string, ends []int64) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "snapshot"), []byte("APRONREG and then nothing sensible"), 0o644))
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir, log, ends := fileWithRecords(t)
			damage(t, dir, log, ends)
			_, err := recoverDir(t, dir)
			assert.ErrorIs(t, err, master.ErrRegistryCorrupt)
		})
	}
}

// appendRecord appends a well-framed log record.
func appendRecord(t *testing.T, log string, payload []byte) {
	t.Helper()
	rec := master.ExportWALRecord(payload)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(rec)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestFileRegistryCompaction(t *testing.T) {
	dir := t.TempDir()
	r := openFileRegistry(t, dir, 8<<10)
	_, err := r.Recover(context.Background())
	require.NoError(t, err)
	want := master.NewRegistryState()
	for i := range 200 {
		ops := registrytest.Admissions(i, i+1)
		require.NoError(t, r.Apply(context.Background(), ops))
		require.NoError(t, want.Apply(ops...))
	}
	names := dirNames(t, dir)
	// One snapshot, its log, the lock; the logs it folded in are gone.
	require.Len(t, names, 3, "%v", names)
	assert.Equal(t, "LOCK", names[0])
	assert.Regexp(t, `^log\.[0-9a-f]{16}$`, names[1])
	assert.NotEqual(t, "log.0000000000000000", names[1])
	assert.Equal(t, "snapshot", names[2])
	require.NoError(t, r.Close())

	// A compaction that stopped after the rename leaves the old log and
	// a temporary file: both ignored and removed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log.0000000000000000"), []byte("folded in"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "snapshot.tmp"), []byte("half"), 0o644))
	s, err := recoverDir(t, dir)
	require.NoError(t, err)
	assert.Equal(t, want, s)
	assert.Len(t, dirNames(t, dir), 3)
}

func TestFileRegistryLockIsReleasedOnClose(t *testing.T) {
	dir := t.TempDir()
	r1 := openFileRegistry(t, dir, 0)
	_, err := r1.Recover(context.Background())
	require.NoError(t, err)
	r2 := openFileRegistry(t, dir, 0)
	_, err = r2.Recover(context.Background())
	require.ErrorIs(t, err, master.ErrRegistryLocked)
	require.NoError(t, r1.Close())
	_, err = r2.Recover(context.Background())
	require.NoError(t, err)
}

// FuzzFileRegistryLog: whatever the log holds, recovery returns a state or
// an error, never panics.
func FuzzFileRegistryLog(f *testing.F) {
	f.Add(master.ExportWALRecord([]byte{}))
	f.Add(append(master.ExportWALRecord([]byte{0x0a, 0x00}), 1, 2, 3))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "log.0000000000000000"), data, 0o644))
		r, err := master.NewFileRegistry(master.FileRegistryConfig{Dir: dir})
		require.NoError(t, err)
		defer r.Close()
		_, _ = r.Recover(context.Background())
	})
}
