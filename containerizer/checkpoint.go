package containerizer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// checkpoint is what the process containerizer keeps on disk about one
// container, so that a containerizer started after an agent restart can find
// the container's process again.
type checkpoint struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// PID and StartTicks (field 22 of /proc/<pid>/stat) name the main
	// process; the start time guards against a reused pid. A record with
	// PID 0 is written before the fork: the container is being launched,
	// and LaunchTicks (ticks since boot then) bounds when its process
	// started, so that a restarted agent can find a process forked just
	// before the agent died.
	PID         int    `json:"pid"`
	StartTicks  uint64 `json:"start_ticks"`
	LaunchTicks uint64 `json:"launch_ticks,omitempty"`
	// BootID is the kernel's boot ID when the process started.
	BootID string `json:"boot_id,omitempty"`
	// Reaper: the main process is the reaper's child, and the reaper can
	// tell how it ended.
	Reaper  bool   `json:"reaper,omitempty"`
	Sandbox string `json:"sandbox"`
	User    string `json:"user,omitempty"`
	// Env is the main process's environment, for nested containers to
	// inherit; absent (nil) in a record written before it was recorded.
	Env    []string `json:"env"`
	Limits struct {
		CPUs        float64 `json:"cpus,omitempty"`
		MemoryBytes uint64  `json:"memory_bytes,omitempty"`
	} `json:"limits"`

	// Termination is how the container ended, once its end was recorded.
	Termination *checkpointTermination `json:"-"`
}

type checkpointTermination struct {
	ExitCode int    `json:"exit_code"`
	Signal   int    `json:"signal,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

const checkpointVersion = 1

func (t *checkpointTermination) termination() Termination {
	return Termination{ExitCode: t.ExitCode, Signal: syscall.Signal(t.Signal), Reason: Reason(t.Reason), Message: t.Message}
}

func toCheckpointTermination(t Termination) *checkpointTermination {
	return &checkpointTermination{ExitCode: t.ExitCode, Signal: int(t.Signal), Reason: string(t.Reason), Message: t.Message}
}

func (cp *checkpoint) validate() error {
	switch {
	case cp.Version != checkpointVersion:
		return fmt.Errorf("unknown checkpoint version %d", cp.Version)
	case ValidateID(cp.ID) != nil:
		return fmt.Errorf("bad container ID %.60q", cp.ID)
	case cp.PID < 0, cp.PID == 0 && cp.LaunchTicks == 0:
		return fmt.Errorf("container %q: bad pid %d", cp.ID, cp.PID)
	}
	return nil
}

// journalName is the journal's file in the state directory.
const journalName = "containers.jsonl"

// journal is the process containerizer's checkpoint: an append-only file of
// JSON lines, one record per event of a container's life:
//
//	{"launch": {checkpoint}}                   the main process started
//	{"end": {"id": ..., "termination": ...}}   it ended and was reaped
//	{"destroy": "ID"}                          the container was destroyed
//
// Replaying it gives the containers not yet destroyed, with their
// terminations. Each record is one write(2) of a few hundred bytes on an
// open file, a few microseconds, where a file per container would cost a
// creation and an unlink per task. The journal is compacted (the live
// records rewritten to a new file renamed over it) when it is opened and
// when dead records outnumber live ones by far, so its size stays
// proportional to the containers alive.
//
// Nothing is fsynced: the journal matters only while the machine has not
// rebooted (after a reboot no process it names is alive), and an agent crash
// loses nothing the kernel has accepted. A crash inside a write leaves a
// torn last line, which replay skips and the compaction at open removes.
type journal struct {
	path string

	mu    sync.Mutex
	f     *os.File
	lines int                      // records in the file
	live  map[string]*journalEntry // what replaying the file gives
}

// journalEntry is a live container's records, encoded.
type journalEntry struct {
	launch []byte
	end    []byte // nil until the end is recorded
}

type journalRecord struct {
	Launch  *checkpoint `json:"launch,omitempty"`
	End     *journalEnd `json:"end,omitempty"`
	Destroy string      `json:"destroy,omitempty"`
}

type journalEnd struct {
	ID          string                 `json:"id"`
	Termination *checkpointTermination `json:"termination"`
}

// journalCompactMin is the fewest records worth a compaction.
const journalCompactMin = 1024

// openJournal replays the journal in dir, if any, rewrites it with the live
// records only, and opens it for appending. skipped counts the records that
// could not be read.
func openJournal(dir string) (j *journal, skipped int, err error) {
	j = &journal{path: filepath.Join(dir, journalName), live: make(map[string]*journalEntry)}
	f, err := os.Open(j.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, 0, err
	default:
		skipped, err = j.replay(f)
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", j.path, err)
		}
	}
	if err := j.compactLocked(); err != nil {
		return nil, 0, err
	}
	return j, skipped, nil
}

func (j *journal) replay(r io.Reader) (skipped int, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' || !j.apply(bytes.Clone(line)) {
				skipped++
			}
		}
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, err
		}
	}
}

// apply replays one record; false if it cannot be read.
func (j *journal) apply(line []byte) bool {
	var rec journalRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return false
	}
	switch {
	case rec.Launch != nil:
		if rec.Launch.validate() != nil {
			return false
		}
		j.live[rec.Launch.ID] = &journalEntry{launch: line}
	case rec.End != nil:
		e := j.live[rec.End.ID]
		if e == nil || rec.End.Termination == nil {
			return false
		}
		e.end = line
	case rec.Destroy != "":
		delete(j.live, rec.Destroy)
	default:
		return false
	}
	return true
}

// checkpoints decodes the live containers' checkpoints, sorted by ID.
func (j *journal) checkpoints() []*checkpoint {
	j.mu.Lock()
	defer j.mu.Unlock()
	cps := make([]*checkpoint, 0, len(j.live))
	for _, e := range j.live {
		var launch, end journalRecord
		if json.Unmarshal(e.launch, &launch) != nil || launch.Launch == nil {
			continue // cannot happen: apply and launched checked it
		}
		if e.end != nil && json.Unmarshal(e.end, &end) == nil && end.End != nil {
			launch.Launch.Termination = end.End.Termination
		}
		cps = append(cps, launch.Launch)
	}
	slices.SortFunc(cps, func(a, b *checkpoint) int { return cmp.Compare(a.ID, b.ID) })
	return cps
}

// launched records that a container's main process started, or, with PID
// 0, is about to.
func (j *journal) launched(cp *checkpoint) error {
	line, err := encodeRecord(journalRecord{Launch: cp})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.appendLocked(line); err != nil {
		return err
	}
	j.live[cp.ID] = &journalEntry{launch: line}
	return nil
}

// ended records how a container ended.
func (j *journal) ended(id string, t Termination) error {
	line, err := encodeRecord(journalRecord{End: &journalEnd{ID: id, Termination: toCheckpointTermination(t)}})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.live[id]
	if e == nil {
		return nil
	}
	if err := j.appendLocked(line); err != nil {
		return err
	}
	e.end = line
	return nil
}

// destroyed records that a container is gone.
func (j *journal) destroyed(id string) error {
	line, err := encodeRecord(journalRecord{Destroy: id})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.live[id] == nil {
		return nil
	}
	if err := j.appendLocked(line); err != nil {
		return err
	}
	delete(j.live, id)
	if j.lines >= journalCompactMin && j.lines > 4*len(j.live) {
		return j.compactLocked()
	}
	return nil
}

func encodeRecord(rec journalRecord) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (j *journal) appendLocked(line []byte) error {
	if j.f == nil {
		return os.ErrClosed
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("writing %s: %w", j.path, err)
	}
	j.lines++
	return nil
}

// compactLocked rewrites the journal with the live records only.
func (j *journal) compactLocked() error {
	var buf bytes.Buffer
	lines := 0
	for _, e := range j.live {
		buf.Write(e.launch)
		lines++
		if e.end != nil {
			buf.Write(e.end)
			lines++
		}
	}
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("compacting %s: %w", j.path, err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", j.path, err)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("compacting %s: %w", j.path, err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.lines = f, lines
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
