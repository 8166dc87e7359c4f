package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func markerImage(t testing.TB, marker string) v1.Image {
	return imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"cat /marker"}, Env: []string{"PATH=/bin", "MARKER=" + marker}, WorkingDir: "/tmp"},
		busyboxLayer(t), layerOf(t, reg("marker", marker)))
}

func TestPullStoresLayersAndReusesThem(t *testing.T) {
	r := newRegistry(t)
	img := markerImage(t, "one")
	r.push(t, "app:1", img)
	s := openStore(t, t.TempDir(), r)

	got, err := s.Pull(ctxT(t), "app:1")
	require.NoError(t, err)
	assert.Equal(t, r.host()+"/app:1", got.Name)
	assert.Equal(t, diffIDs(t, img), got.LayerIDs)
	assert.ElementsMatch(t, diffIDs(t, img), storedLayers(t, s))
	require.Len(t, got.Layers, 2)
	b, err := os.ReadFile(filepath.Join(got.Layers[1], "marker"))
	require.NoError(t, err)
	assert.Equal(t, "one", string(b))
	fi, err := os.Stat(filepath.Join(got.Layers[0], "bin", "busybox"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	assert.Equal(t, []string{"/bin/sh", "-c"}, got.Config.Entrypoint)
	assert.Equal(t, "/tmp", got.Config.WorkingDir)
	d, _ := img.Digest()
	assert.Equal(t, d.String(), got.Digest)
	assert.Empty(t, listDir(t, s.tmpDir()), "staging is empty after a pull")

	// A second pull is served by the store, without the registry.
	r.reset()
	again, err := s.Pull(ctxT(t), "app:1")
	require.NoError(t, err)
	assert.Equal(t, got, again)
	assert.Zero(t, r.total())

	// A forced pull reads the manifest again, but no layer.
	_, err = s.Pull(ctxT(t), "app:1", Force())
	require.NoError(t, err)
	cfgDigest, _ := img.ConfigName()
	for digest := range r.blobGets() {
		assert.Equal(t, cfgDigest.String(), digest, "only the config is fetched again")
	}

	// By digest: the same layers, nothing fetched but manifest and config.
	r.reset()
	byDigest, err := s.Pull(ctxT(t), "app@"+d.String())
	require.NoError(t, err)
	assert.Equal(t, got.Layers, byDigest.Layers)
	assert.Len(t, r.blobGets(), 1)

	// A new store on the directory (an agent restart) has the image.
	s.Close()
	s2 := openStore(t, s.opts.Dir, r)
	r.reset()
	again, err = s2.Pull(ctxT(t), "app:1")
	require.NoError(t, err)
	assert.Equal(t, got, again)
	assert.Zero(t, r.total())
}

func TestConcurrentPullsFetchEachBlobOnce(t *testing.T) {
	r := newRegistry(t)
	a, b := markerImage(t, "a"), markerImage(t, "b")
	r.push(t, "a:latest", a)
	r.push(t, "b:latest", b)
	r.reset()
	s := openStore(t, t.TempDir(), r)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Pull(ctxT(t), []string{"a", "b:latest"}[i%2])
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	gets := r.blobGets()
	require.NotEmpty(t, gets)
	for digest, n := range gets {
		assert.Equal(t, 1, n, "blob %s fetched %d times", digest, n)
	}
	// The busybox layer is shared: three layers in the store.
	assert.Len(t, storedLayers(t, s), 3)
	ref := s.LayerRefs()
	assert.Equal(t, 2, ref[diffIDs(t, a)[0]])
}

func TestPullPicksPlatformFromManifestList(t *testing.T) {
	r := newRegistry(t)
	mk := func(arch string) v1.Image {
		img := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, reg("marker", arch)))
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf = cf.DeepCopy()
		cf.Architecture = arch
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		return img
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mk("amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: mk("arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	r.pushIndex(t, "multi:1", idx)

	for _, arch := range []string{"amd64", "arm64"} {
		s := openStore(t, t.TempDir(), r, func(o *Options) { o.Platform = v1.Platform{OS: "linux", Architecture: arch} })
		img, err := s.Pull(ctxT(t), "multi:1")
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(img.Layers[0], "marker"))
		require.NoError(t, err)
		assert.Equal(t, arch, string(b))
	}
	s := openStore(t, t.TempDir(), r, func(o *Options) { o.Platform = v1.Platform{OS: "linux", Architecture: "s390x"} })
	_, err := s.Pull(ctxT(t), "multi:1")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "multi:1")
	assert.Contains(t, err.Error(), "s390x")
}

// assertNothingLeft: no layer, no image record and no staging file.
func assertNothingLeft(t *testing.T, s *Store) {
	t.Helper()
	assert.Empty(t, storedLayers(t, s))
	assert.Empty(t, listDir(t, s.imagesDir()))
	assert.Empty(t, listDir(t, s.tmpDir()))
	assert.Empty(t, s.Images())
}

func TestPullRefusesTamperedBlobs(t *testing.T) {
	other := layerOf(t, reg("marker", "evil"))
	otherBlob := func() []byte {
		rc, err := other.Compressed()
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return b
	}()
	cases := map[string]func([]byte) []byte{
		"one byte flipped": func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 0xff
			return b
		},
		"another layer": func([]byte) []byte { return otherBlob },
		// Same length, same uncompressed content (the diff ID holds):
		// only the compressed digest tells.
		"gzip header time changed": func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[4] ^= 0x01
			return b
		},
	}
	for nm, tamper := range cases {
		t.Run(nm, func(t *testing.T) {
			r := newRegistry(t)
			l := layerOf(t, reg("marker", "good"), reg("other", "x"))
			img := imageOf(t, v1.Config{Cmd: []string{"x"}}, l)
			r.push(t, "t:1", img)
			d, err := l.Digest()
			require.NoError(t, err)
			r.tamper[d.String()] = tamper
			s := openStore(t, t.TempDir(), r)
			_, err = s.Pull(ctxT(t), "t:1")
			t.Log(err)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), "t:1")
			assertNothingLeft(t, s)
		})
	}
}

func TestPullErrors(t *testing.T) {
	r := newRegistry(t)
	s := openStore(t, t.TempDir(), r)
	_, err := s.Pull(ctxT(t), "nosuch:1")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), r.host()+"/nosuch:1")

	_, err = s.Pull(ctxT(t), "UPPER:case")
	require.ErrorIs(t, err, ErrInvalidName)

	down := newRegistry(t)
	down.srv.Close()
	s = openStore(t, t.TempDir(), down)
	_, err = s.Pull(ctxT(t), "app:1")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "app:1")
	assertNothingLeft(t, s)
}

func TestPullSizeLimits(t *testing.T) {
	r := newRegistry(t)
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i * 7919 >> 3)
	}
	img := imageOf(t, v1.Config{Cmd: []string{"x"}}, layerOf(t, reg("a", string(big))), layerOf(t, reg("b", string(big[1:]))))
	r.push(t, "big:1", img)

	s := openStore(t, t.TempDir(), r, func(o *Options) { o.MaxLayerBytes = 32 << 10 })
	_, err := s.Pull(ctxT(t), "big:1")
	require.ErrorIs(t, err, ErrTooLarge)
	assertNothingLeft(t, s)

	s = openStore(t, t.TempDir(), r, func(o *Options) { o.MaxImageBytes = 100 << 10 })
	_, err = s.Pull(ctxT(t), "big:1")
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Empty(t, listDir(t, s.imagesDir()))
	assert.Empty(t, listDir(t, s.tmpDir()))

	s = openStore(t, t.TempDir(), r, func(o *Options) { o.MaxLayerBytes, o.MaxImageBytes = 100<<10, 200<<10 })
	_, err = s.Pull(ctxT(t), "big:1")
	require.NoError(t, err)
}

func TestPullWithDockerConfigCredentials(t *testing.T) {
	r := newRegistry(t)
	r.auth = "alice:s3cret"
	r.push(t, "private:1", imageOf(t, v1.Config{Cmd: []string{"x"}}, layerOf(t, reg("marker", "p"))))

	s := openStore(t, t.TempDir(), r)
	_, err := s.Pull(ctxT(t), "private:1")
	require.ErrorIs(t, err, ErrUnauthorized)

	cfg := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `{"auths":{"http://%s":{"auth":%q}}}`, r.host(), auth), 0o600))
	s = openStore(t, t.TempDir(), r, func(o *Options) { o.DockerConfig = cfg })
	_, err = s.Pull(ctxT(t), "private:1")
	require.NoError(t, err)
}

func TestStaleStagingIsCleanedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	// What a crash in the middle of an unpack and of a GC leaves.
	require.NoError(t, os.MkdirAll(filepath.Join(s.tmpDir(), "layer-123", "rootfs", "ro"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(s.tmpDir(), "layer-123", "rootfs", "ro"), 0o555))
	half := filepath.Join(dir, "layers", "sha256", "abcd")
	require.NoError(t, os.MkdirAll(filepath.Join(half, "rootfs"), 0o755))
	s.Close()
	s = openStore(t, dir, nil)
	assert.Empty(t, listDir(t, s.tmpDir()))
	assert.Empty(t, storedLayers(t, s))
}

func TestRegistryURLs(t *testing.T) {
	for _, c := range []struct{ reg, ref, want, scheme string }{
		{"http://127.0.0.1:5000", "busybox", "127.0.0.1:5000/busybox:latest", "http"},
		{"https://registry.example:5000", "busybox:1", "registry.example:5000/busybox:1", "https"},
		{"http://registry.example:5000", "busybox:1", "registry.example:5000/busybox:1", "http"},
		{"http://registry.example:5000", "other.example/x:1", "other.example/x:1", "https"},
		{"", "busybox", "index.docker.io/library/busybox:latest", "https"},
		{"registry.example", "a/b@sha256:" + fmt.Sprintf("%064d", 0), "registry.example/a/b@sha256:" + fmt.Sprintf("%064d", 0), "https"},
	} {
		s := openStore(t, t.TempDir(), nil, func(o *Options) { o.Registry = c.reg })
		r, err := s.ParseReference(c.ref)
		require.NoError(t, err, c)
		assert.Equal(t, c.want, r.Name(), c)
		assert.Equal(t, c.scheme, r.Context().Registry.Scheme(), c)
	}
	_, err := Open(Options{Dir: t.TempDir(), Registry: "ftp://x"})
	require.Error(t, err)
}

func TestCancelledPullLeavesNothing(t *testing.T) {
	r := newRegistry(t)
	img := markerImage(t, "slow")
	r.push(t, "slow:1", img)
	s := openStore(t, t.TempDir(), r)
	layers, err := img.Layers()
	require.NoError(t, err)
	r.mu.Lock()
	r.stallOn = map[string]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		require.NoError(t, err)
		r.stallOn[d.String()] = true
	}
	r.stall, r.stalled = make(chan struct{}), make(chan struct{}, 1)
	r.mu.Unlock()
	defer close(r.stall)

	// A slow cleanup: the pull must not return before it is done.
	var aborted atomic.Int32
	s.testLayerAbort = func() {
		aborted.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctx, "slow:1")
		errc <- err
	}()
	<-r.stalled // a layer is half unpacked
	cancel()
	err = <-errc
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "slow:1")
	assert.NotZero(t, aborted.Load(), "a layer was being unpacked")
	assertNothingLeft(t, s)
}

func TestPullRefusesMaliciousLayer(t *testing.T) {
	r := newRegistry(t)
	outside := t.TempDir()
	evil := layerOf(t, symlink("evil", outside), reg("evil/pwned", "pwned"))
	r.push(t, "evil:1", imageOf(t, v1.Config{Cmd: []string{"x"}}, layerOf(t, reg("ok", "ok")), evil))
	s := openStore(t, t.TempDir(), r)
	_, err := s.Pull(ctxT(t), "evil:1")
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "evil:1")
	assert.Contains(t, err.Error(), "evil/pwned")
	assert.Empty(t, listDir(t, outside))
	assert.Empty(t, listDir(t, s.imagesDir()))
	assert.Empty(t, listDir(t, s.tmpDir()))
	// The good layer may stay, unused, until GC.
	_, err = s.GC(ctxT(t))
	require.NoError(t, err)
	assertNothingLeft(t, s)
}
