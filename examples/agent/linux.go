package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/containerizer/image"
)

// linuxFlags are the Linux containerizer's flags, under Mesos's names.
type linuxFlags struct {
	isolation      string
	imageProviders string
	dockerRegistry string
	dockerStoreDir string
	dockerConfig   string
	enableCFS      bool
	cgroupsRoot    string
	// Mesos's disk/du isolator (containerizer.NewDisk).
	enforceDiskQuota  bool
	diskWatchInterval time.Duration
}

func (f *linuxFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.isolation, "isolation", "", "Mesos's --isolation: a comma-separated list of `isolators` (filesystem/linux, cgroups/cpu, cgroups/mem, cgroups/pids, namespaces/pid, namespaces/ipc, docker/runtime, volume/host_path, ...); any Linux one runs tasks in the Linux containerizer, which applies them all: namespaces, cgroups, images (needs root). Empty or posix/cpu,posix/mem: the process containerizer")
	fs.StringVar(&f.imageProviders, "image-providers", "", "Mesos's --image_providers: \"docker\" lets tasks run from Docker/OCI images (ContainerInfo type MESOS with a DOCKER image); needs a Linux -isolation")
	fs.StringVar(&f.dockerRegistry, "docker-registry", "", "Mesos's --docker_registry: the registry image names without one resolve against, a URL (http://host:port speaks plain HTTP) or host[:port] (default: Docker Hub); or, as Mesos's image tar puller, a directory of `docker save`/OCI archives NAME.tar: an absolute path, file:///dir or http(s)://host/dir")
	fs.StringVar(&f.dockerStoreDir, "docker-store-dir", "", "Mesos's --docker_store_dir: where pulled layers are kept, shared by every container (default: <work-dir>/store/docker)")
	fs.StringVar(&f.dockerConfig, "docker-config", "", "Mesos's --docker_config: a docker config.json `file` with registry credentials")
	fs.BoolVar(&f.enableCFS, "cgroups-enable-cfs", false, "Mesos's --cgroups_enable_cfs: cap each task's CPU time at its cpus with a CFS quota, not only share it")
	fs.StringVar(&f.cgroupsRoot, "cgroups-root", "apron", "Mesos's --cgroups_root: the cgroup the containers' cgroups are made in, at the top of each hierarchy")
	fs.BoolVar(&f.enforceDiskQuota, "enforce-container-disk-quota", false, "Mesos's --enforce_container_disk_quota: kill a task whose sandbox uses more than its disk (TASK_FAILED, REASON_CONTAINER_LIMITATION_DISK); turns on the disk/du isolator")
	fs.DurationVar(&f.diskWatchInterval, "container-disk-watch-interval", containerizer.DefaultDiskWatchInterval, "Mesos's --container_disk_watch_interval: how often the disk/du isolator measures each sandbox")
}

// linuxIsolators are the isolators the Linux containerizer stands for:
// it applies all of them together.
var linuxIsolators = map[string]bool{
	"filesystem/linux": true, "cgroups/cpu": true, "cgroups/mem": true, "cgroups/pids": true,
	"cgroups/blkio": true, "cgroups/all": true, "namespaces/pid": true, "namespaces/ipc": true,
	"docker/runtime": true, "volume/host_path": true, "volume/sandbox_path": true,
}

// posixIsolators are Mesos's defaults, what the process containerizer does.
// disk/du (and its old name posix/disk) measures sandboxes with either
// containerizer.
var posixIsolators = map[string]bool{"posix/cpu": true, "posix/mem": true, "filesystem/posix": true, "posix/disk": true, "disk/du": true}

// diskDu says whether the flags ask for the disk/du isolator: named in
// -isolation, or implied by -enforce-container-disk-quota.
func (f *linuxFlags) diskDu() bool {
	for _, iso := range strings.Split(f.isolation, ",") {
		if iso = strings.TrimSpace(iso); iso == "disk/du" || iso == "posix/disk" {
			return true
		}
	}
	return f.enforceDiskQuota
}

// withDisk wraps cont with the disk/du isolator, its state in
// <workDir>/containers-disk.
func (f *linuxFlags) withDisk(cont containerizer.Containerizer, workDir string, log *slog.Logger) (containerizer.Containerizer, error) {
	if f.diskWatchInterval <= 0 {
		return nil, fmt.Errorf("-container-disk-watch-interval %v: want a positive duration", f.diskWatchInterval)
	}
	d, err := containerizer.NewDisk(cont, containerizer.DiskOptions{
		StateDir: filepath.Join(workDir, "containers-disk"),
		Interval: f.diskWatchInterval,
		Enforce:  f.enforceDiskQuota,
		Logger:   log.With("component", "disk"),
	})
	if err != nil {
		return nil, fmt.Errorf("the disk/du isolator: %w", err)
	}
	return d, nil
}

// linux says whether the flags ask for the Linux containerizer.
func (f *linuxFlags) linux() (bool, error) {
	linux := false
	for _, iso := range strings.Split(f.isolation, ",") {
		iso = strings.TrimSpace(iso)
		switch {
		case iso == "" || posixIsolators[iso]:
		case linuxIsolators[iso]:
			linux = true
		default:
			known := make([]string, 0, len(linuxIsolators)+len(posixIsolators))
			for k := range linuxIsolators {
				known = append(known, k)
			}
			for k := range posixIsolators {
				known = append(known, k)
			}
			sort.Strings(known)
			return false, fmt.Errorf("-isolation: unknown isolator %q (known: %s)", iso, strings.Join(known, ", "))
		}
	}
	switch providers := strings.TrimSpace(f.imageProviders); {
	case providers == "":
	case !linux:
		return false, errors.New("-image-providers needs a Linux -isolation (filesystem/linux,docker/runtime,...): images run in the Linux containerizer")
	case strings.ToLower(providers) != "docker":
		return false, fmt.Errorf("-image-providers %q: only docker is supported (Docker and OCI images)", providers)
	}
	return linux, nil
}

// open makes the Linux containerizer of an agent with work dir workDir;
// closeStore releases its image store once the agent has stopped.
func (f *linuxFlags) open(workDir string, log *slog.Logger) (cont containerizer.Containerizer, closeStore func(), err error) {
	opts := containerizer.LinuxOptions{
		StateDir: filepath.Join(workDir, "containers-linux"),
		Cgroups:  cgroups.Options{Root: f.cgroupsRoot, EnableCFS: f.enableCFS},
		Logger:   log.With("component", "containerizer"),
	}
	if strings.TrimSpace(f.imageProviders) != "" {
		dir := f.dockerStoreDir
		if dir == "" {
			dir = filepath.Join(workDir, "store", "docker")
		}
		store, err := image.Open(image.Options{Dir: dir, Registry: f.dockerRegistry, DockerConfig: f.dockerConfig, Logger: log.With("component", "images")})
		if err != nil {
			return nil, nil, fmt.Errorf("-docker-store-dir: %w", err)
		}
		opts.Images = store
	}
	closeStore = func() {
		if opts.Images != nil {
			_ = opts.Images.Close()
		}
	}
	l, err := containerizer.NewLinux(opts)
	if err != nil {
		closeStore()
		return nil, nil, fmt.Errorf("-isolation: the Linux containerizer: %w", err)
	}
	return l, closeStore, nil
}
