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

	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/examples/internal/operator"
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
	var o operator.Flags
	o.Register(fs, "etcd", "member")
	var (
		members   = fs.Int("members", 3, "number of etcd members (change it and restart the operator to add or remove members)")
		etcdBin   = fs.String("etcd", "etcd", "`path` of the etcd binary on the agents; etcdctl is expected beside it (or on PATH)")
		etcdFlags = fs.String("etcd-flags", "", "extra `flags` for every member; changing them rolls the members one at a time")
	)
	fs.Usage = cli.Usage(fs, "etcd [flags]", "Runs an etcd cluster of -members members on the cluster of the master given by -master.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := o.Logger()
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
		Name: o.Name, Role: o.Role, Principal: o.Principal, ReplaceAfter: o.ReplaceAfter,
		Pods: []service.PodSpec{{
			Name: "member", Count: *members, CPUs: o.CPUs, Mem: o.Mem,
			Ports:     []service.PortSpec{{Name: "client"}, {Name: "peer"}},
			Volumes:   []service.VolumeSpec{{Path: "data", Size: o.Disk}},
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
	store, closeStore, err := o.Store()
	if err != nil {
		return err
	}
	defer closeStore()
	var svc *service.Service
	hook := func(ctx context.Context, p service.PodStatus) error { return decommission(ctx, svc, etcdctl, p) }
	if svc, err = service.New(ctx, service.Config{Spec: spec, Store: store, Logger: log, Decommission: hook}); err != nil {
		return err
	}
	return o.Run(ctx, svc, log)
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
