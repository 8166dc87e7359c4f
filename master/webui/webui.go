// Package webui is the master's web UI: a few plain HTML, CSS and
// JavaScript modules, embedded in the binary, that a browser loads from
// the master at "/" and that read the cluster through the same APIs any
// client uses, as Mesos's web UI does (src/webui). Its pages (hash
// routes, so any view can be linked):
//
//	#/                       overview: agents, frameworks, tasks by state, cpus/mem/disk
//	                         used of total, plots of allocation and task rates over the
//	                         last minutes (sampled by the page while it is open)
//	#/agents, #/agents/ID    agents; one agent's resources, attributes, reservations, tasks
//	#/frameworks[/ID]        frameworks; one framework's roles, resources, offers, tasks
//	#/tasks?state=&framework=&agent=&q=
//	                         every task, filtered by state, framework, agent, ID or name
//	#/tasks/FRAMEWORK/TASK   one task, with links to its sandbox, stdout and stderr
//	#/roles                  weights, quota guarantees and limits, consumption
//	#/maintenance            maintenance schedule, machines draining or down, agents
//	                         draining or deactivated
//	#/sandbox?agent=&path=&file=
//	                         a sandbox's files: list, view, download, and tail a file live
//
// Where the data comes from:
//
//   - the operator API, POST /api/v1: a SUBSCRIBE stream (RecordIO-framed
//     JSON events) keeps the agents, frameworks and tasks live, reopened
//     with backoff when it ends; what has no event (offers, reservations,
//     drain states, metrics, maintenance) is read with GET_FRAMEWORKS,
//     GET_AGENTS, GET_METRICS, GET_MAINTENANCE_SCHEDULE and
//     GET_MAINTENANCE_STATUS every few seconds, and only while a page that
//     shows it is open;
//   - GET /roles for the roles' weights, quota and consumption;
//   - the files API, /files/browse, /files/read (polled with offsets to
//     tail a file, as Mesos's UI does) and /files/download, with
//     agent_id=: the master forwards them to the agent holding a sandbox.
//
// The page keeps the state in Maps keyed by ID, updated event by event
// with its aggregates, and renders only the visible rows of a list, at
// most a few times a second; see TestWebUIBigState in examples for its
// numbers at 10,000 agents and 100,000 tasks.
//
// There is no build step, no CDN and no package manager: the files in
// assets/ are what the browser runs (ES modules). The handler serves
// index.html at "/" and the assets under "/ui/"; it holds no state but
// the embedded files. Authentication and the leader redirect are the
// master's (it mounts the handler in its read-only family), so a browser
// that opens a standby master's "/" is sent to the leader's, and a page
// whose master stops leading reloads itself there.
package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is the path under which the handler serves the assets.
const AssetPrefix = "/ui/"

// Assets lists the embedded files, by their paths under AssetPrefix.
func Assets() []string {
	var names []string
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, "assets/"))
		}
		return nil
	})
	return names
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentType is set from the name's extension by a table of our own,
// not the machine's MIME tables (/etc/mime.types may lack .js or map it
// to something a browser refuses to run as a module).
func contentType(name string) string {
	switch ext := path.Ext(name); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

// Handler serves the UI: GET / is index.html, GET /ui/<name> an asset;
// anything else is 404 and any other method 405. Responses carry an ETag
// (so a browser revalidates instead of downloading again) and a Content
// Security Policy that lets the page reach its own origin only.
func Handler() http.Handler {
	files := map[string]*asset{}
	for _, name := range Assets() {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(b)
		files[name] = &asset{body: b, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var name string
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			name = "index.html"
		case strings.HasPrefix(p, AssetPrefix):
			name = strings.TrimPrefix(p, AssetPrefix)
		}
		a, ok := files[name]
		if !ok || name == "" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
		if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(a.body)
		}
	})
}
