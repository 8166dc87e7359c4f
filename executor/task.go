package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/environ"
)

// containerConfig turns t's TaskInfo into the Config of its container.
func (b *builtin) containerConfig(t *task) (containerizer.Config, error) {
	ti := &t.info
	if b.cfg.Containerizer == nil {
		return containerizer.Config{}, errors.New("the executor has no containerizer")
	}
	cmd := ti.Command
	if cmd == nil {
		return containerizer.Config{}, errors.New("the task has no command")
	}
	img, hostname, err := containerImage(ti.Container)
	if err != nil {
		return containerizer.Config{}, err
	}
	var command containerizer.Command
	if cmd.GetShell() {
		command = containerizer.Command{Shell: true, Value: cmd.GetValue()}
	} else {
		// CommandInfo.arguments is the whole argv, argv[0] included, as
		// containerizer.Command.Args.
		command = containerizer.Command{Value: cmd.GetValue(), Args: cmd.Arguments}
	}
	if command.Value == "" && (command.Shell || img == "") {
		// Without a value the image's entrypoint and cmd run, as Mesos
		// runs them; a shell needs something to run.
		return containerizer.Config{}, errors.New("the task's command has no value")
	}
	// As Mesos's executors (launcher/executor.cpp, default_executor.cpp):
	// the role the task's resources are allocated to, and, in a group,
	// the task's own sandbox and IP.
	var extra []string
	if len(ti.Resources) > 0 && ti.Resources[0].AllocationInfo != nil {
		extra = append(extra, "MESOS_ALLOCATION_ROLE="+ti.Resources[0].AllocationInfo.GetRole())
	}
	if b.group {
		extra = append(extra, "MESOS_SANDBOX="+t.sandbox)
		if b.cfg.ContainerIP != "" {
			extra = append(extra, "MESOS_CONTAINER_IP="+b.cfg.ContainerIP)
		}
	}
	env, err := environ.Merge(b.cfg.Env, extra, cmd.Environment)
	if err != nil {
		return containerizer.Config{}, err
	}
	user := cmd.GetUser()
	if user == "" {
		user = b.cfg.User
	}
	return containerizer.Config{
		ID:            t.cid,
		Command:       command,
		Sandbox:       t.sandbox,
		User:          user,
		Env:           env,
		Limits:        taskLimits(ti),
		DiesWithAgent: b.cfg.DiesWithAgent,
		Image:         img,
		Hostname:      hostname,
	}, nil
}

// containerImage reads a task's ContainerInfo: the Docker image it runs in
// (type MESOS, mesos.image of type DOCKER, as Mesos's universal
// containerizer takes it) and its hostname. Apron runs no Docker engine, so
// ContainerInfo type DOCKER is refused, as are APPC images.
func containerImage(c *mesospb.ContainerInfo) (name, hostname string, err error) {
	if c == nil {
		return "", "", nil
	}
	if c.GetType() == mesospb.ContainerInfo_DOCKER || c.Docker != nil {
		return "", "", errors.New("ContainerInfo of type DOCKER needs a Docker engine, which Apron does not use: give type MESOS with mesos.image of type DOCKER instead")
	}
	if im := c.Mesos.GetImage(); im != nil {
		if im.GetType() != mesospb.Image_DOCKER || im.Docker == nil || im.Docker.Name == "" {
			return "", "", errors.New("the task's image is not a DOCKER image with a name: only Docker/OCI images are supported")
		}
		name = im.Docker.Name
	}
	return name, c.GetHostname(), nil
}

// taskLimits is what the task may use: its "cpus" and "mem" (MB) resources,
// or its limits for them when it has some (infinite: no limit).
func taskLimits(ti *mesospb.TaskInfo) containerizer.Limits {
	var cpus, mem float64
	for _, r := range ti.Resources {
		if r.Scalar == nil || !(r.Scalar.Value > 0) {
			continue
		}
		switch r.Name {
		case "cpus":
			cpus += r.Scalar.Value
		case "mem":
			mem += r.Scalar.Value
		}
	}
	if v, ok := ti.Limits["cpus"]; ok {
		cpus = v.Value
	}
	if v, ok := ti.Limits["mem"]; ok {
		mem = v.Value
	}
	var l containerizer.Limits
	if cpus > 0 && !math.IsInf(cpus, 0) {
		l.CPUs = cpus
	}
	if bytes := mem * (1 << 20); bytes >= 1 && bytes < math.MaxUint64 {
		l.MemoryBytes = uint64(bytes)
	}
	return l
}

// TaskContainerID is the ID of the container in which the built-in
// executors run a task: prefix + "." + the task ID (the task ID alone when
// prefix is empty). When the task ID holds bytes a container ID cannot
// ([A-Za-z0-9_.-] only) they become '_', and when that or the length limit
// changed it, "-" and 8 hex digits of a hash of the task ID are appended,
// so distinct task IDs keep distinct containers. An agent uses it to match
// recovered containers to tasks (see CommandExecutor.Reattach).
func TaskContainerID(prefix string, taskID mesospb.TaskID) string {
	if prefix == "" {
		return containerIDPart(taskID.Value, containerizer.MaxIDLength)
	}
	return prefix + "." + containerIDPart(taskID.Value, max(containerizer.MaxIDLength-len(prefix)-1, 0))
}

// containerIDPart is id made fit for a container ID (and a file name) of at
// most room bytes.
func containerIDPart(id string, room int) string {
	ok := id != "" && id != "." && id != ".." && len(id) <= room
	b := []byte(id)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
			ok = false
		}
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	suffix := "-" + hex.EncodeToString(sum[:4])
	if n := max(room-len(suffix), 0); len(b) > n {
		b = b[:n]
	}
	return string(b) + suffix
}
