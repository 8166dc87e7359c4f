package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/files"
	"github.com/apronhq/apron/internal/httpapi"
)

// The master's files API: GET /files/browse, /files/read,
// /files/download and /files/debug, and the operator calls LIST_FILES and
// READ_FILE. A Mesos master serves there only the files it attached itself
// (its log, as /master/log); so does Apron's, with AttachFile. Apron also
// reaches the sandboxes: a request the master's own files do not cover is
// forwarded to the agent that holds the path, so a user reads any task's
// output through the master. The agent is
//
//   - the one the agent_id= query parameter names (an Apron addition; for
//     Mesos's virtual paths, /frameworks/<fw>/executors/<ex>/runs/latest,
//     which do not say where the sandbox is), or else
//   - the registered agent whose ID follows an "agents" or "slaves"
//     component of the path, as in a sandbox's real path
//     <work_dir>/agents/<agent>/frameworks/... (Mesos: .../slaves/<agent>/...),
//     which clients take from the executor's "directory".
//
// The request goes, as it came (less agent_id), to the agent's own files
// API or operator API at http://<AgentInfo.hostname>:<AgentInfo.port>,
// and its answer comes back as the agent gave it. An agent ID the master
// does not know is 404; an agent that cannot be reached is 503, one that
// does not answer within FilesProxyTimeout 504. A standby master
// redirects what it would forward to the leader (307), which knows the
// agents. The forwarding is I/O of the shell: the core is only asked which
// agents it knows.

// FilesProxyTimeout bounds a request the master forwards to an agent: the
// whole exchange for a read, a listing or an operator call; the wait for
// the answer's headers for a download, whose body may be long.
const FilesProxyTimeout = 30 * time.Second

// filesAgentParam names the agent a files request is for.
const filesAgentParam = "agent_id"

// masterFiles is the master's part of the files API: nothing attached at
// first, and the client New gives it.
type masterFiles struct {
	table  files.Table
	client *http.Client
}

// newFilesClient is a master's client for forwarding to agents, its own
// (its connections are the master's): connections and answers' headers
// are bounded, redirects never followed to another host.
func newFilesClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: FilesProxyTimeout}).DialContext,
			ResponseHeaderTimeout: FilesProxyTimeout,
			TLSHandshakeTimeout:   FilesProxyTimeout,
			TLSClientConfig:       tlsConfig,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (f *masterFiles) httpClient() *http.Client { return f.client }

// AttachFile makes the file or directory at real (absolute) readable
// through the master's files API as virtual, as a Mesos master attaches
// its log as /master/log. A directory is readable below, never beyond it.
func (m *Master) AttachFile(real, virtual string) error {
	return m.files.table.Attach(real, virtual)
}

// DetachFile undoes AttachFile.
func (m *Master) DetachFile(virtual string) { m.files.table.Detach(virtual) }

// routeFiles serves the files endpoints on mux.
// Each is wrapped in wrap (authentication: the master's read-only realm,
// as Mesos's files endpoints).
func (m *Master) routeFiles(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle(files.BrowsePath, wrap(m.serveFiles(m.files.table.ServeBrowse)))
	mux.Handle(files.ReadPath, wrap(m.serveFiles(m.files.table.ServeRead)))
	mux.Handle(files.DownloadPath, wrap(m.serveFiles(m.files.table.ServeDownload)))
	mux.Handle(files.DebugPath, wrap(m.authorizedFor(auth.GetEndpoint, &auth.Object{Value: "/files/debug"},
		m.serveFiles(m.files.table.ServeDebug))))
}

// serveFiles answers a files request from the master's own table, or
// forwards it to the agent it is for.
func (m *Master) serveFiles(local http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		named := q.Get(filesAgentParam)
		p := q.Get("path")
		var candidates []string
		switch {
		case named != "":
			candidates = []string{named}
		case p == "" || m.files.table.Covers(p):
			local(w, r)
			return
		default:
			candidates = agentIDsInPath(p)
		}
		if len(candidates) == 0 {
			local(w, r)
			return
		}
		m.leaderOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			base, err := m.agentFilesBase(r.Context(), candidates)
			switch {
			case errors.Is(err, errUnknownFilesAgent) && named == "":
				local(w, r) // the path only looked like a sandbox's
			case errors.Is(err, errUnknownFilesAgent):
				httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, "%v", err))
			case err != nil:
				httpapi.WriteError(w, httpError(err))
			default:
				if err := m.authorizeSandbox(r.Context(), p); err != nil {
					httpapi.WriteError(w, httpError(err)) // auth_view.go
					return
				}
				m.forwardFiles(w, r, base)
			}
		})).ServeHTTP(w, r)
	}
}

// forwardFiles sends the request to the agent at base and copies its
// answer back.
func (m *Master) forwardFiles(w http.ResponseWriter, r *http.Request, base string) {
	q := r.URL.Query()
	q.Del(filesAgentParam)
	ctx := r.Context()
	if r.URL.Path != files.DownloadPath {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, FilesProxyTimeout)
		defer cancel()
	}
	method := http.MethodGet
	if r.Method == http.MethodHead {
		method = http.MethodHead
	}
	req, err := http.NewRequestWithContext(ctx, method, base+r.URL.Path+"?"+q.Encode(), nil)
	if err != nil {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if c := m.cfg.AgentCredential; c != nil {
		req.SetBasicAuth(c.Principal, c.Secret)
	}
	for _, h := range []string{"Range", "If-Range", "If-Modified-Since", "If-None-Match"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := m.files.httpClient().Do(req)
	if err != nil {
		httpapi.WriteError(w, filesProxyError(base, err))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Disposition", "Content-Range",
		"Accept-Ranges", "Last-Modified", "Etag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// errUnknownFilesAgent: no registered agent has the ID a files request
// names.
var errUnknownFilesAgent = errors.New("master: unknown agent")

// agentFilesBase is the URL of the first of ids that names a registered
// agent: http://<hostname>:<port> (https with Config.AgentTLS).
func (m *Master) agentFilesBase(ctx context.Context, ids []string) (string, error) {
	var (
		info  mesospb.AgentInfo
		found bool
	)
	if err := m.do(ctx, func(c *core) {
		for _, id := range ids {
			if a := c.agents[id]; a != nil {
				info, found = a.info, true
				return
			}
		}
	}); err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w %q", errUnknownFilesAgent, ids[0])
	}
	scheme := "http"
	if m.cfg.AgentTLS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(info.Hostname, strconv.Itoa(int(info.GetPort()))), nil
}

// agentIDsInPath are the components of p that follow an "agents" or
// "slaves" one: the agent IDs a sandbox's real path may hold (an ID the
// agent escaped for its directory's name, unescaped too).
func agentIDsInPath(p string) []string {
	parts := strings.Split(p, "/")
	var out []string
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] != "agents" && parts[i] != "slaves" || parts[i+1] == "" {
			continue
		}
		out = append(out, parts[i+1])
		if u, err := url.PathUnescape(parts[i+1]); err == nil && u != parts[i+1] {
			out = append(out, u)
		}
	}
	return out
}

// filesProxyError is the answer to a forward that got no answer: 504
// when the agent did not answer in time, 503 when it could not be
// reached.
func filesProxyError(base string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return httpapi.Errorf(http.StatusGatewayTimeout, "the agent at %s did not answer in time: %v", base, err)
	}
	return httpapi.Errorf(http.StatusServiceUnavailable, "the agent at %s cannot be reached: %v", base, err)
}

// filesCall answers LIST_FILES and READ_FILE, from the master's own files
// or, for a path they do not cover that names a registered agent, from
// that agent's operator API.
func (m *Master) filesCall(ctx context.Context, call *masterpb.Call) (*masterpb.Response, error) {
	var p string
	switch call.GetType() {
	case masterpb.Call_LIST_FILES:
		if call.ListFiles == nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'list_files' to be present")
		}
		p = call.ListFiles.Path
	case masterpb.Call_READ_FILE:
		if call.ReadFile == nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'read_file' to be present")
		}
		p = call.ReadFile.Path
	default:
		return nil, httpapi.Errorf(http.StatusBadRequest, "%s is not a files call", call.GetType())
	}
	if !m.files.table.Covers(p) {
		if ids := agentIDsInPath(p); len(ids) > 0 {
			base, err := m.agentFilesBase(ctx, ids)
			if err == nil {
				if err := m.authorizeSandbox(ctx, p); err != nil {
					return nil, err
				}
				return m.forwardFilesCall(ctx, base, call)
			}
			if !errors.Is(err, errUnknownFilesAgent) {
				return nil, err
			}
		}
	}
	return m.localFilesCall(call)
}

// localFilesCall answers a files call from the master's own table.
func (m *Master) localFilesCall(call *masterpb.Call) (*masterpb.Response, error) {
	if call.GetType() == masterpb.Call_LIST_FILES {
		infos, err := m.files.table.Browse(call.ListFiles.Path)
		if err != nil {
			return nil, files.HTTPError(err)
		}
		out := &masterpb.Response_ListFiles{FileInfos: make([]mesospb.FileInfo, 0, len(infos))}
		for _, i := range infos {
			out.FileInfos = append(out.FileInfos, i.Proto())
		}
		return &masterpb.Response{Type: masterpb.Response_LIST_FILES.Enum(), ListFiles: out}, nil
	}
	rf := call.ReadFile
	size, data, err := m.files.table.ReadCall(rf.Path, rf.Offset, rf.Length)
	if err != nil {
		return nil, files.HTTPError(err)
	}
	if data == nil {
		data = []byte{}
	}
	return &masterpb.Response{Type: masterpb.Response_READ_FILE.Enum(), ReadFile: &masterpb.Response_ReadFile{Size_: size, Data: data}}, nil
}

// forwardFilesCall makes the call of the agent at base, over its operator
// API, and answers what it answered.
func (m *Master) forwardFilesCall(ctx context.Context, base string, call *masterpb.Call) (*masterpb.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, FilesProxyTimeout)
	defer cancel()
	ac := &agentpb.Call{}
	if call.GetType() == masterpb.Call_LIST_FILES {
		ac.Type = agentpb.Call_LIST_FILES.Enum()
		ac.ListFiles = &agentpb.Call_ListFiles{Path: call.ListFiles.Path}
	} else {
		ac.Type = agentpb.Call_READ_FILE.Enum()
		ac.ReadFile = &agentpb.Call_ReadFile{Path: call.ReadFile.Path, Offset: call.ReadFile.Offset, Length: call.ReadFile.Length}
	}
	client := &httpapi.Client{HTTP: m.files.httpClient(), Codec: codec.Protobuf}
	var resp agentpb.Response
	if err := client.CallInto(ctx, base+"/api/v1", "", ac, &resp); err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) {
			return nil, httpapi.Errorf(he.Status, "%s", he.Message)
		}
		return nil, filesProxyError(base, err)
	}
	switch {
	case call.GetType() == masterpb.Call_LIST_FILES && resp.ListFiles != nil:
		return &masterpb.Response{Type: masterpb.Response_LIST_FILES.Enum(),
			ListFiles: &masterpb.Response_ListFiles{FileInfos: resp.ListFiles.FileInfos}}, nil
	case call.GetType() == masterpb.Call_READ_FILE && resp.ReadFile != nil:
		return &masterpb.Response{Type: masterpb.Response_READ_FILE.Enum(),
			ReadFile: &masterpb.Response_ReadFile{Size_: resp.ReadFile.Size_, Data: resp.ReadFile.Data}}, nil
	}
	return nil, httpapi.Errorf(http.StatusBadGateway, "the agent at %s answered %s with %s", base, call.GetType(), fmt.Sprint(resp.GetType()))
}
