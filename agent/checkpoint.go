package agent

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/recordio"
)

// store is the agent's checkpoint.Store: its checkpoint directory,
// <work_dir>/meta:
//
//	agent_id                  the agent's ID
//	resources.pb              CHECKPOINT_RESOURCES (internal Event.CheckpointResources)
//	frameworks/<fw>.pb        FrameworkInfo of each framework with tasks here
//	tasks/<fw>/<task>.log     the task and its status update stream: RecordIO records,
//	                          'T' + JSON taskCheckpoint (the task, its group, its executor run),
//	                          'U' + internal Call.StatusUpdate, 'A' + the acknowledged uuid
//
// One file per task keeps the work of a task's life to one create, a few
// appends and one unlink: directory creation and removal are what file
// systems make slow, and the loop does this I/O. Files are replaced
// atomically (written aside, then renamed) or appended to; a torn last
// record of a log, left by a crash, is cut off when the log is read.
// Nothing is fsynced: checkpoints matter across agent restarts, not
// machine reboots, after which no task survives anyway.
//
// A task's log is appended to several times in its life (the task, each
// status update, each acknowledgement), so the store keeps it open from
// the first append until removeTask, wipe or close: one open and one close
// per task instead of one per record. At most maxOpen logs stay open (the
// least recently written is closed past that, and opened again if it is
// written again), so thousands of live tasks do not use up the agent's
// file descriptors.
//
// Creating a file costs several times what renaming one does, so the log
// of a removed task is recycled when it is open: renamed into
// <dir>/spare (which removes it from tasks/ as an unlink would), truncated,
// and renamed into place, never over an existing file, as the next new
// task's log. Spares are never read; a restarted agent's store empties
// the spare directory before using it.
type store struct {
	dir string
	// maxOpen bounds the open task logs; <= 0 means defaultMaxOpenLogs.
	maxOpen int

	mu   sync.Mutex
	open map[string]*list.Element // by path; values are *openLog
	lru  list.List                // front: most recently written

	spares     []openLog // truncated logs of removed tasks, open, in spare/
	spareSeq   int       // names the spares
	spareReady bool      // spare/ was emptied and made by this store
}

// maxSpareLogs bounds the recycled logs kept open for reuse.
const maxSpareLogs = 64

// defaultMaxOpenLogs is the number of task logs a store keeps open.
const defaultMaxOpenLogs = 1024

type openLog struct {
	path string
	f    *os.File
}

// pathSafe turns an ID into one path element: IDs Mesos accepts are kept
// as they are (the sandbox paths are Mesos's); others are escaped.
func pathSafe(id string) string {
	switch id {
	case "":
		return "%00"
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	if strings.ContainsAny(id, "/\x00%") {
		return url.PathEscape(id)
	}
	return id
}

func (s *store) agentIDPath() string   { return filepath.Join(s.dir, "agent_id") }
func (s *store) resourcesPath() string { return filepath.Join(s.dir, "resources.pb") }
func (s *store) frameworkPath(fw string) string {
	return filepath.Join(s.dir, "frameworks", pathSafe(fw)+".pb")
}
func (s *store) taskLogPath(fw, task string) string {
	return filepath.Join(s.dir, "tasks", pathSafe(fw), pathSafe(task)+".log")
}

func (s *store) readAgentID() (string, error) {
	b, err := os.ReadFile(s.agentIDPath())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *store) writeAgentID(id string) error {
	return writeFileAtomic(s.agentIDPath(), []byte(id+"\n"))
}

func (s *store) writeResources(rs []mesospb.Resource) error {
	b, err := (&internalpb.Event_CheckpointResources{Resources: rs}).Marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(s.resourcesPath(), b)
}

func (s *store) readResources() ([]mesospb.Resource, error) {
	b, err := os.ReadFile(s.resourcesPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m internalpb.Event_CheckpointResources
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%s: %w", s.resourcesPath(), err)
	}
	return m.Resources, nil
}

func (s *store) writeFramework(info *mesospb.FrameworkInfo) error {
	b, err := info.Marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(s.frameworkPath(info.ID.Value), b)
}

func (s *store) removeFramework(fw string) error {
	err := os.Remove(s.frameworkPath(fw))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	// The framework's task directory is empty by now, unless a task of it
	// comes back; then it stays.
	_ = os.Remove(filepath.Dir(s.taskLogPath(fw, "x")))
	return err
}

// taskCheckpoint is a task log's 'T' record: the task and the executor run
// it belongs to.
type taskCheckpoint struct {
	Task        []byte   `json:"task"`            // TaskInfo, protobuf
	Group       []string `json:"group,omitempty"` // the IDs of the tasks of its group
	Executor    []byte   `json:"executor"`        // ExecutorInfo, protobuf
	Kind        string   `json:"kind"`
	ContainerID string   `json:"container_id"`
	Sandbox     string   `json:"sandbox"`
}

const (
	recordTask   = 'T'
	recordUpdate = 'U'
	recordAck    = 'A'
)

// putTask appends a task's 'T' record; the last one in a log wins.
func (s *store) putTask(t *checkpoint.Task) error {
	task, err := t.Info.Marshal()
	if err != nil {
		return err
	}
	exec, err := t.Executor.Marshal()
	if err != nil {
		return err
	}
	cp := taskCheckpoint{Task: task, Group: t.Group, Executor: exec, Kind: t.Kind, ContainerID: t.ContainerID, Sandbox: t.Sandbox}
	j, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return s.appendRecord(t.FrameworkID, t.Info.TaskID.Value, append([]byte{recordTask}, j...))
}

func (s *store) appendUpdate(fw, task string, u *internalpb.Call_StatusUpdate) error {
	b, err := u.Marshal()
	if err != nil {
		return err
	}
	return s.appendRecord(fw, task, append([]byte{recordUpdate}, b...))
}

func (s *store) appendAck(fw, task string, uuid []byte) error {
	return s.appendRecord(fw, task, append([]byte{recordAck}, uuid...))
}

func (s *store) appendRecord(fw, task string, rec []byte) error {
	var buf bytes.Buffer
	if err := recordio.NewWriter(&buf).WriteRecord(rec); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.openLog(s.taskLogPath(fw, task))
	if err != nil {
		return err
	}
	// One write of the whole record, so a crash leaves at most a torn
	// last record.
	if _, err := f.Write(buf.Bytes()); err != nil {
		s.closeLog(s.taskLogPath(fw, task))
		return err
	}
	return nil
}

// openLog returns the open log at path, opening (and creating) it if need
// be and closing the least recently written one past maxOpen. s.mu is held.
func (s *store) openLog(path string) (*os.File, error) {
	if el, ok := s.open[path]; ok {
		s.lru.MoveToFront(el)
		return el.Value.(*openLog).f, nil
	}
	if f := s.reuseSpare(path); f != nil {
		return s.track(path, f), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return s.track(path, f), nil
}

// track adds f, the open log at path, to the open logs, closing the least
// recently written one past maxOpen. s.mu is held.
func (s *store) track(path string, f *os.File) *os.File {
	if s.open == nil {
		s.open = map[string]*list.Element{}
	}
	s.open[path] = s.lru.PushFront(&openLog{path: path, f: f})
	limit := s.maxOpen
	if limit <= 0 {
		limit = defaultMaxOpenLogs
	}
	for s.lru.Len() > limit {
		s.closeLog(s.lru.Back().Value.(*openLog).path)
	}
	return f
}

// reuseSpare moves a spare log to path and returns it, or returns nil
// when there is none or path exists already (it is then appended to, as
// an evicted or recovered log is). s.mu is held.
func (s *store) reuseSpare(path string) *os.File {
	if len(s.spares) == 0 {
		return nil
	}
	sp := s.spares[len(s.spares)-1]
	s.spares = s.spares[:len(s.spares)-1]
	err := renameNoReplace(sp.path, path)
	if errors.Is(err, fs.ErrNotExist) && os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		err = renameNoReplace(sp.path, path)
	}
	switch {
	case err == nil:
		return sp.f
	case errors.Is(err, fs.ErrExist):
		s.spares = append(s.spares, sp)
	default:
		_ = sp.f.Close()
		_ = os.Remove(sp.path)
	}
	return nil
}

// recycle moves f, the open log at path, out of tasks/ into the spares.
// It reports whether path is gone; when not, f is still the caller's.
// s.mu is held.
func (s *store) recycle(path string, f *os.File) bool {
	if !recycleLogs || len(s.spares) >= maxSpareLogs {
		return false
	}
	dir := filepath.Join(s.dir, "spare")
	if !s.spareReady {
		// Spares left by an earlier agent may hold old records.
		if os.RemoveAll(dir) != nil || os.MkdirAll(dir, 0o755) != nil {
			return false
		}
		s.spareReady = true
	}
	s.spareSeq++
	sp := filepath.Join(dir, strconv.Itoa(s.spareSeq))
	if err := os.Rename(path, sp); err != nil {
		return false
	}
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		_ = os.Remove(sp)
		return true
	}
	s.spares = append(s.spares, openLog{path: sp, f: f})
	return true
}

// closeLog closes the log at path if it is open. s.mu is held. Appends
// are written through (no buffering), so a close has nothing to lose.
func (s *store) closeLog(path string) {
	el, ok := s.open[path]
	if !ok {
		return
	}
	_ = el.Value.(*openLog).f.Close()
	s.lru.Remove(el)
	delete(s.open, path)
}

// close closes every open log; the store stays usable.
func (s *store) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for path := range s.open {
		s.closeLog(path)
	}
	for _, sp := range s.spares {
		_ = sp.f.Close()
		_ = os.Remove(sp.path)
	}
	s.spares = nil
	s.spareReady = false
}

// openLogs is the number of logs open, for tests.
func (s *store) openLogs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// removeTask forgets a task and its update stream.
func (s *store) removeTask(fw, task string) error {
	path := s.taskLogPath(fw, task)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.open[path]; ok {
		f := el.Value.(*openLog).f
		s.lru.Remove(el)
		delete(s.open, path)
		if s.recycle(path, f) {
			return nil
		}
		_ = f.Close()
	}
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// wipe forgets everything: after a shutdown the next agent on this work
// directory is a new agent.
func (s *store) wipe() error {
	s.close()
	return os.RemoveAll(s.dir)
}

// load reads every framework and task log. Unreadable entries are
// reported to warn and skipped: one damaged file must not keep the agent
// from starting.
func (s *store) load(warn func(msg string, args ...any)) (*checkpoint.State, error) {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	st := &checkpoint.State{}
	paths, err := filepath.Glob(filepath.Join(s.dir, "frameworks", "*.pb"))
	if err != nil {
		return nil, err
	}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		var info mesospb.FrameworkInfo
		if err == nil {
			err = info.Unmarshal(b)
		}
		if err == nil && (info.ID == nil || info.ID.Value == "") {
			err = errors.New("no framework ID")
		}
		if err != nil {
			warn("agent: skipping an unreadable framework checkpoint", "path", path, "err", err)
			continue
		}
		st.Frameworks = append(st.Frameworks, info)
	}

	logs, _ := filepath.Glob(filepath.Join(s.dir, "tasks", "*", "*.log"))
	for _, path := range logs {
		rs, cp, err := readTaskLog(path)
		if err != nil {
			warn("agent: skipping an unreadable task log", "path", path, "err", err)
			continue
		}
		if len(rs.Updates) > 0 {
			st.Streams = append(st.Streams, rs)
		}
		if cp == nil {
			continue
		}
		t := checkpoint.Task{Group: cp.Group, Kind: cp.Kind, ContainerID: cp.ContainerID, Sandbox: cp.Sandbox}
		err = t.Info.Unmarshal(cp.Task)
		if err == nil {
			err = t.Executor.Unmarshal(cp.Executor)
		}
		if err != nil {
			warn("agent: skipping an unreadable task checkpoint", "path", path, "err", err)
			continue
		}
		// The record does not name the framework: the executor does.
		t.FrameworkID = t.Executor.GetFrameworkID().GetValue()
		st.Tasks = append(st.Tasks, t)
	}
	checkpoint.Sort(st)
	return st, nil
}

// readTaskLog replays a task log: its update stream, and its task record
// if it has one. A record torn by a crash is cut off the log, as Mesos
// truncates its checkpoints to their valid records: the records appended
// after the restart would otherwise follow the torn one and be unreadable.
func readTaskLog(path string) (checkpoint.Stream, *taskCheckpoint, error) {
	var rs checkpoint.Stream
	var cp *taskCheckpoint
	f, err := os.Open(path)
	if err != nil {
		return rs, nil, err
	}
	defer f.Close()
	r := recordio.NewReader(f, 0)
	var valid int64 // the length of the whole records read
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			if err := os.Truncate(path, valid); err != nil {
				return rs, nil, fmt.Errorf("cutting off a torn record: %w", err)
			}
			break
		}
		if err != nil {
			return rs, nil, err
		}
		// The store writes "<length>\n<record>", the length in decimal.
		valid += int64(len(strconv.Itoa(len(rec))) + 1 + len(rec))
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case recordTask:
			cp = &taskCheckpoint{}
			if err := json.Unmarshal(rec[1:], cp); err != nil {
				return rs, nil, err
			}
		case recordUpdate:
			u := &internalpb.Call_StatusUpdate{}
			if err := u.Unmarshal(rec[1:]); err != nil {
				return rs, nil, err
			}
			rs.FrameworkID, rs.TaskID = u.FrameworkID.Value, u.Status.TaskID.Value
			rs.Updates = append(rs.Updates, u)
		case recordAck:
			rs.Acked = append(rs.Acked, append([]byte{}, rec[1:]...))
		}
	}
	return rs, cp, nil
}

// writeFileAtomic replaces path with data: written aside, then renamed.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// newFileStore returns the store of the checkpoint directory dir.
func newFileStore(dir string) *store { return &store{dir: dir} }

var _ checkpoint.Store = (*store)(nil)

// AgentID implements checkpoint.Store.
func (s *store) AgentID() (string, error) { return s.readAgentID() }

// SetAgentID implements checkpoint.Store.
func (s *store) SetAgentID(id string) error { return s.writeAgentID(id) }

// Resources implements checkpoint.Store.
func (s *store) Resources() ([]mesospb.Resource, error) { return s.readResources() }

// SetResources implements checkpoint.Store.
func (s *store) SetResources(rs []mesospb.Resource) error { return s.writeResources(rs) }

// PutFramework implements checkpoint.Store.
func (s *store) PutFramework(info *mesospb.FrameworkInfo) error { return s.writeFramework(info) }

// RemoveFramework implements checkpoint.Store.
func (s *store) RemoveFramework(id string) error { return s.removeFramework(id) }

// PutTask implements checkpoint.Store.
func (s *store) PutTask(t *checkpoint.Task) error { return s.putTask(t) }

// AppendUpdate implements checkpoint.Store.
func (s *store) AppendUpdate(fw, task string, u *internalpb.Call_StatusUpdate) error {
	return s.appendUpdate(fw, task, u)
}

// AppendAck implements checkpoint.Store.
func (s *store) AppendAck(fw, task string, uuid []byte) error { return s.appendAck(fw, task, uuid) }

// RemoveTask implements checkpoint.Store.
func (s *store) RemoveTask(fw, task string) error { return s.removeTask(fw, task) }

// Load implements checkpoint.Store.
func (s *store) Load(warn func(msg string, args ...any)) (*checkpoint.State, error) {
	return s.load(warn)
}

// Wipe implements checkpoint.Store.
func (s *store) Wipe() error { return s.wipe() }

// Close implements checkpoint.Store.
func (s *store) Close() error {
	s.close()
	return nil
}

// metaStore is the agent's checkpoint store, in the agent's terms: what
// the loop writes (its executor runs, its update streams) turned into the
// store's records, and what Load reads turned back into frameworks with
// their executor runs.
type metaStore struct{ checkpoint.Store }

func (m metaStore) readAgentID() (string, error)               { return m.AgentID() }
func (m metaStore) writeAgentID(id string) error               { return m.SetAgentID(id) }
func (m metaStore) readResources() ([]mesospb.Resource, error) { return m.Resources() }
func (m metaStore) writeResources(rs []mesospb.Resource) error { return m.SetResources(rs) }
func (m metaStore) writeFramework(info *mesospb.FrameworkInfo) error {
	return m.PutFramework(info)
}
func (m metaStore) removeFramework(fw string) error { return m.RemoveFramework(fw) }
func (m metaStore) appendUpdate(fw, task string, u *internalpb.Call_StatusUpdate) error {
	return m.AppendUpdate(fw, task, u)
}
func (m metaStore) appendAck(fw, task string, uuid []byte) error { return m.AppendAck(fw, task, uuid) }
func (m metaStore) removeTask(fw, task string) error             { return m.RemoveTask(fw, task) }
func (m metaStore) wipe() error                                  { return m.Wipe() }
func (m metaStore) close()                                       { _ = m.Close() }

// appendTask checkpoints a task of the executor run e.
func (m metaStore) appendTask(e *executorRec, info *mesospb.TaskInfo, group *mesospb.TaskGroupInfo) error {
	t := &checkpoint.Task{
		FrameworkID: e.FrameworkID(), Info: *info, Executor: *e.Info(),
		Kind: e.Kind().String(), ContainerID: e.ContainerID(), Sandbox: e.Sandbox(),
	}
	if group != nil {
		for _, gt := range group.Tasks {
			t.Group = append(t.Group, gt.TaskID.Value)
		}
	}
	return m.PutTask(t)
}

// Recovered checkpoints.
type (
	recoveredFramework struct {
		info      mesospb.FrameworkInfo
		executors []*recoveredExecutor
	}
	recoveredExecutor struct {
		info        mesospb.ExecutorInfo
		kind        executorKind
		containerID string
		sandbox     string
		tasks       []recoveredTask
	}
	recoveredTask struct {
		info  mesospb.TaskInfo
		group []string
	}
)

// readAll reads every checkpoint: the frameworks with their executor runs
// and tasks, and the tasks' update streams. Tasks the agent cannot take
// back (of an unknown kind of executor, or of a framework not
// checkpointed) are reported to warn and skipped.
func (m metaStore) readAll(warn func(msg string, args ...any)) ([]*recoveredFramework, []checkpoint.Stream, error) {
	st, err := m.Load(warn)
	if err != nil {
		return nil, nil, err
	}
	fws := map[string]*recoveredFramework{}
	order := make([]*recoveredFramework, 0, len(st.Frameworks))
	for _, info := range st.Frameworks {
		rf := &recoveredFramework{info: info}
		fws[info.ID.Value] = rf
		order = append(order, rf)
	}
	execs := map[string]*recoveredExecutor{} // by framework and container ID
	for _, t := range st.Tasks {
		kind, ok := parseKind(t.Kind)
		if !ok {
			warn("agent: skipping an unreadable task checkpoint", "framework", t.FrameworkID, "task", t.Info.TaskID.Value,
				"err", fmt.Errorf("unknown executor kind %q", t.Kind))
			continue
		}
		rf := fws[t.FrameworkID]
		if rf == nil {
			warn("agent: skipping a task of an unknown framework", "task", t.Info.TaskID.Value, "framework", t.FrameworkID)
			continue
		}
		key := t.FrameworkID + "\x00" + t.ContainerID
		re := execs[key]
		if re == nil {
			re = &recoveredExecutor{info: t.Executor, kind: kind, containerID: t.ContainerID, sandbox: t.Sandbox}
			execs[key] = re
			rf.executors = append(rf.executors, re)
		}
		re.tasks = append(re.tasks, recoveredTask{info: t.Info, group: t.Group})
	}
	return order, st.Streams, nil
}
