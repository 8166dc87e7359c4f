package files

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/apronhq/apron/internal/httpapi"
)

// Paths of the files endpoints, on a master and on an agent, as Mesos's.
const (
	BrowsePath   = "/files/browse"
	ReadPath     = "/files/read"
	DownloadPath = "/files/download"
	DebugPath    = "/files/debug"
)

// Status is the HTTP status Mesos answers err with: 404 for ErrNotFound,
// 400 for ErrInvalid, the code of an *httpapi.Error, 500 otherwise.
func Status(err error) int {
	var he *httpapi.Error
	switch {
	case errors.As(err, &he):
		return he.Status
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// HTTPError is err as an *httpapi.Error with its Status.
func HTTPError(err error) *httpapi.Error {
	var he *httpapi.Error
	if errors.As(err, &he) {
		return he
	}
	return httpapi.Errorf(Status(err), "%v", err)
}

// Register serves t's four endpoints on mux.
func (t *Table) Register(mux *http.ServeMux) {
	mux.HandleFunc(BrowsePath, t.ServeBrowse)
	mux.HandleFunc(ReadPath, t.ServeRead)
	mux.HandleFunc(DownloadPath, t.ServeDownload)
	mux.HandleFunc(DebugPath, t.ServeDebug)
}

// pathParam is the request's path= parameter, which every endpoint but
// debug requires.
func pathParam(q url.Values) (string, error) {
	p := q.Get("path")
	if p == "" {
		return "", httpapi.Errorf(http.StatusBadRequest, "Expecting 'path=value' in query.")
	}
	return p, nil
}

// ServeBrowse is /files/browse?path=...: a JSON array of the directory's
// entries, each {"gid","mode","mtime","nlink","path","size","uid"}.
func (t *Table) ServeBrowse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := pathParam(q)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	infos, err := t.Browse(p)
	if err != nil {
		httpapi.WriteError(w, HTTPError(err))
		return
	}
	out := make([]browseEntry, len(infos))
	for i, info := range infos {
		out[i] = info.browseEntry()
	}
	writeJSON(w, q, out)
}

// ReadParams are /files/read's offset and length, as Mesos parses them:
// no offset, or -1, asks for the file's size (a read of nothing that
// answers the size as its offset); no length, or -1, reads to the end (up
// to MaxReadLength); anything below -1 or not a number is 400.
type ReadParams struct {
	Offset int64 // -1: answer the size
	Length int64 // -1: to the end
}

// ParseReadParams reads offset= and length= from q.
func ParseReadParams(q url.Values) (ReadParams, error) {
	rp := ReadParams{Offset: -1, Length: -1}
	if s, ok := q["offset"]; ok {
		v, err := strconv.ParseInt(first(s), 10, 64)
		if err != nil {
			return rp, httpapi.Errorf(http.StatusBadRequest, "Failed to parse offset: %v.", numError(err))
		}
		if v < -1 {
			return rp, httpapi.Errorf(http.StatusBadRequest, "Negative offset provided: %d.", v)
		}
		rp.Offset = v
	}
	if s, ok := q["length"]; ok {
		v, err := strconv.ParseInt(first(s), 10, 64)
		if err != nil {
			return rp, httpapi.Errorf(http.StatusBadRequest, "Failed to parse length: %v.", numError(err))
		}
		if v < -1 {
			return rp, httpapi.Errorf(http.StatusBadRequest, "Negative length provided: %d.", v)
		}
		rp.Length = v
	}
	return rp, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func numError(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return fmt.Errorf("%q: %w", ne.Num, ne.Err)
	}
	return err
}

// readAnswer is /files/read's JSON object.
type readAnswer struct {
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
}

// ServeRead is /files/read?path=...&offset=...&length=...: {"data":
// "...", "offset": N}, where offset is the one asked for, or the file's
// size when -1 (or none) was.
func (t *Table) ServeRead(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := pathParam(q)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	rp, err := ParseReadParams(q)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	offset, length := rp.Offset, rp.Length
	if offset == -1 {
		offset, length = 0, 0
	}
	size, data, err := t.Read(p, offset, length)
	if err != nil {
		httpapi.WriteError(w, HTTPError(err))
		return
	}
	ans := readAnswer{Data: string(data), Offset: rp.Offset}
	if rp.Offset == -1 {
		ans.Offset = size
	}
	writeJSON(w, q, ans)
}

// ServeDownload is /files/download?path=...: the file itself, with
// Content-Disposition "attachment; filename=<name>" and a Content-Type by
// its extension (application/octet-stream by default), as Mesos's. Ranges
// are served too.
func (t *Table) ServeDownload(w http.ResponseWriter, r *http.Request) {
	p, err := pathParam(r.URL.Query())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	f, fi, err := t.Open(p)
	if err != nil {
		httpapi.WriteError(w, HTTPError(err))
		return
	}
	defer f.Close()
	name := filepath.Base(f.Name())
	ct := "application/octet-stream"
	if ext := filepath.Ext(name); ext != "" {
		if m := mime.TypeByExtension(ext); m != "" {
			ct = m
		}
	}
	w.Header().Set("Content-Type", ct)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if disp == "" {
		disp = "attachment"
	}
	w.Header().Set("Content-Disposition", disp)
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// ServeDebug is /files/debug: the table as a JSON object, virtual path ->
// real path.
func (t *Table) ServeDebug(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r.URL.Query(), t.Debug())
}

// writeJSON answers v as JSON (keys in order, no HTML escaping, as
// Mesos's), or as JavaScript calling the jsonp= callback.
func writeJSON(w http.ResponseWriter, q url.Values, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		httpapi.WriteError(w, fmt.Errorf("files: encoding the answer: %w", err))
		return
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	ct := "application/json"
	if cb, ok := q["jsonp"]; ok {
		name := first(cb)
		if !validCallback(name) {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Invalid 'jsonp' callback name."))
			return
		}
		ct = "text/javascript"
		body = append(append([]byte(name+"("), body...), ')')
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// validCallback admits a JavaScript identifier path, so a callback name
// cannot inject script into the answer.
func validCallback(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '$', c == '.':
		default:
			return false
		}
	}
	return true
}
