package launcher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecureJoinStaysBeneathRoot(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "b", "c"), 0o755))
	for link, dest := range map[string]string{
		"abs":   "/b",               // absolute: from the root, not the host's /
		"up":    "../../../../etc",  // climbs no higher than the root
		"rel":   "b/c",              // relative to its directory
		"b/sib": "../abs/c",         // a relative link through an absolute one
		"loop":  "loop",             // never resolves
		"e2":    "/proc/../../etc/", // ".." at the root stays there
	} {
		require.NoError(t, os.Symlink(dest, filepath.Join(root, link)))
	}
	for in, want := range map[string]string{
		"/":              "/",
		"/b/c":           "/b/c",
		"/abs/c":         "/b/c",
		"/up":            "/etc",
		"/up/passwd":     "/etc/passwd",
		"/rel/x":         "/b/c/x",
		"/b/sib/new/dir": "/b/c/new/dir",
		"/../../etc":     "/etc",
		"/e2":            "/etc",
		"/missing/../b":  "/b",
		"relative/path":  "/relative/path",
	} {
		got, err := secureJoin(root, in)
		require.NoError(t, err, in)
		assert.Equal(t, filepath.Join(root, want), got, in)
		assert.True(t, within(root, got), in)
	}
	_, err := secureJoin(root, "/loop/x")
	assert.ErrorContains(t, err, "too many levels of symbolic links")
}

func TestWithin(t *testing.T) {
	assert.True(t, within("/a/b", "/a/b"))
	assert.True(t, within("/a/b", "/a/b/c"))
	assert.False(t, within("/a/b", "/a/bc"))
	assert.False(t, within("/a/b", "/a"))
	assert.True(t, within("/", "/anything"))
}

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"/data", ""},
		{"/mnt/mesos/sandbox/x", ""},
		{"", "is empty"},
		{"data", "not an absolute path"},
		{"/a/../../etc", `contains ".."`},
		{"/", "the container's root"},
		{"//", "the container's root"},
		{"/proc", "in /proc"},
		{"/sys/fs/cgroup", "in /sys"},
		{"/dev/sda", "in /dev"},
		{"/device", ""},
	} {
		err := checkTarget("target", tc.in)
		if tc.err == "" {
			assert.NoError(t, err, tc.in)
		} else {
			assert.ErrorContains(t, err, tc.err, tc.in)
		}
	}
}
