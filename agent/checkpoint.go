package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/recordio"
)

// store is the agent's checkpoint directory, <work_dir>/meta:
//
//	agent_id                                   the agent's ID
//	resources.pb                               CHECKPOINT_RESOURCES (internal Event.CheckpointResources)
//	frameworks/<fw>/framework.pb               FrameworkInfo
//	frameworks/<fw>/executors/<ex>/runs/<container>/executor.json
//	                                           the executor run (ExecutorInfo, kind, sandbox)
//	frameworks/<fw>/executors/<ex>/runs/<container>/tasks/<task>.json
//	                                           each task not yet forgotten (TaskInfo, its group)
//	updates/<fw>/<task>.log                    the task's status update stream: RecordIO records,
//	                                           'U' + internal Call.StatusUpdate or 'A' + uuid
//
// Files are replaced atomically (written aside, then renamed) or appended
// to; a torn last record of a log, left by a crash, is ignored. Nothing is
// fsynced: checkpoints matter across agent restarts, not machine reboots,
// after which no task survives anyway.
type store struct {
	dir string
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
func (s *store) frameworkDir(fw string) string {
	return filepath.Join(s.dir, "frameworks", pathSafe(fw))
}
func (s *store) executorDir(fw, ex string) string {
	return filepath.Join(s.frameworkDir(fw), "executors", pathSafe(ex))
}
func (s *store) runDir(fw, ex, container string) string {
	return filepath.Join(s.executorDir(fw, ex), "runs", pathSafe(container))
}
func (s *store) updatesPath(fw, task string) string {
	return filepath.Join(s.dir, "updates", pathSafe(fw), pathSafe(task)+".log")
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
	return writeFileAtomic(filepath.Join(s.frameworkDir(info.ID.Value), "framework.pb"), b)
}

func (s *store) removeFramework(fw string) error {
	return os.RemoveAll(s.frameworkDir(fw))
}

// executorCheckpoint is executor.json.
type executorCheckpoint struct {
	Info        []byte `json:"info"` // ExecutorInfo, protobuf
	Kind        string `json:"kind"`
	ContainerID string `json:"container_id"`
	Sandbox     string `json:"sandbox"`
}

func (s *store) writeExecutor(e *executorRec) error {
	info, err := e.info.Marshal()
	if err != nil {
		return err
	}
	b, err := json.Marshal(executorCheckpoint{Info: info, Kind: e.kind.String(), ContainerID: e.containerID, Sandbox: e.sandbox})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.runDir(e.fw.id, e.id, e.containerID), "executor.json"), b)
}

// removeExecutor removes an executor run, and the executor's directory
// when it was its last run.
func (s *store) removeExecutor(e *executorRec) error {
	if err := os.RemoveAll(s.runDir(e.fw.id, e.id, e.containerID)); err != nil {
		return err
	}
	runs := filepath.Join(s.executorDir(e.fw.id, e.id), "runs")
	if entries, err := os.ReadDir(runs); err == nil && len(entries) == 0 {
		return os.RemoveAll(s.executorDir(e.fw.id, e.id))
	}
	return nil
}

func (s *store) taskPath(e *executorRec, task string) string {
	return filepath.Join(s.runDir(e.fw.id, e.id, e.containerID), "tasks", pathSafe(task)+".json")
}

// taskCheckpoint is tasks/<task>.json.
type taskCheckpoint struct {
	Info  []byte   `json:"info"`            // TaskInfo, protobuf
	Group []string `json:"group,omitempty"` // the IDs of the tasks of its group
}

func (s *store) writeTask(e *executorRec, info *mesospb.TaskInfo, group *mesospb.TaskGroupInfo) error {
	b, err := info.Marshal()
	if err != nil {
		return err
	}
	cp := taskCheckpoint{Info: b}
	if group != nil {
		for _, t := range group.Tasks {
			cp.Group = append(cp.Group, t.TaskID.Value)
		}
	}
	j, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.taskPath(e, info.TaskID.Value), j)
}

func (s *store) removeTask(e *executorRec, task string) error {
	err := os.Remove(s.taskPath(e, task))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

const (
	recordUpdate = 'U'
	recordAck    = 'A'
)

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
	path := s.updatesPath(fw, task)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := recordio.NewWriter(&buf).WriteRecord(rec); err != nil {
		f.Close()
		return err
	}
	// One write of the whole record, so a crash leaves at most a torn
	// last record.
	_, werr := f.Write(buf.Bytes())
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

func (s *store) removeUpdates(fw, task string) error {
	err := os.Remove(s.updatesPath(fw, task))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// wipe forgets everything: after a shutdown the next agent on this work
// directory is a new agent.
func (s *store) wipe() error {
	return os.RemoveAll(s.dir)
}

// Recovered checkpoints.
type (
	recoveredFramework struct {
		info      mesospb.FrameworkInfo
		executors []recoveredExecutor
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
	// recoveredStream is a task's update log replayed: every update taken,
	// in order, and the uuids acknowledged.
	recoveredStream struct {
		key     streamKey
		updates []*internalpb.Call_StatusUpdate
		acked   map[string]bool
	}
)

// readAll reads every checkpoint. Unreadable entries are reported to warn
// and skipped: one damaged file must not keep the agent from starting.
func (s *store) readAll(warn func(msg string, args ...any)) ([]recoveredFramework, []recoveredStream, error) {
	var fws []recoveredFramework
	fwEntries, err := os.ReadDir(filepath.Join(s.dir, "frameworks"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	for _, fe := range fwEntries {
		dir := filepath.Join(s.dir, "frameworks", fe.Name())
		b, err := os.ReadFile(filepath.Join(dir, "framework.pb"))
		var rf recoveredFramework
		if err == nil {
			err = rf.info.Unmarshal(b)
		}
		if err == nil && (rf.info.ID == nil || rf.info.ID.Value == "") {
			err = errors.New("no framework ID")
		}
		if err != nil {
			warn("agent: skipping an unreadable framework checkpoint", "dir", dir, "err", err)
			continue
		}
		exDirs, _ := filepath.Glob(filepath.Join(dir, "executors", "*", "runs", "*"))
		for _, rd := range exDirs {
			re, err := readExecutorRun(rd)
			if err != nil {
				warn("agent: skipping an unreadable executor checkpoint", "dir", rd, "err", err)
				continue
			}
			rf.executors = append(rf.executors, re)
		}
		fws = append(fws, rf)
	}

	var streams []recoveredStream
	logs, _ := filepath.Glob(filepath.Join(s.dir, "updates", "*", "*.log"))
	for _, path := range logs {
		rs, err := readUpdateLog(path)
		if err != nil {
			warn("agent: skipping an unreadable status update log", "path", path, "err", err)
			continue
		}
		if len(rs.updates) > 0 {
			streams = append(streams, rs)
		}
	}
	return fws, streams, nil
}

func readExecutorRun(dir string) (recoveredExecutor, error) {
	var re recoveredExecutor
	b, err := os.ReadFile(filepath.Join(dir, "executor.json"))
	if err != nil {
		return re, err
	}
	var cp executorCheckpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return re, err
	}
	if err := re.info.Unmarshal(cp.Info); err != nil {
		return re, err
	}
	kind, ok := parseKind(cp.Kind)
	if !ok {
		return re, fmt.Errorf("unknown executor kind %q", cp.Kind)
	}
	re.kind, re.containerID, re.sandbox = kind, cp.ContainerID, cp.Sandbox
	taskFiles, _ := filepath.Glob(filepath.Join(dir, "tasks", "*.json"))
	for _, tf := range taskFiles {
		b, err := os.ReadFile(tf)
		if err != nil {
			return re, err
		}
		var cp taskCheckpoint
		var rt recoveredTask
		if err := json.Unmarshal(b, &cp); err != nil {
			return re, fmt.Errorf("%s: %w", tf, err)
		}
		if err := rt.info.Unmarshal(cp.Info); err != nil {
			return re, fmt.Errorf("%s: %w", tf, err)
		}
		rt.group = cp.Group
		re.tasks = append(re.tasks, rt)
	}
	return re, nil
}

func readUpdateLog(path string) (recoveredStream, error) {
	rs := recoveredStream{acked: map[string]bool{}}
	f, err := os.Open(path)
	if err != nil {
		return rs, err
	}
	defer f.Close()
	r := recordio.NewReader(f, 0)
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the end, or a record torn by a crash
		}
		if err != nil {
			return rs, err
		}
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case recordUpdate:
			u := &internalpb.Call_StatusUpdate{}
			if err := u.Unmarshal(rec[1:]); err != nil {
				return rs, err
			}
			rs.key = streamKey{u.FrameworkID.Value, u.Status.TaskID.Value}
			rs.updates = append(rs.updates, u)
		case recordAck:
			rs.acked[string(rec[1:])] = true
		}
	}
	return rs, nil
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
