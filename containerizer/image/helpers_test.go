package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

// entry is one entry of a test layer.
type entry struct {
	name     string
	typ      byte // tar.TypeReg when 0
	body     string
	link     string
	mode     int64
	major    int64
	minor    int64
	fromFile string // the body is this file's content
}

func reg(name, body string) entry      { return entry{name: name, body: body} }
func dir(name string) entry            { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry    { return entry{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) entry   { return entry{name: name, typ: tar.TypeLink, link: to} }
func whiteout(parent, n string) entry  { return reg(filepath.Join(parent, ".wh."+n), "") }
func opaqueMarker(parent string) entry { return reg(filepath.Join(parent, ".wh..wh..opq"), "") }

// tarOf builds an uncompressed tar of the entries.
func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		body := []byte(e.body)
		if e.fromFile != "" {
			b, err := os.ReadFile(e.fromFile)
			require.NoError(t, err)
			body = b
		}
		hdr := &tar.Header{
			Name:     e.name,
			Typeflag: e.typ,
			Linkname: e.link,
			Mode:     e.mode,
			Devmajor: e.major,
			Devminor: e.minor,
			ModTime:  time.Unix(1700000000, 0),
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(body))
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if hdr.Typeflag == tar.TypeReg {
			_, err := tw.Write(body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// layerOf is a gzipped layer of the entries.
func layerOf(t testing.TB, entries ...entry) v1.Layer {
	t.Helper()
	b := tarOf(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	require.NoError(t, err)
	return l
}

// busyboxLayer is Debian's busybox-static as bin/busybox with bin/sh
// linking to it.
func busyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (apt-get install busybox-static)")
	}
	return layerOf(t, dir("bin/"), entry{name: "bin/busybox", fromFile: "/bin/busybox", mode: 0o755},
		symlink("bin/sh", "busybox"), symlink("bin/cat", "busybox"), dir("tmp/"))
}

// imageOf is an image of the layers (lowest first) with cfg.
func imageOf(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	require.NoError(t, err)
	img, err = mutate.Config(img, cfg)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

// testRegistry is go-containerregistry's in-process registry on loopback,
// counting the requests and able to serve tampered blobs.
type testRegistry struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests map[string]int                 // "GET /v2/..." → count
	tamper   map[string]func([]byte) []byte // blob digest → rewrite
	auth     string                         // "user:pass" required when set
	stall    chan struct{}                  // GETs of the blobs in stallOn wait for it
	stallOn  map[string]bool                // blob digests
	stalled  chan struct{}                  // gets a value when a GET stalls
}

func newRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{requests: map[string]int{}, tamper: map[string]func([]byte) []byte{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests[req.Method+" "+req.URL.Path]++
		auth := r.auth
		var tamper func([]byte) []byte
		var stall, stalled chan struct{}
		if i := strings.Index(req.URL.Path, "/blobs/"); i >= 0 && req.Method == http.MethodGet {
			tamper = r.tamper[req.URL.Path[i+len("/blobs/"):]]
			if r.stallOn[req.URL.Path[i+len("/blobs/"):]] {
				stall, stalled = r.stall, r.stalled
			}
		}
		r.mu.Unlock()
		if stall != nil {
			// Send the start of the blob, then wait.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			select {
			case stalled <- struct{}{}:
			default:
			}
			select {
			case <-stall:
				w.Write(body[len(body)/2:])
			case <-req.Context().Done():
			}
			return
		}
		if auth != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u+":"+p != auth {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if tamper != nil {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := tamper(rec.Body.Bytes())
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testRegistry) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

// push puts img in the registry as repo:tag ("repo:tag").
func (r *testRegistry) push(t testing.TB, repoTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(r.host()+"/"+repoTag, name.Insecure)
	require.NoError(t, err)
	r.mu.Lock()
	auth := r.auth
	r.mu.Unlock()
	opts := []remote.Option{}
	if auth != "" {
		u, p, _ := strings.Cut(auth, ":")
		opts = append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: u, Password: p})))
	}
	require.NoError(t, remote.Write(ref, img, opts...))
}

func (r *testRegistry) pushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(r.host()+"/"+repoTag, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(ref, idx))
}

// blobGets counts the GETs of blobs (layers and configs) by digest.
func (r *testRegistry) blobGets() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, n := range r.requests {
		if i := strings.Index(k, "/blobs/"); i >= 0 && strings.HasPrefix(k, "GET ") {
			out[k[i+len("/blobs/"):]] += n
		}
	}
	return out
}

func (r *testRegistry) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.requests {
		n += c
	}
	return n
}

func (r *testRegistry) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = map[string]int{}
}

// openStore opens a store on dir against the registry (plain HTTP).
func openStore(t testing.TB, dir string, r *testRegistry, mod ...func(*Options)) *Store {
	t.Helper()
	opts := Options{Dir: dir, Retry: remote.Backoff{Steps: 1, Duration: time.Millisecond}}
	if r != nil {
		opts.Registry = r.srv.URL
	}
	for _, m := range mod {
		m(&opts)
	}
	s, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// listDir lists the names in dir, sorted; none when it is missing.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// storedLayers lists the diff IDs of the layer directories on disk.
func storedLayers(t testing.TB, s *Store) []string {
	var out []string
	for _, n := range listDir(t, filepath.Join(s.opts.Dir, "layers", "sha256")) {
		out = append(out, "sha256:"+n)
	}
	return out
}

func diffIDs(t testing.TB, img v1.Image) []string {
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	var out []string
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
