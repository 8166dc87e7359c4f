package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/fetch"
	"github.com/apronhq/apron/resources"
)

// Checkpointed resources and persistent volumes.
//
// The master sends CHECKPOINT_RESOURCES with every dynamic reservation and
// persistent volume of the agent after each operation. The agent keeps
// them in <WorkDir>/meta, and its total, as it registers and re-registers,
// is its configured resources with them applied (each replaces the plain
// resource it was made from), so an agent restart keeps its reservations.
//
// A persistent volume's data lives in
// <WorkDir>/volumes/roles/<role>/<persistence ID>, as in Mesos; a
// hierarchical role's "/" are written as spaces ("eng/backend" is
// "eng backend"), which no role name contains, so every role has a
// directory of its own at one level. The directory is made when the volume
// appears in a CHECKPOINT_RESOURCES and removed, with its data, when it
// disappears from one (DESTROY), off the loop (see removeVolume); the agent
// never removes anything else.
//
// A task using a volume sees it at the volume's container_path, relative
// to its sandbox: the agent tells the containerizer (Config.Volumes), which
// for the process containerizer makes a symbolic link there. The built-in
// command and default executors' task containers get them so, and
// executor processes for the volumes of their resources and of the tasks
// they start with. A task handed to a custom executor that already runs,
// or to an in-process Go executor (whose sandbox is the agent's to make),
// gets the links made by the agent itself in the executor's sandbox just
// before the task is delivered, as the process containerizer would make
// them; a container path that exists there as anything else fails the task
// (TASK_FAILED, REASON_CONTAINER_UPDATE_FAILED). Mesos destroys the whole
// executor when it cannot update its container for a new task; Apron fails
// only the task, and the executor keeps its other tasks.

var errBadVolume = errors.New("bad persistent volume")

// volumePath is where the persistent volume id of role keeps its data.
func (a *Agent) volumePath(role, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsFunc(id, func(c rune) bool { return c < ' ' || c == 0x7f || c == '/' || c == '\\' }) {
		return "", fmt.Errorf("%w: persistence ID %q is not a file name", errBadVolume, id)
	}
	if role == "*" || resources.ValidateRole(role) != nil {
		return "", fmt.Errorf("%w: volume %q has role %q", errBadVolume, id, role)
	}
	return filepath.Join(a.cfg.WorkDir, "volumes", "roles", strings.ReplaceAll(role, "/", " "), id), nil
}

// checkpointedResources parses what the master last checkpointed.
func (a *Agent) checkpointedResources() resources.Resources {
	rs, err := resources.FromProto(a.checkpointed)
	if err == nil {
		err = rs.Validate()
	}
	if err != nil {
		a.log.Warn("agent: bad checkpointed resources; ignoring them", "err", err)
		return nil
	}
	return rs
}

// totalResources is the agent's configured resources with its checkpointed
// resources applied. One that does not fit (the configured resources
// changed since) is left out with a warning.
func (a *Agent) totalResources() resources.Resources {
	total := a.resources
	for _, r := range a.checkpointedResources() {
		t, err := total.ApplyCheckpointed(resources.Resources{r})
		if err != nil {
			a.log.Warn("agent: a checkpointed resource does not fit the agent's resources; leaving it out", "resource", r.String(), "err", err)
			continue
		}
		total = t
	}
	return total
}

// checkpointResources handles CHECKPOINT_RESOURCES: persist the new set,
// make the directories of new volumes, remove those of destroyed ones, and
// report the new total from now on.
func (a *Agent) checkpointResources(rs []mesospb.Resource) {
	old := a.checkpointedResources().PersistentVolumes()
	a.checkpointed = append([]mesospb.Resource(nil), rs...)
	if err := a.meta.writeResources(rs); err != nil {
		a.log.Error("agent: checkpointing resources", "err", err)
	}
	now := a.checkpointedResources().PersistentVolumes()
	a.makeVolumeDirs(now)
	keep := map[string]bool{}
	for _, v := range now {
		if p, err := a.volumePath(v.Role(), v.Disk.Persistence.ID); err == nil {
			keep[p] = true
		}
	}
	for _, v := range old {
		p, err := a.volumePath(v.Role(), v.Disk.Persistence.ID)
		if err != nil || keep[p] {
			continue
		}
		a.removeVolume(p)
	}
	a.mu.Lock()
	a.info = a.agentInfo()
	a.mu.Unlock()
}

// volumeTrash is where destroyed volumes wait to be deleted: beside
// volumes/roles, so that no volume's path is ever in it.
func (a *Agent) volumeTrash() string { return filepath.Join(a.cfg.WorkDir, "volumes", ".removing") }

// removeVolume deletes a destroyed volume's data, which may be large: the
// loop only moves its directory into the trash (one rename, after which
// the same persistence ID may be created afresh), and a goroutine deletes
// it there. What a stopping agent leaves in the trash, the next one
// deletes as it recovers. A directory that cannot be moved (a mount point)
// is emptied where it is.
func (a *Agent) removeVolume(p string) {
	dst, err := os.MkdirTemp(a.volumeTrash(), "volume-")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(a.volumeTrash(), 0o700); err == nil {
			dst, err = os.MkdirTemp(a.volumeTrash(), "volume-")
		}
	}
	if err == nil {
		err = os.Rename(p, filepath.Join(dst, "data"))
		if errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(dst) // nothing to delete
			return
		}
	}
	if err != nil {
		a.log.Warn("agent: cannot move a destroyed volume aside; removing it in place", "path", p, "err", err)
		if dst != "" {
			_ = os.Remove(dst)
		}
		if err := os.RemoveAll(p); err != nil {
			a.log.Error("agent: removing a destroyed volume", "path", p, "err", err)
		}
		return
	}
	a.log.Info("agent: removing a destroyed volume", "path", p)
	a.emptyVolumeTrash([]string{dst})
}

// collectVolumeTrash deletes what an earlier agent left in the trash.
func (a *Agent) collectVolumeTrash() {
	entries, err := os.ReadDir(a.volumeTrash())
	if err != nil {
		return
	}
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = filepath.Join(a.volumeTrash(), e.Name())
	}
	a.emptyVolumeTrash(paths)
}

// emptyVolumeTrash deletes paths of the trash on a goroutine; a stopping
// agent leaves the rest for the next one.
func (a *Agent) emptyVolumeTrash(paths []string) {
	if len(paths) == 0 {
		return
	}
	ctx, log := a.runCtx, a.log
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for _, p := range paths {
			if err := removeTree(ctx, p); err != nil && ctx.Err() == nil {
				log.Error("agent: removing a destroyed volume", "path", p, "err", err)
			}
		}
	}()
}

// makeVolumeDirs makes the directories of the volumes that lack one.
func (a *Agent) makeVolumeDirs(volumes resources.Resources) {
	for _, v := range volumes {
		p, err := a.volumePath(v.Role(), v.Disk.Persistence.ID)
		if err != nil {
			a.log.Error("agent: cannot keep a persistent volume", "err", err)
			continue
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			a.log.Error("agent: creating a persistent volume", "path", p, "err", err)
		}
	}
}

// volumesOf lists the persistent volumes among rs as the containerizer
// takes them.
func (a *Agent) volumesOf(rs []mesospb.Resource) []containerizer.Volume {
	var out []containerizer.Volume
	for i := range rs {
		if rs[i].Disk == nil || rs[i].Disk.Persistence == nil {
			continue
		}
		r, err := resources.ResourceFromProto(&rs[i])
		if err != nil || !r.IsPersistentVolume() || r.Disk.Volume == nil {
			continue
		}
		p, err := a.volumePath(r.Role(), r.Disk.Persistence.ID)
		if err != nil {
			a.log.Warn("agent: a task's persistent volume is not usable", "err", err)
			continue
		}
		v := containerizer.Volume{HostPath: p, ContainerPath: r.Disk.Volume.ContainerPath, ReadOnly: r.Disk.Volume.Mode == resources.RO}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// noteTaskVolumes records the volumes of a task that a built-in executor
// will launch as a container of its own.
func (a *Agent) noteTaskVolumes(e *executorRec, t *mesospb.TaskInfo) {
	if e.Kind() != kindCommand && e.Kind() != kindDefault {
		return
	}
	if vols := a.volumesOf(t.Resources); len(vols) > 0 {
		a.vols.set(executor.TaskContainerID(e.ContainerID(), t.TaskID), vols)
	}
}

// forgetTaskVolumes drops the volumes noted for the task containers of a
// terminated executor: those of tasks that ended before their container
// was launched (killed while queued, or the executor failed to start)
// would otherwise stay in the book for as long as the agent runs.
func (a *Agent) forgetTaskVolumes(e *executorRec) {
	if e.Kind() != kindCommand && e.Kind() != kindDefault {
		return
	}
	for _, id := range e.TaskIDs() {
		a.vols.take(executor.TaskContainerID(e.ContainerID(), id))
	}
}

// linkTaskVolumes links the persistent volumes of the tasks of item into
// the sandbox of e, an executor that runs its tasks itself: a custom
// executor process, or an in-process Go executor. Links already there to
// the same volumes are kept.
func (a *Agent) linkTaskVolumes(e *executorRec, item launchItem) error {
	if e.Kind() != kindProcess && e.Kind() != kindGo {
		return nil
	}
	var rs []mesospb.Resource
	if item.Group == nil {
		rs = item.Task.Resources
	} else {
		for i := range item.Group.Tasks {
			rs = append(rs, item.Group.Tasks[i].Resources...)
		}
	}
	vols := a.volumesOf(rs)
	if len(vols) == 0 {
		return nil
	}
	uid, gid, err := fetch.SandboxOwner(e.TaskUser())
	if err != nil {
		return err
	}
	return containerizer.LinkVolumes(e.Sandbox(), vols, uid, gid)
}

// failLaunch fails the tasks of an item that cannot be delivered to its
// executor.
func (a *Agent) failLaunch(e *executorRec, item launchItem, reason mesospb.TaskStatus_Reason, msg string) {
	ids := item.IDs()
	a.log.Warn("agent: cannot deliver a task to its executor", "framework", e.FrameworkID(), "executor", e.ID(), "tasks", ids, "err", msg)
	for _, id := range ids {
		if t := e.Task(id); t != nil && !terminal(t.State()) {
			// The terminal update dequeues it.
			a.statusUpdate(e.FrameworkID(), e.ID(), a.agentStatus(e.FrameworkID(), id, mesospb.TASK_FAILED, reason, msg))
		}
	}
}

// volumeBook holds the volumes of task containers not yet launched, by
// container ID. The built-in executors launch them on their own
// goroutines, hence the lock.
type volumeBook struct {
	mu   sync.Mutex
	byID map[string][]containerizer.Volume
}

func (b *volumeBook) set(id string, vols []containerizer.Volume) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string][]containerizer.Volume{}
	}
	b.byID[id] = vols
}

// take returns and forgets the volumes of container id.
func (b *volumeBook) take(id string) []containerizer.Volume {
	b.mu.Lock()
	defer b.mu.Unlock()
	vols := b.byID[id]
	delete(b.byID, id)
	return vols
}

// withVolumes is the containerizer the built-in executors get: it adds to
// each task container the volumes the agent noted for it.
type withVolumes struct {
	containerizer.Containerizer
	book *volumeBook
}

func (w withVolumes) Launch(ctx context.Context, cfg containerizer.Config) error {
	if vols := w.book.take(cfg.ID); len(vols) > 0 {
		cfg.Volumes = append(slices.Clone(cfg.Volumes), vols...)
	}
	return w.Containerizer.Launch(ctx, cfg)
}
