package agent

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/files"
	"github.com/apronhq/apron/internal/httpapi"
)

// The agent's files API, as Mesos's agent serves it: GET /files/browse,
// /files/read, /files/download and /files/debug, and the operator calls
// LIST_FILES and READ_FILE, read the sandboxes of the executor runs the
// agent knows (and whatever the embedder attached with AttachFile, such
// as Mesos's /slave/log). See internal/files for the paths' confinement
// and the reads' semantics.
//
// Each executor run's sandbox is attached when the run is created (or
// recovered), under three paths, as Mesos's agent does
// (Framework::addExecutor):
//
//   - its real directory, <work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>,
//     which clients take from the executor's "directory";
//   - <work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/latest;
//   - /frameworks/<fw>/executors/<ex>/runs/latest, which hides the work
//     directory;
//
// the "latest" paths name the newest run of the executor ID. Mesos's work
// directory says "slaves" where Apron's says "agents". The paths of a run
// are detached when its sandbox is garbage collected (gc.go), so a
// finished task's output stays readable for Config.GCDelay.

// AttachFile makes the file or directory at real (absolute) readable
// through the files API as virtual, as Mesos's agent attaches its log as
// /slave/log. A directory is readable below, never beyond it.
func (a *Agent) AttachFile(real, virtual string) error {
	return a.files.Attach(real, virtual)
}

// DetachFile undoes AttachFile.
func (a *Agent) DetachFile(virtual string) { a.files.Detach(virtual) }

// routeFiles serves the files endpoints on mux, in the read-only
// family, each authorized by the path it reads (auth.go).
func (a *Agent) routeFiles(mux *http.ServeMux) {
	mux.Handle(files.BrowsePath, a.readOnly(a.filesAuthorized(a.files.ServeBrowse)))
	mux.Handle(files.ReadPath, a.readOnly(a.filesAuthorized(a.files.ServeRead)))
	mux.Handle(files.DownloadPath, a.readOnly(a.filesAuthorized(a.files.ServeDownload)))
	mux.Handle(files.DebugPath, a.readOnly(a.authorizedFor(auth.GetEndpoint, &auth.Object{Value: files.DebugPath},
		http.HandlerFunc(a.files.ServeDebug))))
}

// attachSandbox attaches an executor run's sandbox under its paths; it
// runs on the loop when the run is created or recovered. The "latest"
// paths go to the run that holds the executor ID.
func (a *Agent) attachSandbox(e *executorRec) {
	if err := a.files.Attach(e.Sandbox(), e.Sandbox()); err != nil {
		a.log.Warn("agent: attaching a sandbox to the files API", "path", e.Sandbox(), "err", err)
		return
	}
	if !e.Holder() {
		return
	}
	latest := filepath.Join(filepath.Dir(e.Sandbox()), "latest")
	virtual := "/frameworks/" + pathSafe(e.FrameworkID()) + "/executors/" + pathSafe(e.ID()) + "/runs/latest"
	for _, v := range []string{latest, virtual} {
		if err := a.files.Attach(e.Sandbox(), v); err != nil {
			a.log.Warn("agent: attaching a sandbox to the files API", "path", e.Sandbox(), "virtual", v, "err", err)
		}
	}
}

// detachRemoved detaches the paths of a sandbox the collector removed
// (err nil), as Mesos's agent detaches them once the sandbox is garbage
// collected.
func (a *Agent) detachRemoved(path string, err error) {
	if err == nil {
		a.files.DetachReal(path)
	}
}

// listFiles is the operator call LIST_FILES.
func (a *Agent) listFiles(_ context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	if call.ListFiles == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'list_files' to be present")
	}
	infos, err := a.files.Browse(call.ListFiles.Path)
	if err != nil {
		return nil, files.HTTPError(err)
	}
	out := &agentpb.Response_ListFiles{FileInfos: make([]mesospb.FileInfo, 0, len(infos))}
	for _, i := range infos {
		out.FileInfos = append(out.FileInfos, i.Proto())
	}
	return &agentpb.Response{Type: agentpb.Response_LIST_FILES.Enum(), ListFiles: out}, nil
}

// readFile is the operator call READ_FILE.
func (a *Agent) readFile(_ context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	rf := call.ReadFile
	if rf == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'read_file' to be present")
	}
	size, data, err := a.files.ReadCall(rf.Path, rf.Offset, rf.Length)
	if err != nil {
		return nil, files.HTTPError(err)
	}
	if data == nil {
		data = []byte{}
	}
	return &agentpb.Response{Type: agentpb.Response_READ_FILE.Enum(), ReadFile: &agentpb.Response_ReadFile{Size_: size, Data: data}}, nil
}
