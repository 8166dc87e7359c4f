package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullOption changes one Pull.
type PullOption func(*pullOptions)

type pullOptions struct{ force bool }

// Force fetches the image's manifest again even when the store has the
// name (Mesos's Image.cached = false): a moved tag is followed. Layers
// already in the store are not fetched again.
func Force() PullOption { return func(o *pullOptions) { o.force = true } }

// Pull returns the image named ref, fetching it from its registry unless
// the store has it already. Names without a registry resolve against
// Options.Registry. Concurrent pulls of one name fetch it once, and
// concurrent pulls of images sharing layers fetch each layer once. The
// manifest list entry for Options.Platform is chosen; the config's digest
// and each layer's compressed digest and diff ID are verified. On error
// nothing of the image is left in the store (layers it completed stay, for
// GC to collect when unused). When Options.Registry names a directory of
// archives, the image is loaded from its archive there instead.
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	if s.archives != "" {
		return s.pullArchive(ctx, ref, opts)
	}
	return s.get(ctx, ref, "pull", opts, func(ctx context.Context, r name.Reference) (v1.Image, func(), error) {
		img, err := s.fetchRemote(ctx, r)
		return img, func() {}, err
	})
}

// get is Pull and Load: the stored image of ref unless Force is given,
// else the image open gives, ingested once however many callers ask at
// once (what names the operation in errors).
func (s *Store) get(ctx context.Context, ref, what string, opts []PullOption, open func(context.Context, name.Reference) (v1.Image, func(), error)) (*Image, error) {
	var po pullOptions
	for _, o := range opts {
		o(&po)
	}
	r, err := s.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	key := r.Name()
	if !po.force {
		s.mu.Lock()
		rec := s.images[key]
		s.mu.Unlock()
		if rec != nil {
			return s.imageOf(rec), nil
		}
	}
	v, err := s.do(ctx, "image:"+key, func(ctx context.Context) (any, error) {
		img, cleanup, err := open(ctx, r)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		return s.ingest(ctx, key, img)
	})
	if err != nil {
		return nil, pullError(key, what, err)
	}
	return v.(*Image), nil
}

// remoteOptions are the options of every registry request.
func (s *Store) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(dockerConfigKeychain{path: s.opts.DockerConfig}),
		remote.WithUserAgent("apron"),
	}
	if s.opts.Transport != nil {
		opts = append(opts, remote.WithTransport(s.opts.Transport))
	}
	if s.opts.Retry.Steps > 0 {
		opts = append(opts, remote.WithRetryBackoff(s.opts.Retry))
	}
	return opts
}

// fetchRemote resolves r to the image for the store's platform.
func (s *Store) fetchRemote(ctx context.Context, r name.Reference) (v1.Image, error) {
	desc, err := remote.Get(r, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("manifest list: %w", err)
		}
		return selectImage(idx, s.opts.Platform, "")
	case desc.MediaType.IsSchema1():
		return nil, fmt.Errorf("%w: schema 1 manifest (%s)", ErrUnsupported, desc.MediaType)
	case desc.MediaType.IsImage():
		return desc.Image()
	default:
		return nil, fmt.Errorf("%w: manifest media type %q", ErrUnsupported, desc.MediaType)
	}
}

// selectImage picks from an index the image for platform (or, when refName
// is set, the one annotated with that org.opencontainers.image.ref.name),
// descending into nested indexes.
func selectImage(idx v1.ImageIndex, platform v1.Platform, refName string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest list: %w", err)
	}
	var seen []string
	for _, d := range im.Manifests {
		if refName != "" && d.Annotations[annotationRefName] != refName {
			continue
		}
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("manifest list %s: %w", d.Digest, err)
			}
			if img, err := selectImage(child, platform, ""); err == nil {
				return img, nil
			} else if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			continue
		}
		if !d.MediaType.IsImage() {
			continue
		}
		if d.Platform == nil {
			// An entry without a platform fits when it is the only one
			// (OCI layouts of a single image often have none).
			if len(im.Manifests) == 1 || refName != "" {
				return idx.Image(d.Digest)
			}
			continue
		}
		seen = append(seen, d.Platform.String())
		if matchPlatform(*d.Platform, platform) {
			return idx.Image(d.Digest)
		}
	}
	if refName != "" {
		return nil, fmt.Errorf("%w: no manifest named %q for %s (has %v)", ErrNotFound, refName, platform.String(), seen)
	}
	return nil, fmt.Errorf("%w: no manifest for platform %s (has %v)", ErrNotFound, platform.String(), seen)
}

// matchPlatform: OS and architecture equal, and the variant too when one
// is asked for (as containerd's default matcher without its fallbacks).
func matchPlatform(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == want.Variant
}

// ingest stores img's layers and records it under key.
func (s *Store) ingest(ctx context.Context, key string, img v1.Image) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// The registry fetcher verifies it too, but a layout or archive does
	// not.
	if sum := sha256.Sum256(rawCfg); m.Config.Digest.Algorithm != "sha256" || m.Config.Digest.Hex != hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%w: config does not match its digest %s", ErrCorrupt, m.Config.Digest)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrCorrupt, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: manifest has %d layers, config %d diff IDs", ErrCorrupt, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	var compressed int64
	for _, l := range m.Layers {
		compressed += l.Size
		if s.opts.MaxLayerBytes > 0 && l.Size > s.opts.MaxLayerBytes {
			return nil, fmt.Errorf("%w: layer %s is %d bytes compressed, over the limit of %d", ErrTooLarge, l.Digest, l.Size, s.opts.MaxLayerBytes)
		}
	}
	if s.opts.MaxImageBytes > 0 && compressed > s.opts.MaxImageBytes {
		return nil, fmt.Errorf("%w: layers are %d bytes compressed, over the limit of %d", ErrTooLarge, compressed, s.opts.MaxImageBytes)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	ids := make([]string, len(layers))
	for i := range layers {
		if cfg.RootFS.DiffIDs[i].Algorithm != "sha256" {
			return nil, fmt.Errorf("%w: diff ID %s", ErrUnsupported, cfg.RootFS.DiffIDs[i])
		}
		ids[i] = cfg.RootFS.DiffIDs[i].String()
	}

	// Pin the layers so that GC leaves them (and those we fetch) alone
	// until the image record holds them.
	s.mu.Lock()
	for _, id := range ids {
		s.pins[id]++
	}
	var budget atomic.Int64 // image bytes left; counts down
	budget.Store(s.opts.MaxImageBytes)
	for _, id := range ids {
		if l := s.layers[id]; l != nil {
			budget.Add(-l.Size)
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for _, id := range ids {
			if s.pins[id]--; s.pins[id] == 0 {
				delete(s.pins, id)
			}
		}
		s.mu.Unlock()
	}()
	if s.opts.MaxImageBytes > 0 && budget.Load() < 0 {
		return nil, fmt.Errorf("%w: layers are over the image limit of %d bytes", ErrTooLarge, s.opts.MaxImageBytes)
	}

	// Fetch the missing layers, Jobs at a time.
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, s.opts.Jobs)
		errMu sync.Mutex
		first error
	)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := s.ensureLayer(lctx, l, ids[i], &budget); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	rec := &imageRecord{
		Name:   key,
		Digest: digest.String(),
		Layers: ids,
		Config: ImageConfig{
			Entrypoint: cfg.Config.Entrypoint,
			Cmd:        cfg.Config.Cmd,
			Env:        cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir,
			User:       cfg.Config.User,
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		rec.Size += s.layers[id].Size
	}
	if s.closed {
		return nil, ErrClosed
	}
	if err := s.writeJSON(filepath.Join(s.imagesDir(), recordName(key)), rec); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	s.images[key] = rec
	s.log.Info("stored image", "image", key, "digest", rec.Digest, "layers", len(ids), "bytes", rec.Size)
	return s.imageOf(rec), nil
}

// ensureLayer fetches and unpacks the layer unless the store has it.
// Concurrent calls for one layer fetch it once.
func (s *Store) ensureLayer(ctx context.Context, l v1.Layer, diffID string, budget *atomic.Int64) error {
	s.mu.Lock()
	have := s.layers[diffID] != nil
	s.mu.Unlock()
	if have {
		return nil
	}
	_, err := s.do(ctx, "layer:"+diffID, func(ctx context.Context) (any, error) {
		s.mu.Lock()
		have := s.layers[diffID] != nil
		s.mu.Unlock()
		if have {
			return nil, nil
		}
		return nil, s.fetchLayer(ctx, l, diffID, budget)
	})
	if err != nil {
		d, _ := l.Digest()
		return fmt.Errorf("layer %s: %w", d, err)
	}
	return nil
}

// fetchLayer unpacks the layer into the staging area, checks it, and
// renames it into place.
func (s *Store) fetchLayer(ctx context.Context, l v1.Layer, diffID string, budget *atomic.Int64) (err error) {
	tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if s.testLayerAbort != nil {
				s.testLayerAbort()
			}
			if rerr := removeTree(tmp); rerr != nil {
				s.log.Warn("removing staged layer", "dir", tmp, "err", rerr)
			}
		}
	}()
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	cr := &countingReader{
		ctx:    ctx,
		r:      rc,
		h:      h,
		limit:  s.opts.MaxLayerBytes,
		budget: budget,
		useBud: s.opts.MaxImageBytes > 0,
	}
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	u := &unpacker{
		whiteouts:    s.whiteoutFormat(),
		root:         s.root,
		allowDevices: s.opts.AllowDevices && s.root,
		log:          s.log,
	}
	if err := u.unpack(ctx, rootfs, cr); err != nil {
		return err
	}
	// Read to the end: the compressed digest is checked at EOF of the
	// compressed stream, and the diff ID covers the whole tar.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	if err := rc.Close(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return fmt.Errorf("%w: uncompressed content has digest %s, the config says %s", ErrCorrupt, got, diffID)
	}
	rec := &layerRecord{DiffID: diffID, Size: cr.n, Whiteouts: u.whiteouts}
	if err := s.writeJSON(filepath.Join(tmp, "layer.json"), rec); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.layers[diffID] != nil {
		return removeTree(tmp)
	}
	dst := s.layerDir(diffID)
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	s.layers[diffID] = rec
	return nil
}

// whiteoutFormat is how this store writes whiteouts: overlayfs's own
// format needs root (mknod, trusted.* xattrs).
func (s *Store) whiteoutFormat() string {
	if s.root {
		return whiteoutsOverlay
	}
	return whiteoutsAUFS
}

// countingReader hashes and counts what passes, enforces the size limits
// and stops when ctx ends.
type countingReader struct {
	ctx    context.Context
	r      io.Reader
	h      hash.Hash
	n      int64
	limit  int64
	budget *atomic.Int64
	useBud bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.h.Write(p[:n])
		c.n += int64(n)
		if c.limit > 0 && c.n > c.limit {
			return 0, fmt.Errorf("%w: layer is over the limit of %d bytes", ErrTooLarge, c.limit)
		}
		if c.useBud && c.budget.Add(-int64(n)) < 0 {
			return 0, fmt.Errorf("%w: image is over its size limit", ErrTooLarge)
		}
	}
	return n, err
}
