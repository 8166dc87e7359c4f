// Command etcd is an operator for an etcd cluster, a short program on the
// service SDK: -members etcd members, each a pod on its own reserved
// resources (one per host) with its data directory on a persistent
// volume, its client and peer ports taken from the offer.
//
//	etcd -master 127.0.0.1:5050 -state /var/lib/etcd-operator/state.json -listen 127.0.0.1:8080
//
// Membership goes through etcd's member API, in a few lines of shell
// before etcd starts (podCommand): a member that finds its data directory
// on its volume just starts on it (a restart in place); one whose volume
// is empty and whose peers are placed (a replacement on a new agent, a
// member added by a scale up, every member after the first at the first
// deploy) removes any earlier incarnation of itself from the cluster
// (same name or same peer URL), adds itself with `etcdctl member add`
// and starts with --initial-cluster-state existing. Only the first
// member of the first deploy, whose peers are not placed yet, starts a
// new cluster, on its own: the cluster grows one member at a time, as
// the SDK's serial deploy waits for each member to be ready (GET /health
// on its client port, which needs a leader and a quorum read). Members
// listen on every address and advertise their agent's hostname, which
// must resolve for the other members and for clients.
//
// Restarting the operator with other flags rolls the change out: a new
// -etcd-flags restarts the members one at a time, a larger -members adds
// members, a smaller one removes the highest-numbered ones: the
// SDK's decommission hook (decommission) takes each out of etcd's
// membership with `etcdctl member remove` before its pod is killed and
// its resources freed, so a removed member never counts against the
// quorum. The hook runs etcdctl on the operator's host too (beside -etcd,
// or on PATH).
//
// The operator's state (framework ID, pods, reservations, plan progress)
// is in -state (a file) or -zk (a znode), so a restarted operator carries
// on where it was. The SDK's HTTP API (plans, pods, restart, replace,
// uninstall) is served on -listen.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/scheduler"
	"github.com/apronhq/apron/service"
)

// podCommand starts one member (see the package doc). $BIN_ETCD,
// $BIN_ETCDCTL and $EXTRA_FLAGS come from the pod's environment; the
// names avoid etcd's ETCD_* and etcdctl's ETCDCTL_* configuration
// variables.
const podCommand = `me={{.Pod}} peer=http://{{.Host}}:{{.Ports.peer}}
eps='{{range .Peers}}{{if and (ne .Pod $.Pod) (.Addr "client")}}http://{{.Addr "client"}},{{end}}{{end}}'
cluster=$me=$peer state=new
if [ ! -d data/etcd/member ] && [ -n "$eps" ]; then
  ctl() { "$BIN_ETCDCTL" --endpoints "${eps%,}" --command-timeout 5s "$@"; }
  until list=$(ctl member list) && old=$(echo "$list" | awk -F', ' -v n=$me -v u=$peer '$3 == n || $4 == u {print $1; exit}') &&
    if [ -n "$old" ]; then ctl member remove $old; false; else added=$(ctl member add $me --peer-urls $peer); fi
  do sleep 1; done
  cluster=$(echo "$added" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p') state=existing
fi
exec "$BIN_ETCD" --name $me --data-dir data/etcd --initial-cluster-token {{.Service}} \
  --listen-client-urls http://0.0.0.0:{{.Ports.client}} --advertise-client-urls http://{{.Host}}:{{.Ports.client}} \
  --listen-peer-urls http://0.0.0.0:{{.Ports.peer}} --initial-advertise-peer-urls $peer \
  --initial-cluster "$cluster" --initial-cluster-state $state $EXTRA_FLAGS
`

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	var (
		masters      = fs.String("master", "127.0.0.1:5050", cli.MasterFlagHelp)
		name         = fs.String("name", "etcd", "the service's (and framework's) name, on every reservation it makes")
		role         = fs.String("role", "etcd", "the `role` the members' resources are reserved for")
		principal    = fs.String("principal", "etcd-operator", "the principal reservations and volumes are made by")
		members      = fs.Int("members", 3, "number of etcd members (change it and restart the operator to add or remove members)")
		cpus         = fs.Float64("cpus", 0.5, "cpus of each member")
		mem          = fs.Float64("mem", 512, "memory of each member, MB")
		disk         = fs.Float64("disk", 1024, "size of each member's data volume, MB (cannot change once deployed)")
		statePath    = fs.String("state", "", "`file` keeping the operator's state across restarts")
		zkURL        = fs.String("zk", "", "keep the operator's state in ZooKeeper instead, at `zk://host:port[,...]/znode`")
		listen       = fs.String("listen", "127.0.0.1:8080", "`host:port` of the operator's HTTP API (/v1/plans, /v1/pods, ...)")
		etcdBin      = fs.String("etcd", "etcd", "`path` of the etcd binary on the agents; etcdctl is expected beside it (or on PATH)")
		etcdFlags    = fs.String("etcd-flags", "", "extra `flags` for every member; changing them rolls the members one at a time")
		replaceAfter = fs.Duration("replace-after", 10*time.Minute, "replace a member whose agent is lost for this long on another agent (0: only on command)")
		credential   cli.Credential
		common       cli.Common
	)
	credential.Register(fs)
	common.Register(fs, "info")
	fs.Usage = cli.Usage(fs, "etcd [flags]", "Runs an etcd cluster of -members members on the cluster of the master given by -master.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*statePath == "") == (*zkURL == "") {
		return errors.New("want one of -state and -zk: where the operator keeps its state")
	}
	log, err := common.Logger()
	if err != nil {
		return err
	}
	etcdctl := "etcdctl"
	if strings.Contains(*etcdBin, "/") {
		if p := filepath.Join(filepath.Dir(*etcdBin), "etcdctl"); fileExists(p) {
			etcdctl = p
		}
	}
	health := service.CheckSpec{HTTPPort: "client", HTTPPath: "/health", Timeout: 5 * time.Second}
	spec := &service.Spec{
		Name: *name, Role: *role, Principal: *principal, ReplaceAfter: *replaceAfter,
		Pods: []service.PodSpec{{
			Name: "member", Count: *members, CPUs: *cpus, Mem: *mem,
			Ports:     []service.PortSpec{{Name: "client"}, {Name: "peer"}},
			Volumes:   []service.VolumeSpec{{Path: "data", Size: *disk}},
			Env:       map[string]string{"BIN_ETCD": *etcdBin, "BIN_ETCDCTL": etcdctl, "EXTRA_FLAGS": *etcdFlags},
			Command:   podCommand,
			Readiness: &health,
			Health: &service.HealthSpec{CheckSpec: service.CheckSpec{HTTPPort: "client", HTTPPath: "/health", Interval: 5 * time.Second, Timeout: 5 * time.Second},
				ConsecutiveFailures: 6, GracePeriod: time.Minute},
			KillGracePeriod: 10 * time.Second,
			Placement:       service.Placement{MaxPerHost: 1},
			Quorum:          true,
		}},
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	var store service.Store = service.NewFileStore(*statePath)
	if *zkURL != "" {
		u, err := zookeeper.ParseURL(*zkURL)
		if err != nil {
			return err
		}
		conn, _, err := zk.Connect(u.Servers, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return err
		}
		defer conn.Close()
		if store, err = service.NewZKStore(conn, u.Path); err != nil {
			return err
		}
	}
	var svc *service.Service
	hook := func(ctx context.Context, p service.PodStatus) error { return decommission(ctx, svc, etcdctl, p) }
	if svc, err = service.New(ctx, service.Config{Spec: spec, Store: store, Logger: log, Decommission: hook}); err != nil {
		return err
	}
	ms, err := cli.ParseMasters(*masters, log)
	if err != nil {
		return err
	}
	defer ms.Close()
	opts := []scheduler.Option{ms.SchedulerOption()}
	if cred, err := credential.Read(); err != nil {
		return err
	} else if cred != nil {
		opts = append(opts, scheduler.WithCredential(*cred))
	}
	ln, err := cli.Listen(*listen)
	if err != nil {
		return err
	}
	go func() { _ = cli.Serve(ctx, ln, svc.Handler(), nil, time.Second, log) }()
	log.Info("running etcd", "members", *members, "api", "http://"+ln.Addr().String())
	return svc.Run(ctx, opts...)
}

// decommission removes pod's member from etcd's membership (by name, or
// by peer URL for a member added but never started), asking the other
// members that are staying; a member already gone is success, so a
// second run after a restart is harmless.
func decommission(ctx context.Context, svc *service.Service, etcdctl string, pod service.PodStatus) error {
	pods, err := svc.Pods(ctx)
	if err != nil {
		return err
	}
	var eps []string
	for _, p := range pods {
		if p.Name != pod.Name && !p.Decommission && p.Hostname != "" && p.Ports["client"] != 0 {
			eps = append(eps, fmt.Sprintf("http://%s:%d", p.Hostname, p.Ports["client"]))
		}
	}
	if len(eps) == 0 {
		return nil // no member stays: nobody to deregister from
	}
	ctl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, etcdctl, append([]string{"--endpoints", strings.Join(eps, ","), "--command-timeout", "5s"}, args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("etcdctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return string(out), nil
	}
	list, err := ctl("member", "list")
	if err != nil {
		return err
	}
	peer := fmt.Sprintf("http://%s:%d", pod.Hostname, pod.Ports["peer"])
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Split(line, ", "); len(f) >= 4 && (f[2] == pod.Name || f[3] == peer) {
			_, err := ctl("member", "remove", f[0])
			return err
		}
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
