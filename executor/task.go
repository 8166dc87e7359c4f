package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

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
	vols, err := containerVolumes(ti.Container, t.sandbox)
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
		Volumes:       vols,
	}, nil
}

// containerVolumes reads ContainerInfo.volumes as Mesos's filesystem
// isolators take them: a host path (the legacy host_path, relative to the
// sandbox when not absolute, or a HOST_PATH source) or a SANDBOX_PATH of
// the container's own sandbox, mounted at container_path (relative to the
// sandbox, or absolute in the container's root filesystem), read-only for
// mode RO. Volumes from images, Docker volume drivers, secrets and CSI,
// and a parent's sandbox, are refused with a message naming them.
func containerVolumes(c *mesospb.ContainerInfo, sandbox string) ([]containerizer.Volume, error) {
	if c == nil {
		return nil, nil
	}
	var out []containerizer.Volume
	for i, v := range c.Volumes {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("container.volumes[%d] (at %q): %s", i, v.ContainerPath, fmt.Sprintf(format, args...))
		}
		var host string
		switch src := v.Source; {
		case v.HostPath != nil:
			host = v.GetHostPath()
			if !filepath.IsAbs(host) {
				host = filepath.Join(sandbox, host)
			}
		case v.Image != nil:
			return nil, bad("image volumes are not supported")
		case src == nil:
			return nil, bad("no host_path and no source")
		case src.GetType() == mesospb.Volume_Source_HOST_PATH && src.HostPath != nil:
			host = src.HostPath.Path
			if !filepath.IsAbs(host) {
				return nil, bad("host path %q is not absolute", host)
			}
		case src.GetType() == mesospb.Volume_Source_SANDBOX_PATH && src.SandboxPath != nil:
			if src.SandboxPath.GetType() != mesospb.Volume_Source_SandboxPath_SELF {
				return nil, bad("only SELF sandbox paths are supported (nested containers are not)")
			}
			p := src.SandboxPath.Path
			if filepath.IsAbs(p) || strings.Contains("/"+filepath.ToSlash(p)+"/", "/../") {
				return nil, bad("sandbox path %q is not inside the sandbox", p)
			}
			host = filepath.Join(sandbox, p)
		default:
			return nil, bad("volumes of source type %v are not supported", src.GetType())
		}
		out = append(out, containerizer.Volume{
			HostPath:      host,
			ContainerPath: v.ContainerPath,
			ReadOnly:      v.GetMode() == mesospb.Volume_RO,
		})
	}
	return out, nil
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
// or its limits for them when it has some (infinite: no limit), and its
// sandbox "disk" (MB).
func taskLimits(ti *mesospb.TaskInfo) containerizer.Limits {
	var cpus, mem, disk float64
	for _, r := range ti.Resources {
		if r.Scalar == nil || !(r.Scalar.Value > 0) {
			continue
		}
		switch r.Name {
		case "cpus":
			cpus += r.Scalar.Value
		case "mem":
			mem += r.Scalar.Value
		case "disk":
			// The sandbox's quota: a disk with a volume (a persistent
			// volume) is not in the sandbox (Mesos's disk/du).
			if r.Disk == nil || r.Disk.Volume == nil {
				disk += r.Scalar.Value
			}
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
	if bytes := disk * (1 << 20); bytes >= 1 && bytes < math.MaxUint64 {
		l.DiskBytes = uint64(bytes)
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
