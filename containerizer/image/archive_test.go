package image

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArchiveSource(t *testing.T) {
	for _, tc := range []struct {
		in, src string
		ok      bool
		err     string
	}{
		{in: ""},
		{in: "registry.example.com:5000"},
		{in: "http://127.0.0.1:5000"},
		{in: "https://127.0.0.1:5000/"},
		{in: "/var/lib/images/", src: "/var/lib/images", ok: true},
		{in: "file:///var/lib/images", src: "/var/lib/images", ok: true},
		{in: "http://127.0.0.1:8080/images/", src: "http://127.0.0.1:8080/images", ok: true},
		{in: "hdfs://nn:8020/archives", err: "Hadoop"},
		{in: "file://otherhost/images", err: "absolute local directory"},
	} {
		src, ok, err := archiveSource(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.src, src, tc.in)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", "x?y", "x#y"} {
		_, err := archiveName(bad)
		require.ErrorIs(t, err, ErrInvalidName, bad)
	}
}

// archiveServer serves the files of dir over loopback HTTP and counts
// the requests for each path.
type archiveServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	gets map[string]int
	// gate, when set, holds each request until it is closed.
	gate chan struct{}
}

func newArchiveServer(t *testing.T, dir string) *archiveServer {
	a := &archiveServer{gets: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.gets[r.URL.Path]++
		gate := a.gate
		a.mu.Unlock()
		if gate != nil {
			<-gate
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *archiveServer) count(p string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets[p]
}

func saveDocker(t *testing.T, path, tag string, img v1.Image) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	tg, err := name.NewTag(tag)
	require.NoError(t, err)
	require.NoError(t, tarball.WriteToFile(path, tg, img))
}

// -docker-registry http://host/dir: Pull loads <dir>/<name>.tar, fetched
// once however many pull it at once.
func TestPullFromArchiveDirectoryOverHTTP(t *testing.T) {
	img := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, dir("etc/")), layerOf(t, reg("marker", "saved")))
	root := t.TempDir()
	saveDocker(t, filepath.Join(root, "images", "apron", "app:1.tar"), "apron/app:1", img)
	srv := newArchiveServer(t, root)
	srv.gate = make(chan struct{})

	s := openStore(t, t.TempDir(), nil, func(o *Options) { o.Registry = srv.srv.URL + "/images/" })
	const n = 8
	var wg sync.WaitGroup
	var ok atomic.Int32
	imgs := make([]*Image, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Pull(ctxT(t), "apron/app:1")
			if assert.NoError(t, err) {
				imgs[i] = got
				ok.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return srv.count("/images/apron/app:1.tar") > 0 }, 30*time.Second, 5*time.Millisecond)
	close(srv.gate)
	wg.Wait()
	require.EqualValues(t, n, ok.Load())
	assert.Equal(t, 1, srv.count("/images/apron/app:1.tar"), "one fetch for %d pulls", n)
	assert.Equal(t, "saved", readMarker(t, imgs[0]))
	assert.Equal(t, diffIDs(t, img), imgs[0].LayerIDs)
	assert.Equal(t, "index.docker.io/apron/app:1", imgs[0].Name)
	assert.Empty(t, listDir(t, s.tmpDir()), "the downloaded archive is removed")

	// Stored: no fetch again, unless forced.
	_, err := s.Pull(ctxT(t), "apron/app:1")
	require.NoError(t, err)
	assert.Equal(t, 1, srv.count("/images/apron/app:1.tar"))
	_, err = s.Pull(ctxT(t), "apron/app:1", Force())
	require.NoError(t, err)
	assert.Equal(t, 2, srv.count("/images/apron/app:1.tar"))

	// An unknown image: ErrNotFound naming it, nothing left.
	s2 := openStore(t, t.TempDir(), nil, func(o *Options) { o.Registry = srv.srv.URL + "/images" })
	_, err = s2.Pull(ctxT(t), "apron/missing")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "apron/missing")
	assertNothingLeft(t, s2)
}

// LoadURI takes an OCI layout tar over HTTP, checks a digest reference,
// the size limit and the format.
func TestLoadURI(t *testing.T) {
	one := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, reg("marker", "one")))
	root := t.TempDir()
	lay := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(lay, empty.Index)
	require.NoError(t, err)
	require.NoError(t, p.AppendImage(one, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "one"})))
	tarDir(t, lay, filepath.Join(root, "oci.tar"))
	require.NoError(t, os.WriteFile(filepath.Join(root, "junk.tar"), []byte(strings.Repeat("junk", 1000)), 0o644))
	srv := newArchiveServer(t, root)

	s := openStore(t, t.TempDir(), nil)
	got, err := s.LoadURI(ctxT(t), srv.srv.URL+"/oci.tar", "local/app:one")
	require.NoError(t, err)
	assert.Equal(t, "one", readMarker(t, got))

	d, err := one.Digest()
	require.NoError(t, err)
	s = openStore(t, t.TempDir(), nil)
	_, err = s.LoadURI(ctxT(t), srv.srv.URL+"/oci.tar", "local/app@"+d.String())
	require.NoError(t, err, "the right digest")
	other := "sha256:" + strings.Repeat("0", 64)
	_, err = s.LoadURI(ctxT(t), srv.srv.URL+"/oci.tar", "local/other@"+other)
	require.ErrorIs(t, err, ErrCorrupt, "a digest the archive's image does not have")

	for _, tc := range []struct {
		uri  string
		max  int64
		want error
	}{
		{srv.srv.URL + "/oci.tar", 100, ErrTooLarge},
		{srv.srv.URL + "/junk.tar", 0, ErrCorrupt},
		{srv.srv.URL + "/none.tar", 0, ErrNotFound},
		{"ftp://127.0.0.1/x.tar", 0, ErrUnsupported},
		{"file://" + filepath.Join(root, "oci.tar"), 0, nil},
	} {
		s := openStore(t, t.TempDir(), nil, func(o *Options) { o.MaxArchiveBytes = tc.max })
		_, err := s.LoadURI(ctxT(t), tc.uri, "local/app:one")
		if tc.want == nil {
			require.NoError(t, err, tc.uri)
			continue
		}
		require.ErrorIs(t, err, tc.want, tc.uri)
		assertNothingLeft(t, s)
	}
}

// -docker-registry /dir: Mesos's local image tar puller.
func TestPullFromLocalArchiveDirectory(t *testing.T) {
	img := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, reg("marker", "local")))
	root := t.TempDir()
	saveDocker(t, filepath.Join(root, "busybox.tar"), "busybox:latest", img)
	s := openStore(t, t.TempDir(), nil, func(o *Options) { o.Registry = root })
	got, err := s.Pull(ctxT(t), "busybox")
	require.NoError(t, err)
	assert.Equal(t, "local", readMarker(t, got))
	_, err = s.Pull(ctxT(t), "busybox:2")
	require.ErrorIs(t, err, ErrNotFound)
}
