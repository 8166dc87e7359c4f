package master

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileRegistryConfig configures NewFileRegistry.
type FileRegistryConfig struct {
	// Dir holds the registry, created if missing: a directory of its own
	// under the master's work directory (workDir/registry).
	Dir string
	// CompactBytes: the log is folded into a new snapshot once it is larger
	// than this and than the snapshot. Default 4 MiB.
	CompactBytes int64
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// FileRegistry keeps a registry in a directory, for one master: a snapshot
// of the whole state plus an append-only log of the batches applied since.
// Apply appends one record and fsyncs it, so admitting one agent writes a
// few hundred bytes whatever the registry's size; once the log outgrows
// the snapshot (and CompactBytes) the state is written to a new snapshot
// (temporary file, fsync, rename, fsync of the directory) and a new log
// started. After a crash, a torn record at the end of the log (the write
// that was never acknowledged) is dropped; damage anywhere else is
// ErrRegistryCorrupt, never a guess.
//
// Files in Dir: LOCK (flock, held from Recover to Close: a second process
// gets ErrRegistryLocked), snapshot, log.<generation>.
type FileRegistry struct {
	cfg    FileRegistryConfig
	log    *slog.Logger
	lock   *os.File
	state  *RegistryState
	gen    uint64
	wal    *os.File
	walLen int64
	snapSz int64
	failed error
	closed bool
}

const (
	fileRegistryMagic  = "APRONREG"
	fileRegistryHeader = 8 + 8 + 8 + 4 // magic, generation, length, crc32c
	walHeader          = 4 + 4 + 4     // length, crc32c of length, crc32c of payload
	maxWALRecord       = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewFileRegistry returns a registry kept in cfg.Dir; nothing is read or
// written before Recover.
func NewFileRegistry(cfg FileRegistryConfig) (*FileRegistry, error) {
	if cfg.Dir == "" {
		return nil, errors.New("master: file registry: no directory")
	}
	if cfg.CompactBytes <= 0 {
		cfg.CompactBytes = 4 << 20
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &FileRegistry{cfg: cfg, log: logger.With("registry", cfg.Dir)}, nil
}

// Recover reads the snapshot and replays the log after it.
func (r *FileRegistry) Recover(ctx context.Context) (*RegistryState, error) {
	if r.closed {
		return nil, ErrRegistryClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.lockDir(); err != nil {
		return nil, err
	}
	if r.wal != nil {
		_ = r.wal.Close()
		r.wal = nil
	}
	r.state, r.failed = nil, nil
	state, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	r.state = state
	return state.Clone(), nil
}

func (r *FileRegistry) lockDir() error {
	if r.lock != nil {
		return nil
	}
	if err := mkdirSynced(r.cfg.Dir); err != nil {
		return fmt.Errorf("master: file registry: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(r.cfg.Dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("master: file registry: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrRegistryLocked, r.cfg.Dir)
		}
		return fmt.Errorf("master: file registry: lock %s: %w", r.cfg.Dir, err)
	}
	r.lock = f
	return nil
}

// mkdirSynced creates dir (and its parents) and fsyncs the parent of every
// directory it created, so the directory itself survives a crash.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func (r *FileRegistry) path(name string) string { return filepath.Join(r.cfg.Dir, name) }

func walName(gen uint64) string { return fmt.Sprintf("log.%016x", gen) }

// load reads the snapshot and its log, removes what an interrupted
// compaction left, and opens the log for appending.
func (r *FileRegistry) load(ctx context.Context) (*RegistryState, error) {
	entries, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("master: file registry: %w", err)
	}
	state, gen, snapSz, err := r.readSnapshot()
	if err != nil {
		return nil, err
	}
	hasSnapshot := snapSz > 0
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "snapshot.tmp":
			_ = os.Remove(r.path(name))
		case strings.HasPrefix(name, "log."):
			g, perr := strconv.ParseUint(strings.TrimPrefix(name, "log."), 16, 64)
			if perr != nil {
				continue
			}
			if !hasSnapshot && g != 0 {
				return nil, fmt.Errorf("%w: %s: log %s without the snapshot it follows", ErrRegistryCorrupt, r.cfg.Dir, name)
			}
			if g != gen {
				// A log of an earlier generation, folded into the
				// snapshot by a compaction that stopped before removing it.
				_ = os.Remove(r.path(name))
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wal, walLen, err := r.replay(state, gen)
	if err != nil {
		return nil, err
	}
	r.gen, r.wal, r.walLen, r.snapSz = gen, wal, walLen, snapSz
	return state, nil
}

// readSnapshot returns the snapshot's state, generation and size (0 when
// there is none).
func (r *FileRegistry) readSnapshot() (*RegistryState, uint64, int64, error) {
	data, err := os.ReadFile(r.path("snapshot"))
	if errors.Is(err, fs.ErrNotExist) {
		return NewRegistryState(), 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("master: file registry: %w", err)
	}
	corrupt := func(why string) error {
		return fmt.Errorf("%w: %s: %s", ErrRegistryCorrupt, r.path("snapshot"), why)
	}
	if len(data) < fileRegistryHeader || string(data[:8]) != fileRegistryMagic {
		return nil, 0, 0, corrupt("not an Apron registry snapshot")
	}
	gen := binary.LittleEndian.Uint64(data[8:])
	n := binary.LittleEndian.Uint64(data[16:])
	sum := binary.LittleEndian.Uint32(data[24:])
	payload := data[fileRegistryHeader:]
	if uint64(len(payload)) != n {
		return nil, 0, 0, corrupt(fmt.Sprintf("%d bytes of state, header says %d", len(payload), n))
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, 0, corrupt("checksum mismatch")
	}
	state, err := decodeRegistryState(payload)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", r.path("snapshot"), err)
	}
	return state, gen, int64(len(data)), nil
}

// replay applies the records of log gen to state and returns the log open
// for appending, with a torn last record cut off.
func (r *FileRegistry) replay(state *RegistryState, gen uint64) (*os.File, int64, error) {
	name := r.path(walName(gen))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("master: file registry: %w", err)
	}
	fail := func(err error) (*os.File, int64, error) {
		_ = f.Close()
		return nil, 0, err
	}
	if err := syncDir(r.cfg.Dir); err != nil { // the log may have been created
		return fail(fmt.Errorf("master: file registry: %w", err))
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fail(fmt.Errorf("master: file registry: %w", err))
	}
	off, torn, err := scanWAL(data, func(payload []byte) error {
		ops, err := decodeRegistryBatch(payload)
		if err != nil {
			return err
		}
		return state.Apply(ops...)
	})
	if err != nil {
		return fail(fmt.Errorf("%s: %w", name, err))
	}
	if torn != "" {
		r.log.Warn("registry log ends in a torn record, dropping it (a write never acknowledged)",
			"file", name, "offset", off, "bytes", len(data)-off, "why", torn)
		if err := f.Truncate(int64(off)); err != nil {
			return fail(fmt.Errorf("master: file registry: %w", err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("master: file registry: %w", err))
		}
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return fail(fmt.Errorf("master: file registry: %w", err))
	}
	return f, int64(off), nil
}

// scanWAL calls apply for each record's payload and returns the end of the
// last whole record. A damaged record that can only be the unfinished last
// write (its header cut short, its payload cut short, its payload's
// checksum wrong with nothing after it, or zeros to the end of the file)
// ends the scan with torn saying why; any other damage is
// ErrRegistryCorrupt.
func scanWAL(data []byte, apply func([]byte) error) (off int, torn string, err error) {
	for off < len(data) {
		rest := data[off:]
		if len(rest) < walHeader {
			return off, "header cut short", nil
		}
		if allZero(rest) {
			return off, "zeros to the end of the file", nil
		}
		n := binary.LittleEndian.Uint32(rest)
		if crc32.Checksum(rest[:4], castagnoli) != binary.LittleEndian.Uint32(rest[4:]) || n > maxWALRecord {
			return off, "", fmt.Errorf("%w: record header at offset %d is damaged", ErrRegistryCorrupt, off)
		}
		end := walHeader + int(n)
		if end > len(rest) {
			return off, "record cut short", nil
		}
		payload := rest[walHeader:end]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[8:]) {
			if end == len(rest) {
				return off, "last record's checksum mismatch", nil
			}
			return off, "", fmt.Errorf("%w: record at offset %d: checksum mismatch", ErrRegistryCorrupt, off)
		}
		if err := apply(payload); err != nil {
			return off, "", fmt.Errorf("record at offset %d: %w", off, err)
		}
		off += end
	}
	return off, "", nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

func walRecord(payload []byte) []byte {
	rec := make([]byte, walHeader+len(payload))
	binary.LittleEndian.PutUint32(rec, uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[:4], castagnoli))
	binary.LittleEndian.PutUint32(rec[8:], crc32.Checksum(payload, castagnoli))
	copy(rec[walHeader:], payload)
	return rec
}

// Apply appends the batch to the log and fsyncs it.
func (r *FileRegistry) Apply(ctx context.Context, ops []RegistryOp) error {
	switch {
	case r.closed:
		return ErrRegistryClosed
	case r.state == nil:
		return ErrRegistryNotRecovered
	case r.failed != nil:
		return fmt.Errorf("%w: %v", ErrRegistryFailed, r.failed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateRegistryOps(ops); err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	payload, err := encodeRegistryBatch(ops)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRegistryOp, err)
	}
	if len(payload) > maxWALRecord {
		return fmt.Errorf("%w: batch of %d bytes is over %d", ErrInvalidRegistryOp, len(payload), maxWALRecord)
	}
	rec := walRecord(payload)
	if _, err := r.wal.Write(rec); err != nil {
		r.failed = err
		return fmt.Errorf("%w: append: %v", ErrRegistryFailed, err)
	}
	if err := r.wal.Sync(); err != nil {
		r.failed = err
		return fmt.Errorf("%w: fsync: %v", ErrRegistryFailed, err)
	}
	r.walLen += int64(len(rec))
	if err := r.state.Apply(ops...); err != nil {
		// Validated above: cannot happen.
		r.failed = err
		return fmt.Errorf("%w: %v", ErrRegistryFailed, err)
	}
	if r.walLen > r.cfg.CompactBytes && r.walLen > r.snapSz {
		if err := r.compact(); err != nil {
			// The batch is durable in the log; a failed compaction leaves
			// the old snapshot and log, which still recover the state.
			r.log.Error("registry compaction failed", "err", err)
		}
	}
	return nil
}

// compact writes the state as snapshot generation gen+1 and starts its
// empty log. Crash-safe at every step: until the rename the old snapshot
// and log are current; after it the new snapshot is, with its log created
// on recovery if missing, and the old log is removed as stale.
func (r *FileRegistry) compact() error {
	payload, err := encodeRegistryState(r.state)
	if err != nil {
		return err
	}
	gen := r.gen + 1
	buf := make([]byte, fileRegistryHeader+len(payload))
	copy(buf, fileRegistryMagic)
	binary.LittleEndian.PutUint64(buf[8:], gen)
	binary.LittleEndian.PutUint64(buf[16:], uint64(len(payload)))
	binary.LittleEndian.PutUint32(buf[24:], crc32.Checksum(payload, castagnoli))
	copy(buf[fileRegistryHeader:], payload)
	tmp := r.path("snapshot.tmp")
	if err := writeFileSynced(tmp, buf); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.path("snapshot")); err != nil {
		return err
	}
	if err := syncDir(r.cfg.Dir); err != nil {
		// The rename's durability is unknown: the old log must stay, and
		// this registry not write on until it recovers.
		r.failed = err
		return err
	}
	wal, err := os.OpenFile(r.path(walName(gen)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		r.failed = err
		return err
	}
	if err := syncDir(r.cfg.Dir); err != nil {
		_ = wal.Close()
		r.failed = err
		return err
	}
	old := r.path(walName(r.gen))
	_ = r.wal.Close()
	r.gen, r.wal, r.walLen, r.snapSz = gen, wal, 0, int64(len(buf))
	if err := os.Remove(old); err != nil {
		r.log.Warn("registry: cannot remove the compacted log; recovery will", "file", old, "err", err)
	}
	return nil
}

func writeFileSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Close releases the log and the lock.
func (r *FileRegistry) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.wal != nil {
		errs = append(errs, r.wal.Close())
	}
	if r.lock != nil {
		errs = append(errs, r.lock.Close()) // closing the descriptor releases the flock
	}
	return errors.Join(errs...)
}
