package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/master/webui"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// The files the page needs are embedded: a binary built with go build
// alone serves the whole UI.
func TestWebUIAssetsEmbedded(t *testing.T) {
	names := webui.Assets()
	for _, want := range []string{"index.html", "app.js", "api.js", "store.js", "ui.js", "app.css", "favicon.svg"} {
		assert.Contains(t, names, want)
	}
}

func TestWebUIIndexAtRoot(t *testing.T) {
	h := webui.Handler()
	for _, p := range []string{"/", "/index.html"} {
		resp := get(t, h, http.MethodGet, p)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
		b := body(t, resp)
		assert.Contains(t, b, `<meta name="viewport"`, "usable on a phone")
		assert.Contains(t, b, `<script type="module" src="ui/app.js">`, "assets are relative, so a proxy may mount the master under a prefix")
	}
}

func TestWebUIAssetContentTypes(t *testing.T) {
	h := webui.Handler()
	for path, want := range map[string]string{
		"/ui/app.js":      "text/javascript; charset=utf-8",
		"/ui/store.js":    "text/javascript; charset=utf-8",
		"/ui/app.css":     "text/css; charset=utf-8",
		"/ui/favicon.svg": "image/svg+xml",
	} {
		resp := get(t, h, http.MethodGet, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, want, resp.Header.Get("Content-Type"), path)
		assert.NotEmpty(t, body(t, resp), path)
	}
}

// Every module an asset imports is embedded too (a missing one would
// break the page in the browser, not in go build).
func TestWebUIImportsResolve(t *testing.T) {
	h := webui.Handler()
	for _, name := range webui.Assets() {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		src := body(t, get(t, h, http.MethodGet, "/ui/"+name))
		for _, line := range strings.Split(src, "\n") {
			i := strings.Index(line, `from "./`)
			if !strings.HasPrefix(line, "import") || i < 0 {
				continue
			}
			dep := line[i+len(`from "./`):]
			dep = dep[:strings.Index(dep, `"`)]
			assert.Contains(t, webui.Assets(), dep, "%s imports %s", name, dep)
		}
	}
}

func TestWebUIUnknownIs404(t *testing.T) {
	h := webui.Handler()
	for _, p := range []string{"/ui/nope.js", "/ui/", "/ui/../webui.go", "/nope", "/assets/app.js"} {
		assert.Equal(t, http.StatusNotFound, get(t, h, http.MethodGet, p).StatusCode, p)
	}
}

func TestWebUIMethodsAndRevalidation(t *testing.T) {
	h := webui.Handler()
	resp := get(t, h, http.MethodPost, "/")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))

	head := get(t, h, http.MethodHead, "/ui/app.js")
	assert.Equal(t, http.StatusOK, head.StatusCode)
	assert.Empty(t, body(t, head))
	etag := head.Header.Get("ETag")
	require.NotEmpty(t, etag)
	assert.Equal(t, http.StatusNotModified, get(t, h, http.MethodGet, "/ui/app.js", "If-None-Match", etag).StatusCode)
	assert.Equal(t, http.StatusOK, get(t, h, http.MethodGet, "/ui/app.js", "If-None-Match", `"other"`).StatusCode)
}
