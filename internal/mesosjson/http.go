package mesosjson

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/apronhq/apron/internal/httpapi"
)

// Serve answers a model endpoint: GET or HEAD only (405 otherwise), then
// doc's document as JSON, or, for a ?jsonp= request, as the call of the
// named function with it (see Write). An error of doc is written with
// httpapi.WriteError, so it should carry its status (an *httpapi.Error).
func Serve(w http.ResponseWriter, r *http.Request, doc func() (any, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'GET' request, received '%s'", r.Method))
		return
	}
	callback, err := Callback(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	d, err := doc()
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	Write(w, r, callback, d)
}

// jsonpName is what Apron takes as a JSONP callback: a JavaScript name
// path ("angular.callbacks._0"). Mesos echoes any text; Apron refuses
// others (400), since the answer is script a browser runs.
var jsonpName = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)

// Callback is the request's jsonp query parameter, "" when it has none,
// or a 400 error when it does not name a JavaScript function.
func Callback(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("jsonp") {
		return "", nil
	}
	name := q.Get("jsonp")
	if !jsonpName.MatchString(name) || len(name) > 256 {
		return "", httpapi.Errorf(http.StatusBadRequest, "'jsonp' must name a JavaScript function")
	}
	return name, nil
}

// Write answers 200 with d as JSON (application/json), or, with a
// callback, as "callback(<json>)" (text/javascript), as libprocess's
// OK(JSON, jsonp) writes it. A HEAD request gets the headers only.
func Write(w http.ResponseWriter, r *http.Request, callback string, d any) {
	b, err := json.Marshal(d)
	if err != nil {
		httpapi.WriteError(w, fmt.Errorf("encoding %s: %w", r.URL.Path, err))
		return
	}
	ct := "application/json"
	if callback != "" {
		b = append(append([]byte(callback+"("), b...), ')')
		ct = "text/javascript"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// ApronVersion is the version of Apron itself, which /version reports
// beside the Mesos version (see Version).
const ApronVersion = "0.1.0"

// Build is the version and build Mesos writes first in /version and in
// the master's and agent's /state (src/version/version.hpp,
// src/common/build.cpp). Go records no build time or user: build_date and
// build_time are the time of the commit built, when the binary records
// one, and build_user is empty, as Mesos leaves it when BUILD_USER is
// undefined; git_sha is the commit, when recorded.
type Build struct {
	Version   string  `json:"version"`
	GitSHA    *string `json:"git_sha,omitempty"`
	BuildDate string  `json:"build_date"`
	BuildTime Double  `json:"build_time"`
	BuildUser string  `json:"build_user"`
}

// BuildOf is Build for the Mesos version version (v1.MesosVersion unless
// configured), which clients parse as a Mesos version.
func BuildOf(version string) Build {
	b := readBuild()
	b.Version = version
	return b
}

// Fields is b as the first fields of a document written as an Object.
func (b Build) Fields() Object {
	o := Object{{"version", b.Version}}
	if b.GitSHA != nil {
		o.Set("git_sha", *b.GitSHA)
	}
	o.Set("build_date", b.BuildDate)
	o.Set("build_time", b.BuildTime)
	o.Set("build_user", b.BuildUser)
	return o
}

var readBuild = sync.OnceValue(func() Build {
	var b Build
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			sha := s.Value
			b.GitSHA = &sha
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				b.BuildDate, b.BuildTime = t.UTC().Format(time.DateTime), Double(t.Unix())
			}
		}
	}
	return b
})

// Version is the body of GET /version: Build, and Apron's own version.
type Version struct {
	Build
	ApronVersion string `json:"apron_version"`
}

// VersionOf is Version for the Mesos version version.
func VersionOf(version string) Version {
	return Version{Build: BuildOf(version), ApronVersion: ApronVersion}
}
