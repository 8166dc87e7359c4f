package containerizer_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/image"
	"github.com/apronhq/apron/internal/imagetest"
)

// A container runs from a `docker save` archive that the store fetches
// from a directory of archives over loopback HTTP, as Mesos's image tar
// puller takes -docker_registry.
func TestLinuxImageFromArchiveURI(t *testing.T) {
	needLinux(t)
	img := imagetest.Busybox(t, map[string]string{"/apron-archive-marker": "from the archive\n"})
	root := t.TempDir()
	tag, err := name.NewTag("apron/busybox:archived")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "images", "apron"), 0o755))
	require.NoError(t, tarball.WriteToFile(filepath.Join(root, "images", "apron", "busybox:archived.tar"), tag, img))
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()

	store, err := image.Open(image.Options{Dir: t.TempDir(), Registry: srv.URL + "/images"})
	require.NoError(t, err)
	defer store.Close()
	c := newLinux(t, t.TempDir(), func(o *containerizer.LinuxOptions) { o.Images = store })
	destroyOnCleanup(t, c)
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	require.NoError(t, c.Launch(linuxCtx(t), containerizer.Config{
		ID: "archived", Sandbox: sandbox, Image: "apron/busybox:archived",
		Command: containerizer.ShellCommand("cat /apron-archive-marker"),
	}))
	term, err := c.Wait(linuxCtx(t), "archived")
	require.NoError(t, err)
	stderr, _ := os.ReadFile(filepath.Join(sandbox, "stderr"))
	require.Equal(t, 0, term.ExitCode, "%+v; stderr: %s", term, stderr)
	out, err := os.ReadFile(filepath.Join(sandbox, "stdout"))
	require.NoError(t, err)
	assert.Equal(t, "from the archive\n", string(out))

	// An image the directory does not have fails the launch naming it.
	err = c.Launch(linuxCtx(t), containerizer.Config{
		ID: "missing", Sandbox: filepath.Join(t.TempDir(), "s"), Image: "apron/missing:1",
		Command: containerizer.ShellCommand("true"),
	})
	require.ErrorIs(t, err, image.ErrNotFound)
	assert.Contains(t, err.Error(), "apron/missing")
}
