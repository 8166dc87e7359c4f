package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

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
}

func (f *linuxFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.isolation, "isolation", "", "Mesos's --isolation: a comma-separated list of `isolators` (filesystem/linux, cgroups/cpu, cgroups/mem, cgroups/pids, namespaces/pid, namespaces/ipc, docker/runtime, volume/host_path, ...); any Linux one runs tasks in the Linux containerizer, which applies them all: namespaces, cgroups, images (needs root). Empty or posix/cpu,posix/mem: the process containerizer")
	fs.StringVar(&f.imageProviders, "image-providers", "", "Mesos's --image_providers: \"docker\" lets tasks run from Docker/OCI images (ContainerInfo type MESOS with a DOCKER image); needs a Linux -isolation")
	fs.StringVar(&f.dockerRegistry, "docker-registry", "", "Mesos's --docker_registry: the registry image names without one resolve against, a URL (http://host:port speaks plain HTTP) or host[:port] (default: Docker Hub)")
	fs.StringVar(&f.dockerStoreDir, "docker-store-dir", "", "Mesos's --docker_store_dir: where pulled layers are kept, shared by every container (default: <work-dir>/store/docker)")
	fs.StringVar(&f.dockerConfig, "docker-config", "", "Mesos's --docker_config: a docker config.json `file` with registry credentials")
	fs.BoolVar(&f.enableCFS, "cgroups-enable-cfs", false, "Mesos's --cgroups_enable_cfs: cap each task's CPU time at its cpus with a CFS quota, not only share it")
	fs.StringVar(&f.cgroupsRoot, "cgroups-root", "apron", "Mesos's --cgroups_root: the cgroup the containers' cgroups are made in, at the top of each hierarchy")
}

// linuxIsolators are the isolators the Linux containerizer stands for:
// it applies all of them together.
var linuxIsolators = map[string]bool{
	"filesystem/linux": true, "cgroups/cpu": true, "cgroups/mem": true, "cgroups/pids": true,
	"cgroups/blkio": true, "cgroups/all": true, "namespaces/pid": true, "namespaces/ipc": true,
	"docker/runtime": true, "volume/host_path": true, "volume/sandbox_path": true,
}

// posixIsolators are Mesos's defaults, what the process containerizer does.
var posixIsolators = map[string]bool{"posix/cpu": true, "posix/mem": true, "filesystem/posix": true, "posix/disk": true}

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
