package files_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/files"
)

// sandbox makes a directory with a file, a subdirectory and, next to it,
// a secret the sandbox must not reveal; it is attached as /sb.
func sandbox(t *testing.T) (*files.Table, string, string) {
	t.Helper()
	dir := t.TempDir()
	sb := filepath.Join(dir, "sandbox")
	require.NoError(t, os.MkdirAll(filepath.Join(sb, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sb, "stdout"), []byte("hello world\n"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(sb, "stdout"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(sb, "sub", "f"), []byte("in sub"), 0o600))
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("top secret"), 0o644))
	tab := &files.Table{}
	require.NoError(t, tab.Attach(sb, "/sb"))
	return tab, sb, secret
}

func get(t *testing.T, h http.HandlerFunc, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func readURL(p string, kv ...string) string {
	q := url.Values{"path": {p}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return files.ReadPath + "?" + q.Encode()
}

// readJSON reads through /files/read and decodes Mesos's answer.
func readJSON(t *testing.T, tab *files.Table, p string, kv ...string) (int, map[string]any) {
	t.Helper()
	w := get(t, tab.ServeRead, readURL(p, kv...))
	if w.Code != http.StatusOK {
		return w.Code, nil
	}
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m))
	return w.Code, m
}

func TestFilesConfinementDotDot(t *testing.T) {
	tab, _, _ := sandbox(t)
	for _, p := range []string{"/sb/../secret", "/sb/sub/../../secret", "/sb/..", "../sb/stdout", "/sb/sub/.."} {
		code, _ := readJSON(t, tab, p, "offset", "0")
		assert.Equal(t, http.StatusBadRequest, code, p)
		_, err := tab.Browse(p)
		assert.ErrorIs(t, err, files.ErrInvalid, p)
	}
	// "." and empty components are harmless.
	code, m := readJSON(t, tab, "/sb/./sub//f", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "in sub", m["data"])
}

func TestFilesConfinementAbsoluteEscape(t *testing.T) {
	tab, sb, secret := sandbox(t)
	// A real path that is attached to nothing is not found, even though
	// it exists.
	code, _ := readJSON(t, tab, secret, "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = readJSON(t, tab, "/etc/passwd", "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
	// An absolute path after the attached prefix stays inside it.
	code, _ = readJSON(t, tab, "/sb/"+secret, "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
	// The real path works once it is attached.
	require.NoError(t, tab.Attach(sb, sb))
	code, m := readJSON(t, tab, sb+"/stdout", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello world\n", m["data"])
	assert.Error(t, tab.Attach("relative/dir", "/x"), "a real path must be absolute")
	assert.ErrorIs(t, tab.Attach(sb, "/a/../b"), files.ErrInvalid)
}

func TestFilesConfinementSymlinks(t *testing.T) {
	tab, sb, secret := sandbox(t)
	require.NoError(t, os.Symlink("../secret", filepath.Join(sb, "rel-out")))
	require.NoError(t, os.Symlink(secret, filepath.Join(sb, "abs-out")))
	require.NoError(t, os.Symlink(filepath.Dir(secret), filepath.Join(sb, "dir-out")))
	require.NoError(t, os.Symlink("sub/f", filepath.Join(sb, "within")))
	require.NoError(t, os.Symlink("sub", filepath.Join(sb, "subdir")))

	for _, name := range []string{"rel-out", "abs-out", "dir-out/secret"} {
		code, _ := readJSON(t, tab, "/sb/"+name, "offset", "0")
		assert.Equal(t, http.StatusBadRequest, code, name)
		w := get(t, tab.ServeDownload, files.DownloadPath+"?path=/sb/"+name)
		assert.Equal(t, http.StatusBadRequest, w.Code, name)
		assert.NotContains(t, w.Body.String(), "top secret")
	}
	_, err := tab.Browse("/sb/dir-out")
	assert.ErrorIs(t, err, files.ErrInvalid)

	code, m := readJSON(t, tab, "/sb/within", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "in sub", m["data"])
	code, m = readJSON(t, tab, "/sb/subdir/f", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "in sub", m["data"])

	// The listing shows links out as links, and never the target's size.
	infos, err := tab.Browse("/sb")
	require.NoError(t, err)
	byName := map[string]files.Info{}
	for _, i := range infos {
		byName[filepath.Base(i.Path)] = i
	}
	assert.Equal(t, byte('l'), byName["rel-out"].ModeString()[0])
	assert.Equal(t, byte('l'), byName["dir-out"].ModeString()[0])
	assert.Equal(t, byte('-'), byName["within"].ModeString()[0], "a link inside is followed")
	assert.Equal(t, int64(6), byName["within"].Size)
	assert.Equal(t, byte('d'), byName["subdir"].ModeString()[0])
}

func TestFilesFileReplacedBySymlink(t *testing.T) {
	tab, sb, secret := sandbox(t)
	code, m := readJSON(t, tab, "/sb/stdout", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello world\n", m["data"])

	// The task swaps its stdout for a link to a file outside.
	require.NoError(t, os.Remove(filepath.Join(sb, "stdout")))
	require.NoError(t, os.Symlink("../secret", filepath.Join(sb, "stdout")))
	code, _ = readJSON(t, tab, "/sb/stdout", "offset", "0")
	assert.Equal(t, http.StatusBadRequest, code)
	// And a directory on the way for a link.
	require.NoError(t, os.RemoveAll(filepath.Join(sb, "sub")))
	require.NoError(t, os.Symlink(filepath.Dir(secret), filepath.Join(sb, "sub")))
	code, _ = readJSON(t, tab, "/sb/sub/secret", "offset", "0")
	assert.Equal(t, http.StatusBadRequest, code)
}

func TestFilesReadOffsetLength(t *testing.T) {
	tab, _, _ := sandbox(t) // stdout: "hello world\n", 12 bytes
	cases := []struct {
		name       string
		kv         []string
		data       string
		wantOffset float64
	}{
		{"no offset asks for the size", nil, "", 12},
		{"offset -1 asks for the size", []string{"offset", "-1"}, "", 12},
		{"offset -1 ignores the length", []string{"offset", "-1", "length", "5"}, "", 12},
		{"offset 0 reads all", []string{"offset", "0"}, "hello world\n", 0},
		{"offset and length", []string{"offset", "6", "length", "5"}, "world", 6},
		{"length -1 reads to the end", []string{"offset", "6", "length", "-1"}, "world\n", 6},
		{"length 0 reads nothing", []string{"offset", "0", "length", "0"}, "", 0},
		{"length past the end", []string{"offset", "10", "length", "100"}, "d\n", 10},
		{"offset at the end", []string{"offset", "12"}, "", 12},
		{"offset past the end answers that offset", []string{"offset", "1000"}, "", 1000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := readJSON(t, tab, "/sb/stdout", c.kv...)
			require.Equal(t, http.StatusOK, code)
			assert.Equal(t, map[string]any{"data": c.data, "offset": c.wantOffset}, m)
		})
	}
	for _, kv := range [][]string{{"offset", "-2"}, {"offset", "x"}, {"offset", "1", "length", "-2"}, {"length", "1.5"}} {
		code, _ := readJSON(t, tab, "/sb/stdout", kv...)
		assert.Equal(t, http.StatusBadRequest, code, kv)
	}
	code, _ := readJSON(t, tab, "/sb/missing", "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = readJSON(t, tab, "/sb/sub", "offset", "0")
	assert.Equal(t, http.StatusBadRequest, code, "a directory cannot be read")
	w := get(t, tab.ServeRead, files.ReadPath+"?offset=0")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "Expecting 'path=value' in query.")
}

func TestFilesReadCapsLength(t *testing.T) {
	tab, sb, _ := sandbox(t)
	big := strings.Repeat("x", int(files.MaxReadLength)*2+10)
	require.NoError(t, os.WriteFile(filepath.Join(sb, "big"), []byte(big), 0o644))
	code, m := readJSON(t, tab, "/sb/big", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, m["data"], int(files.MaxReadLength))
	code, m = readJSON(t, tab, "/sb/big", "offset", "0", "length", "999999999")
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, m["data"], int(files.MaxReadLength))

	// READ_FILE's form: the size with every answer, no -1.
	size, data, err := tab.ReadCall("/sb/big", uint64(len(big)-4), nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(big)), size)
	assert.Equal(t, "xxxx", string(data))
	l := uint64(0)
	size, data, err = tab.ReadCall("/sb/big", 0, &l)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(big)), size)
	assert.Empty(t, data)
	size, data, err = tab.ReadCall("/sb/big", 1<<63+5, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(big)), size)
	assert.Empty(t, data)
}

func TestFilesBrowseJSONShape(t *testing.T) {
	tab, sb, _ := sandbox(t)
	mtime := time.Unix(1_700_000_123, 500_000_000)
	require.NoError(t, os.Chtimes(filepath.Join(sb, "stdout"), mtime, mtime))
	w := get(t, tab.ServeBrowse, files.BrowsePath+"?path=/sb/")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var list []map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list, 2)
	for _, e := range list {
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		assert.Equal(t, []string{"gid", "mode", "mtime", "nlink", "path", "size", "uid"}, keys)
	}
	assert.Equal(t, "/sb/stdout", list[0]["path"])
	assert.Equal(t, "-rw-r--r--", list[0]["mode"])
	assert.Equal(t, float64(12), list[0]["size"])
	assert.Equal(t, float64(1_700_000_123), list[0]["mtime"], "whole seconds")
	assert.Equal(t, float64(1), list[0]["nlink"])
	assert.NotEmpty(t, list[0]["uid"])
	assert.NotEmpty(t, list[0]["gid"])
	assert.Equal(t, "/sb/sub", list[1]["path"])
	assert.Equal(t, byte('d'), list[1]["mode"].(string)[0])

	// The operator API's FileInfo: st_mode bits and nanoseconds.
	infos, err := tab.Browse("/sb")
	require.NoError(t, err)
	pb := infos[0].Proto()
	assert.Equal(t, "/sb/stdout", pb.Path)
	assert.Equal(t, uint32(0o100644), pb.GetMode())
	assert.Equal(t, int64(1_700_000_123)*int64(time.Second), pb.GetMtime().Nanoseconds)
	assert.Equal(t, uint64(12), pb.GetSize_())

	// A file lists nothing (Mesos); a missing path is 404; no path is 400.
	w = get(t, tab.ServeBrowse, files.BrowsePath+"?path=/sb/stdout")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, "[]", w.Body.String())
	assert.Equal(t, http.StatusNotFound, get(t, tab.ServeBrowse, files.BrowsePath+"?path=/sb/nope").Code)
	assert.Equal(t, http.StatusNotFound, get(t, tab.ServeBrowse, files.BrowsePath+"?path=/nope").Code)
	assert.Equal(t, http.StatusBadRequest, get(t, tab.ServeBrowse, files.BrowsePath).Code)
}

func TestFilesDownload(t *testing.T) {
	tab, sb, _ := sandbox(t)
	require.NoError(t, os.WriteFile(filepath.Join(sb, "page.html"), []byte("<p>"), 0o644))
	w := get(t, tab.ServeDownload, files.DownloadPath+"?path=/sb/stdout")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "hello world\n", w.Body.String())
	assert.Equal(t, "attachment; filename=stdout", w.Header().Get("Content-Disposition"))
	assert.Equal(t, "application/octet-stream", w.Header().Get("Content-Type"))
	w = get(t, tab.ServeDownload, files.DownloadPath+"?path=/sb/page.html")
	assert.Contains(t, w.Header().Get("Content-Type"), "text/html")
	assert.Equal(t, http.StatusBadRequest, get(t, tab.ServeDownload, files.DownloadPath+"?path=/sb/sub").Code)
	assert.Equal(t, http.StatusNotFound, get(t, tab.ServeDownload, files.DownloadPath+"?path=/sb/none").Code)
	assert.Equal(t, http.StatusBadRequest, get(t, tab.ServeDownload, files.DownloadPath).Code)
}

func TestFilesAttachedFileAndDebug(t *testing.T) {
	tab, sb, secret := sandbox(t)
	require.NoError(t, tab.Attach(secret, "/slave/log/"))
	code, m := readJSON(t, tab, "/slave/log", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "top secret", m["data"])
	code, _ = readJSON(t, tab, "/slave/log/x", "offset", "0")
	assert.Equal(t, http.StatusNotFound, code, "nothing is below an attached file")

	w := get(t, tab.ServeDebug, files.DebugPath)
	require.Equal(t, http.StatusOK, w.Code)
	var dbg map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &dbg))
	assert.Equal(t, map[string]any{"/sb": sb, "/slave/log": secret}, dbg)

	w = get(t, tab.ServeDebug, files.DebugPath+"?jsonp=cb.x")
	assert.Equal(t, "text/javascript", w.Header().Get("Content-Type"))
	assert.True(t, strings.HasPrefix(w.Body.String(), "cb.x({"), w.Body.String())
	assert.Equal(t, http.StatusBadRequest, get(t, tab.ServeDebug, files.DebugPath+"?jsonp=alert(1)//").Code)

	// Detaching, by virtual path or by real path.
	require.NoError(t, tab.Attach(sb, "/latest"))
	tab.Detach("/slave/log")
	assert.False(t, tab.Covers("/slave/log"))
	assert.True(t, tab.Covers("/latest/stdout"))
	tab.DetachReal(sb)
	assert.Equal(t, 0, tab.Len())
	code, _ = readJSON(t, tab, "/sb/stdout", "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestFilesReattachMovesVirtualPath(t *testing.T) {
	tab, sb, _ := sandbox(t)
	other := t.TempDir()
	require.NoError(t, tab.Attach(sb, "/runs/latest"))
	require.NoError(t, tab.Attach(other, "/runs/latest"))
	// Removing the first directory leaves "latest" with the second.
	tab.DetachReal(sb)
	assert.Equal(t, map[string]string{"/runs/latest": other}, tab.Debug())
}

func TestFilesNotYetMadeDirectory(t *testing.T) {
	tab := &files.Table{}
	dir := filepath.Join(t.TempDir(), "later")
	require.NoError(t, tab.Attach(dir, "/later"))
	code, _ := readJSON(t, tab, "/later/stdout", "offset", "0")
	assert.Equal(t, http.StatusNotFound, code)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stdout"), []byte("now"), 0o644))
	code, m := readJSON(t, tab, "/later/stdout", "offset", "0")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "now", m["data"])
}

// FuzzFilesRequest: no query makes the handlers panic or leave the
// sandbox.
func FuzzFilesRequest(f *testing.F) {
	f.Add("/sb/stdout", "0", "5")
	f.Add("/sb/../secret", "-1", "")
	f.Add("/sb/\x00", "99999999999999999999", "-1")
	f.Fuzz(func(t *testing.T, p, offset, length string) {
		tab, _, _ := sandbox(t)
		q := url.Values{"path": {p}, "offset": {offset}, "length": {length}}.Encode()
		for _, h := range []http.HandlerFunc{tab.ServeRead, tab.ServeBrowse, tab.ServeDownload} {
			w := get(t, h, "/files/x?"+q)
			assert.NotContains(t, w.Body.String(), "top secret")
		}
	})
}
