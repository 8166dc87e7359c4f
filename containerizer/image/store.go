package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options configure a [Store].
type Options struct {
	// Dir holds the store: unpacked layers, image records, provisioned
	// rootfs records and a staging area. Created if missing. Required.
	Dir string
	// Registry is the registry that image names without one resolve
	// against, as Mesos's -docker_registry: a URL ("http://host:port" speaks
	// plain HTTP, "https://host" TLS) or a bare host[:port] (TLS). Empty
	// means Docker Hub (index.docker.io). As Mesos's image tar puller, it
	// may instead name a directory of image archives: an absolute path, a
	// file:// URL, or an http(s) URL with a path (http://host/images);
	// Pull then loads <directory>/<name>.tar (see LoadURI).
	Registry string
	// DockerConfig is the path of a docker config.json whose "auths" give
	// the registries' credentials ("auth" or username/password, or an
	// identity token). Credential helpers are not run. Empty: anonymous.
	DockerConfig string
	// Platform picks the image of a manifest list; zero means linux and the
	// architecture this binary runs on.
	Platform v1.Platform
	// MaxLayerBytes and MaxImageBytes limit the uncompressed size of one
	// layer and of all the layers of an image; zero means no limit.
	MaxLayerBytes int64
	MaxImageBytes int64
	// MaxArchiveBytes limits the size of an image archive downloaded by
	// LoadURI (or Pull from a directory of archives over HTTP); zero
	// means no limit.
	MaxArchiveBytes int64
	// AllowDevices lets layers create character and block device nodes
	// (only when the store runs as root). Otherwise a layer with a device
	// node is refused as corrupt.
	AllowDevices bool
	// Backend chooses how Provision builds a rootfs: "overlay", "copy", or
	// "" for overlay where the kernel has it (and the store runs as root),
	// copy otherwise.
	Backend string
	// Transport carries the registry requests; nil means
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Retry is the backoff of registry requests that fail with a temporary
	// error; zero means go-containerregistry's default (3 tries).
	Retry remote.Backoff
	// Jobs is how many layers of one image are fetched at once; zero
	// means 3.
	Jobs int
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

// ImageConfig is the part of an image's config that says how to run it.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Image is an image in the store.
type Image struct {
	// Name is the full reference the image was pulled or loaded as
	// (registry/repository:tag or @digest).
	Name string
	// Digest is the digest of the image's manifest.
	Digest string
	// LayerIDs are the layers' diff IDs (digests of the uncompressed
	// tars), lowest first.
	LayerIDs []string
	// Layers are the directories the layers are unpacked in, lowest
	// first, in the same order as LayerIDs. They must not be modified.
	Layers []string
	// Config says how to run the image; see [Merge].
	Config ImageConfig
	// Size is the sum of the layers' uncompressed sizes.
	Size int64
}

// imageRecord is an image's file under images/.
type imageRecord struct {
	Name   string      `json:"name"`
	Digest string      `json:"digest"`
	Layers []string    `json:"layers"`
	Config ImageConfig `json:"config"`
	Size   int64       `json:"size"`
}

// layerRecord is layer.json in a layer's directory, written last: a layer
// directory without it is a leftover.
type layerRecord struct {
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
	// Whiteouts is the format of the layer's whiteouts: "overlay" (char
	// device 0/0, trusted.overlay.opaque) or "aufs" (.wh. files).
	Whiteouts string `json:"whiteouts"`
}

// Store keeps images and their layers on disk, shared by all containers:
// each layer is fetched and unpacked once, whatever images or containers
// use it. All methods are safe for concurrent use, but one Dir must have one
// Store at a time.
type Store struct {
	opts   Options
	log    *slog.Logger
	root   bool
	defReg name.Registry
	plain  bool // the default registry speaks plain HTTP
	// archives, when set, is the directory (a local path or an http(s)
	// URL) of image archives that Pull loads from instead of a registry.
	archives string

	mu       sync.Mutex
	closed   bool
	images   map[string]*imageRecord  // by name
	rootfses map[string]*rootfsRecord // by container dir
	pins     map[string]int           // layers of pulls in progress
	layers   map[string]*layerRecord  // by diff ID, present on disk
	flights  map[string]*flight       // pulls and layer fetches under way

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	// testLayerAbort, when set, runs before a failed layer's staging
	// directory is removed.
	testLayerAbort func()
}

// Open opens (or creates) the store in opts.Dir. It deletes what an
// interrupted pull left behind and rebuilds the reference counts from the
// image and rootfs records on disk.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("image store: Options.Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Platform.OS == "" {
		opts.Platform.OS = "linux"
	}
	if opts.Platform.Architecture == "" {
		opts.Platform.Architecture = runtime.GOARCH
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 3
	}
	switch opts.Backend {
	case "", BackendOverlay, BackendCopy:
	default:
		return nil, fmt.Errorf("image store: unknown backend %q", opts.Backend)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	s := &Store{
		opts:     opts,
		log:      opts.Logger,
		root:     os.Geteuid() == 0,
		images:   map[string]*imageRecord{},
		rootfses: map[string]*rootfsRecord{},
		pins:     map[string]int{},
		layers:   map[string]*layerRecord{},
		flights:  map[string]*flight{},
	}
	if err := s.parseRegistry(opts.Registry); err != nil {
		return nil, err
	}
	for _, d := range []string{s.tmpDir(), s.imagesDir(), s.rootfsesDir(), filepath.Join(s.opts.Dir, "layers", "sha256")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close stops the pulls under way. The store's content stays on disk.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cancel()
	}
	return nil
}

func (s *Store) parseRegistry(r string) error {
	src, ok, err := archiveSource(r)
	if err != nil {
		return err
	}
	if ok {
		// Names resolve against the default registry, as Mesos's tar
		// puller names them.
		s.archives, r = src, ""
	}
	host := r
	if strings.Contains(r, "://") {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return fmt.Errorf("image store: bad registry %q", r)
		}
		switch u.Scheme {
		case "http":
			s.plain = true
		case "https":
		default:
			return fmt.Errorf("image store: registry %q: scheme must be http or https", r)
		}
		host = u.Host
	}
	if host == "" {
		host = name.DefaultRegistry
	}
	var opts []name.Option
	if s.plain {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("image store: bad registry %q: %w", r, err)
	}
	s.defReg = reg
	return nil
}

// ParseReference resolves an image name as Pull does: names without a
// registry resolve against Options.Registry, names without a tag get
// "latest".
func (s *Store) ParseReference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WithDefaultRegistry(s.defReg.RegistryStr()))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w: %w", ref, ErrInvalidName, err)
	}
	if s.plain && r.Context().RegistryStr() == s.defReg.RegistryStr() {
		r, err = name.ParseReference(ref, name.WithDefaultRegistry(s.defReg.RegistryStr()), name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w: %w", ref, ErrInvalidName, err)
		}
	}
	return r, nil
}

func (s *Store) tmpDir() string      { return filepath.Join(s.opts.Dir, "tmp") }
func (s *Store) imagesDir() string   { return filepath.Join(s.opts.Dir, "images") }
func (s *Store) rootfsesDir() string { return filepath.Join(s.opts.Dir, "rootfses") }

// layerDir is where the layer with this diff ID ("sha256:hex") lives; its
// files are in layerDir/rootfs.
func (s *Store) layerDir(diffID string) string {
	alg, hexd, _ := strings.Cut(diffID, ":")
	return filepath.Join(s.opts.Dir, "layers", alg, hexd)
}

// recordName names a record file after what it is about, whatever
// characters that has.
func recordName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + ".json"
}

// load cleans the staging area and reads the records.
func (s *Store) load() error {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range ents {
		if err := removeTree(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return fmt.Errorf("image store: clean staging: %w", err)
		}
	}
	// Layers: a directory without layer.json was being deleted by GC.
	ldir := filepath.Join(s.opts.Dir, "layers", "sha256")
	ents, err = os.ReadDir(ldir)
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range ents {
		var rec layerRecord
		p := filepath.Join(ldir, e.Name())
		if err := readJSON(filepath.Join(p, "layer.json"), &rec); err != nil || rec.DiffID != "sha256:"+e.Name() {
			s.log.Warn("removing incomplete layer", "dir", p, "err", err)
			if err := removeTree(p); err != nil {
				return fmt.Errorf("image store: %w", err)
			}
			continue
		}
		s.layers[rec.DiffID] = &rec
	}
	ents, err = os.ReadDir(s.imagesDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(s.imagesDir(), e.Name())
		var rec imageRecord
		if err := readJSON(p, &rec); err != nil {
			return fmt.Errorf("image store: %w", err)
		}
		missing := false
		for _, l := range rec.Layers {
			if s.layers[l] == nil {
				missing = true
			}
		}
		if missing {
			s.log.Warn("forgetting image with missing layers", "image", rec.Name)
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("image store: %w", err)
			}
			continue
		}
		s.images[rec.Name] = &rec
	}
	ents, err = os.ReadDir(s.rootfsesDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range ents {
		var rec rootfsRecord
		if err := readJSON(filepath.Join(s.rootfsesDir(), e.Name()), &rec); err != nil {
			return fmt.Errorf("image store: %w", err)
		}
		s.rootfses[rec.ContainerDir] = &rec
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically (staging file, fsync, rename).
func (s *Store) writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir(), "record-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) imageOf(rec *imageRecord) *Image {
	img := &Image{
		Name:     rec.Name,
		Digest:   rec.Digest,
		LayerIDs: append([]string(nil), rec.Layers...),
		Config:   rec.Config,
		Size:     rec.Size,
	}
	for _, l := range rec.Layers {
		img.Layers = append(img.Layers, filepath.Join(s.layerDir(l), "rootfs"))
	}
	return img
}

// Get returns the stored image with this name, or ErrNotFound.
func (s *Store) Get(ref string) (*Image, error) {
	r, err := s.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.images[r.Name()]
	if rec == nil {
		return nil, fmt.Errorf("image %s: %w in the store", r.Name(), ErrNotFound)
	}
	return s.imageOf(rec), nil
}

// Images lists the stored images, sorted by name.
func (s *Store) Images() []*Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Image
	for _, rec := range s.images {
		out = append(out, s.imageOf(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove forgets the image: the next Pull of the name fetches it again.
// Its layers stay until [Store.GC] finds nothing uses them (another image,
// a provisioned rootfs).
func (s *Store) Remove(ref string) error {
	r, err := s.ParseReference(ref)
	if err != nil {
		return err
	}
	key := r.Name()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images[key] == nil {
		return fmt.Errorf("image %s: %w in the store", key, ErrNotFound)
	}
	if err := os.Remove(filepath.Join(s.imagesDir(), recordName(key))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image %s: remove: %w", key, err)
	}
	delete(s.images, key)
	return nil
}

// LayerRefs counts, for each stored layer, the images and provisioned
// rootfses that use it (layers of pulls under way count once per pull). A
// layer with no reference is collected by the next GC.
func (s *Store) LayerRefs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refsLocked()
}

func (s *Store) refsLocked() map[string]int {
	refs := map[string]int{}
	for l := range s.layers {
		refs[l] = s.pins[l]
	}
	for _, rec := range s.images {
		for _, l := range rec.Layers {
			refs[l]++
		}
	}
	for _, rec := range s.rootfses {
		for _, l := range rec.Layers {
			refs[l]++
		}
	}
	return refs
}

// GC deletes the layers that no image, provisioned rootfs or pull under
// way uses, and returns their diff IDs, sorted.
func (s *Store) GC(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	var doomed []string
	var errs []error
	for l, n := range s.refsLocked() {
		if n > 0 {
			continue
		}
		// Rename first, so that a crash in the removal leaves only
		// staging leftovers, cleaned at Open.
		tmp, err := os.MkdirTemp(s.tmpDir(), "gc-")
		if err == nil {
			err = os.Rename(s.layerDir(l), filepath.Join(tmp, "layer"))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("layer %s: %w", l, err))
			continue
		}
		delete(s.layers, l)
		doomed = append(doomed, l)
		defer func() {
			if err := removeTree(tmp); err != nil {
				s.log.Warn("removing collected layer", "layer", l, "err", err)
			}
		}()
	}
	s.mu.Unlock()
	sort.Strings(doomed)
	if len(doomed) > 0 {
		s.log.Info("collected unused layers", "layers", doomed)
	}
	return doomed, errors.Join(errs...)
}

// removeTree removes path and everything below it, also directories
// without write permission (a non-root store unpacks read-only directories
// as they are in the image).
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// flight is a pull or layer fetch under way that later callers join.
type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn once for key among concurrent callers. fn's context is
// cancelled when every caller has given up (or the store closes), not when
// the first one does; the last one to give up returns once fn has.
func (s *Store) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	f := s.flights[key]
	if f == nil {
		fctx, cancel := context.WithCancel(s.ctx)
		f = &flight{done: make(chan struct{}), cancel: cancel}
		s.flights[key] = f
		go func() {
			defer cancel()
			v, err := fn(fctx)
			s.mu.Lock()
			if s.flights[key] == f {
				delete(s.flights, key)
			}
			f.val, f.err = v, err
			s.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		s.mu.Lock()
		f.waiters--
		last := f.waiters == 0
		if last {
			// Nobody wants it any more: later callers start afresh.
			f.cancel()
			if s.flights[key] == f {
				delete(s.flights, key)
			}
		}
		s.mu.Unlock()
		if last {
			// Let it clean up, so that nothing of it is left when we
			// return.
			<-f.done
		}
		return nil, ctx.Err()
	}
}
