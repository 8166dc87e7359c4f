package master

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/api/v1/internalpb"
)

// ZKRegistryConfig configures NewZKRegistry.
type ZKRegistryConfig struct {
	// Conn is the ZooKeeper connection, owned by the caller (it may be the
	// one the master's election uses). The registry never closes it.
	Conn *zk.Conn
	// Path is the registry's root znode, e.g. "/apron/registry"; a path of
	// its own, apart from the election's.
	Path string
	// ACL of the znodes created; default zk.WorldACL(zk.PermAll).
	ACL []zk.ACL
	// Owner names this master in the head znode, for operators.
	Owner string
	// ChunkBytes is the largest znode data written. Default 900 KiB, under
	// ZooKeeper's 1 MiB jute.maxbuffer with room for the request around it.
	ChunkBytes int
	// The log is folded into a new snapshot once it has CompactEntries
	// entries, or holds more bytes than CompactBytes and the snapshot.
	// Defaults 1000 and 4 MiB.
	CompactEntries int
	CompactBytes   int64
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// ZKRegistry keeps a registry in ZooKeeper, for several masters: the one
// that recovered last writes, the others are fenced (ErrRegistryFenced).
//
// Layout under Path: "head" names the current snapshot and where the log
// after it starts (internalpb.RegistryHead); "log/e-<seq>" are sequential
// znodes, one per Apply (internalpb.RegistryLogEntry); "chunks/" holds the
// snapshot and any batch too large for one znode, cut in pieces of at most
// ChunkBytes, so that 50,000 agents (about 15 MB) fit under ZooKeeper's
// 1 MB znode limit. Every Recover rewrites head, bumping its version;
// every Apply is one multi that checks that version and creates the log
// znode, so a master that recovered earlier can never interleave its
// writes with the new one's. Compaction writes the state's chunks, then
// points head at them (with the same version check), then deletes the old
// snapshot and log.
type ZKRegistry struct {
	cfg ZKRegistryConfig
	log *slog.Logger

	mu      sync.Mutex // guards closed against Close from another goroutine
	closed  bool
	state   *RegistryState
	head    internalpb.RegistryHead
	version int32 // head's version after our last write
	live    []zkLogRef
	logSz   int64
	snapSz  int64
	lastSeq int64
	fenced  bool
	failed  error
}

// zkLogRef is a log znode after the snapshot.
type zkLogRef struct {
	name   string
	seq    int64
	chunks []string
}

// NewZKRegistry returns a registry under cfg.Path; nothing is read or
// written before Recover.
func NewZKRegistry(cfg ZKRegistryConfig) (*ZKRegistry, error) {
	if cfg.Conn == nil {
		return nil, errors.New("master: zookeeper registry: no connection")
	}
	if cfg.Path == "" || cfg.Path[0] != '/' || (len(cfg.Path) > 1 && strings.HasSuffix(cfg.Path, "/")) {
		return nil, fmt.Errorf("master: zookeeper registry: bad path %q", cfg.Path)
	}
	if cfg.ACL == nil {
		cfg.ACL = zk.WorldACL(zk.PermAll)
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 900 << 10
	}
	if cfg.CompactEntries <= 0 {
		cfg.CompactEntries = 1000
	}
	if cfg.CompactBytes <= 0 {
		cfg.CompactBytes = 4 << 20
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &ZKRegistry{cfg: cfg, log: logger.With("registry", cfg.Path)}, nil
}

func (r *ZKRegistry) p(elem ...string) string {
	return path.Join(append([]string{r.cfg.Path}, elem...)...)
}

// call runs fn, returning early when ctx ends (the request then completes
// or fails on its own: the connection's owner closes it at the latest).
func call[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (r *ZKRegistry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Recover claims head (bumping its version) and reads the snapshot and the
// log after it.
func (r *ZKRegistry) Recover(ctx context.Context) (*RegistryState, error) {
	if r.isClosed() {
		return nil, ErrRegistryClosed
	}
	r.state, r.failed, r.fenced = nil, nil, false
	if err := r.ensurePaths(ctx); err != nil {
		return nil, err
	}
	if err := r.claim(ctx); err != nil {
		return nil, err
	}
	state, err := r.read(ctx)
	if err != nil {
		if r.headMoved(ctx) {
			return nil, fmt.Errorf("%w: during recovery: %v", ErrRegistryFenced, err)
		}
		return nil, err
	}
	r.state = state
	r.collectGarbage(ctx)
	return state.Clone(), nil
}

func (r *ZKRegistry) ensurePaths(ctx context.Context) error {
	parts := strings.Split(strings.TrimPrefix(r.cfg.Path, "/"), "/")
	cur := ""
	var nodes []string
	for _, part := range parts {
		cur += "/" + part
		nodes = append(nodes, cur)
	}
	nodes = append(nodes, r.p("log"), r.p("chunks"))
	for _, n := range nodes {
		_, err := call(ctx, func() (string, error) { return r.cfg.Conn.Create(n, nil, 0, r.cfg.ACL) })
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("master: zookeeper registry: create %s: %w", n, err)
		}
	}
	return nil
}

// claim rewrites head with this registry as owner; the new version fences
// every registry that recovered before.
func (r *ZKRegistry) claim(ctx context.Context) error {
	headPath := r.p("head")
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		type got struct {
			data []byte
			stat *zk.Stat
		}
		g, err := call(ctx, func() (got, error) {
			d, s, err := r.cfg.Conn.Get(headPath)
			return got{d, s}, err
		})
		if errors.Is(err, zk.ErrNoNode) {
			init := internalpb.RegistryHead{}
			data, _ := init.Marshal()
			_, err = call(ctx, func() (string, error) { return r.cfg.Conn.Create(headPath, data, 0, r.cfg.ACL) })
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("master: zookeeper registry: create %s: %w", headPath, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("master: zookeeper registry: read %s: %w", headPath, err)
		}
		var head internalpb.RegistryHead
		if err := head.Unmarshal(g.data); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrRegistryCorrupt, headPath, err)
		}
		owner := r.cfg.Owner
		head.Owner = &owner
		data, err := head.Marshal()
		if err != nil {
			return fmt.Errorf("master: zookeeper registry: %w", err)
		}
		stat, err := call(ctx, func() (*zk.Stat, error) { return r.cfg.Conn.Set(headPath, data, g.stat.Version) })
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
			continue // another master recovers at the same time: read again
		}
		if err != nil {
			return fmt.Errorf("master: zookeeper registry: write %s: %w", headPath, err)
		}
		r.head, r.version = head, stat.Version
		return nil
	}
}

// headMoved reports whether another registry has written head since ours.
func (r *ZKRegistry) headMoved(ctx context.Context) bool {
	stat, err := call(ctx, func() (*zk.Stat, error) {
		_, s, err := r.cfg.Conn.Exists(r.p("head"))
		return s, err
	})
	return err == nil && (stat == nil || stat.Version != r.version)
}

func (r *ZKRegistry) read(ctx context.Context) (*RegistryState, error) {
	state := NewRegistryState()
	r.snapSz = 0
	if len(r.head.SnapshotChunks) > 0 {
		data, err := r.readChunks(ctx, r.head.SnapshotChunks)
		if err != nil {
			return nil, fmt.Errorf("master: zookeeper registry: snapshot: %w", err)
		}
		if crc32.Checksum(data, castagnoli) != r.head.GetSnapshotCrc32c() {
			return nil, fmt.Errorf("%w: snapshot %d: checksum mismatch", ErrRegistryCorrupt, r.head.GetGeneration())
		}
		if state, err = decodeRegistryState(data); err != nil {
			return nil, err
		}
		r.snapSz = int64(len(data))
	}
	names, err := call(ctx, func() ([]string, error) {
		c, _, err := r.cfg.Conn.Children(r.p("log"))
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("master: zookeeper registry: list log: %w", err)
	}
	var refs []zkLogRef
	for _, n := range names {
		seq, ok := zkSeq(n)
		if !ok || seq < r.head.GetLogStart() {
			continue
		}
		refs = append(refs, zkLogRef{name: n, seq: seq})
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].seq < refs[j].seq })
	datas, err := r.getAll(ctx, len(refs), func(i int) string { return r.p("log", refs[i].name) })
	if err != nil {
		return nil, fmt.Errorf("master: zookeeper registry: read log: %w", err)
	}
	r.live, r.logSz, r.lastSeq = nil, 0, r.head.GetLogStart()-1
	for i, ref := range refs {
		var entry internalpb.RegistryLogEntry
		if err := entry.Unmarshal(datas[i]); err != nil {
			return nil, fmt.Errorf("%w: log %s: %v", ErrRegistryCorrupt, ref.name, err)
		}
		batch := entry.Batch
		if len(entry.Chunks) > 0 {
			if batch, err = r.readChunks(ctx, entry.Chunks); err != nil {
				return nil, fmt.Errorf("master: zookeeper registry: log %s: %w", ref.name, err)
			}
		}
		if crc32.Checksum(batch, castagnoli) != entry.GetCrc32c() {
			return nil, fmt.Errorf("%w: log %s: checksum mismatch", ErrRegistryCorrupt, ref.name)
		}
		ops, err := decodeRegistryBatch(batch)
		if err != nil {
			return nil, fmt.Errorf("log %s: %w", ref.name, err)
		}
		if err := state.Apply(ops...); err != nil {
			return nil, fmt.Errorf("%w: log %s: %v", ErrRegistryCorrupt, ref.name, err)
		}
		ref.chunks = entry.Chunks
		r.live = append(r.live, ref)
		r.logSz += int64(len(batch))
		r.lastSeq = ref.seq
	}
	return state, nil
}

// zkSeq parses the sequence number ZooKeeper appended to a name.
func zkSeq(name string) (int64, bool) {
	if len(name) < 10 {
		return 0, false
	}
	n, err := strconv.ParseInt(name[len(name)-10:], 10, 64)
	return n, err == nil
}

// getAll reads n znodes, several requests in flight at once (a recovering
// master reads up to CompactEntries log znodes).
func (r *ZKRegistry) getAll(ctx context.Context, n int, pathOf func(int) string) ([][]byte, error) {
	out := make([][]byte, n)
	errs := make([]error, n)
	const inFlight = 32
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], _, errs[i] = r.cfg.Conn.Get(pathOf(i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pathOf(i), err)
		}
	}
	return out, nil
}

func (r *ZKRegistry) readChunks(ctx context.Context, names []string) ([]byte, error) {
	parts, err := r.getAll(ctx, len(names), func(i int) string { return r.p("chunks", names[i]) })
	if err != nil {
		return nil, err
	}
	var size int
	for _, p := range parts {
		size += len(p)
	}
	data := make([]byte, 0, size)
	for _, p := range parts {
		data = append(data, p...)
	}
	return data, nil
}

// writeChunks stores data in sequential chunk znodes named prefix<seq> and
// returns their names in order. Until something references them they are
// garbage, collected at the next recovery.
func (r *ZKRegistry) writeChunks(ctx context.Context, prefix string, data []byte) ([]string, error) {
	var names []string
	for off := 0; off < len(data); off += r.cfg.ChunkBytes {
		end := min(off+r.cfg.ChunkBytes, len(data))
		created, err := call(ctx, func() (string, error) {
			return r.cfg.Conn.Create(r.p("chunks", prefix), data[off:end], zk.FlagSequence, r.cfg.ACL)
		})
		if err != nil {
			return nil, err
		}
		names = append(names, path.Base(created))
	}
	return names, nil
}

// Apply writes the batch as one log znode, in a multi with the check of
// head's version.
func (r *ZKRegistry) Apply(ctx context.Context, ops []RegistryOp) error {
	switch {
	case r.isClosed():
		return ErrRegistryClosed
	case r.state == nil:
		return ErrRegistryNotRecovered
	case r.fenced:
		return ErrRegistryFenced
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
	batch, err := encodeRegistryBatch(ops)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRegistryOp, err)
	}
	sum := crc32.Checksum(batch, castagnoli)
	entry := internalpb.RegistryLogEntry{Batch: batch, Crc32c: &sum}
	if entry.Size() > r.cfg.ChunkBytes {
		chunks, err := r.writeChunks(ctx, "b-", batch)
		if err != nil {
			// Nothing references what was written: no harm, but the
			// connection is in doubt.
			r.failed = err
			return fmt.Errorf("%w: write batch chunks: %v", ErrRegistryFailed, err)
		}
		entry = internalpb.RegistryLogEntry{Chunks: chunks, Crc32c: &sum}
	}
	data, err := entry.Marshal()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRegistryOp, err)
	}
	res, err := call(ctx, func() ([]zk.MultiResponse, error) {
		return r.cfg.Conn.Multi(
			&zk.CheckVersionRequest{Path: r.p("head"), Version: r.version},
			&zk.CreateRequest{Path: r.p("log", "e-"), Data: data, Acl: r.cfg.ACL, Flags: zk.FlagSequence},
		)
	})
	if err := r.writeError(err, res); err != nil {
		return err
	}
	seq, ok := zkSeq(res[1].String)
	if !ok {
		r.failed = fmt.Errorf("created %q, which has no sequence number", res[1].String)
		return fmt.Errorf("%w: %v", ErrRegistryFailed, r.failed)
	}
	if err := r.state.Apply(ops...); err != nil {
		r.failed = err // validated above: cannot happen
		return fmt.Errorf("%w: %v", ErrRegistryFailed, err)
	}
	r.live = append(r.live, zkLogRef{name: path.Base(res[1].String), seq: seq, chunks: entry.Chunks})
	r.logSz += int64(len(batch))
	r.lastSeq = seq
	if len(r.live) >= r.cfg.CompactEntries || (r.logSz > r.cfg.CompactBytes && r.logSz > r.snapSz) {
		if err := r.compact(ctx); err != nil {
			if errors.Is(err, ErrRegistryFenced) {
				return nil // the batch is durable; the next Apply says fenced
			}
			r.log.Error("registry compaction failed", "err", err)
		}
	}
	return nil
}

// writeError classifies the outcome of a conditional write: fenced (the
// check failed, nothing written), failed (unknown), or nil.
func (r *ZKRegistry) writeError(err error, res []zk.MultiResponse) error {
	fenced := errors.Is(err, zk.ErrBadVersion)
	for _, mr := range res {
		if errors.Is(mr.Error, zk.ErrBadVersion) || errors.Is(mr.Error, zk.ErrNoNode) {
			fenced = true
		}
		if err == nil && mr.Error != nil {
			err = mr.Error
		}
	}
	switch {
	case fenced:
		r.fenced = true
		return ErrRegistryFenced
	case err != nil:
		r.failed = err
		return fmt.Errorf("%w: %v", ErrRegistryFailed, err)
	}
	return nil
}

// compact writes the state as the next snapshot and points head at it.
func (r *ZKRegistry) compact(ctx context.Context) error {
	data, err := encodeRegistryState(r.state)
	if err != nil {
		return err
	}
	gen := r.head.GetGeneration() + 1
	chunks, err := r.writeChunks(ctx, fmt.Sprintf("s%016x-", gen), data)
	if err != nil {
		return err
	}
	sum := crc32.Checksum(data, castagnoli)
	logStart := r.lastSeq + 1
	owner := r.cfg.Owner
	head := internalpb.RegistryHead{Generation: &gen, SnapshotChunks: chunks, SnapshotCrc32c: &sum, LogStart: &logStart, Owner: &owner}
	hdata, err := head.Marshal()
	if err != nil {
		return err
	}
	stat, err := call(ctx, func() (*zk.Stat, error) { return r.cfg.Conn.Set(r.p("head"), hdata, r.version) })
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		r.fenced = true
		return ErrRegistryFenced
	}
	if err != nil {
		r.failed = err
		return err
	}
	var garbage []string
	for _, c := range r.head.SnapshotChunks {
		garbage = append(garbage, r.p("chunks", c))
	}
	for _, ref := range r.live {
		garbage = append(garbage, r.p("log", ref.name))
		for _, c := range ref.chunks {
			garbage = append(garbage, r.p("chunks", c))
		}
	}
	r.head, r.version, r.live, r.logSz, r.snapSz = head, stat.Version, nil, 0, int64(len(data))
	r.deleteAll(ctx, garbage)
	return nil
}

// collectGarbage deletes what no current snapshot or log entry references:
// what compactions before a crash left, and chunks of batches never
// committed.
func (r *ZKRegistry) collectGarbage(ctx context.Context) {
	keep := map[string]bool{}
	for _, c := range r.head.SnapshotChunks {
		keep[c] = true
	}
	for _, ref := range r.live {
		for _, c := range ref.chunks {
			keep[c] = true
		}
	}
	var garbage []string
	if chunks, _, err := r.cfg.Conn.Children(r.p("chunks")); err == nil {
		for _, c := range chunks {
			if !keep[c] {
				garbage = append(garbage, r.p("chunks", c))
			}
		}
	}
	if logs, _, err := r.cfg.Conn.Children(r.p("log")); err == nil {
		for _, n := range logs {
			if seq, ok := zkSeq(n); ok && seq < r.head.GetLogStart() {
				garbage = append(garbage, r.p("log", n))
			}
		}
	}
	r.deleteAll(ctx, garbage)
}

// deleteAll deletes znodes, best effort, a few hundred per multi.
func (r *ZKRegistry) deleteAll(ctx context.Context, paths []string) {
	const perMulti = 200
	for len(paths) > 0 && ctx.Err() == nil {
		n := min(perMulti, len(paths))
		reqs := make([]any, n)
		for i, p := range paths[:n] {
			reqs[i] = &zk.DeleteRequest{Path: p, Version: -1}
		}
		if _, err := r.cfg.Conn.Multi(reqs...); err != nil {
			// One already gone fails the multi: fall back to one by one.
			for _, p := range paths[:n] {
				if err := r.cfg.Conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					r.log.Warn("registry: cannot delete an old znode", "znode", p, "err", err)
				}
			}
		}
		paths = paths[n:]
	}
}

// Close marks the registry closed; the connection stays the caller's.
func (r *ZKRegistry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}
