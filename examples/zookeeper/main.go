// Command zookeeper is an operator for a ZooKeeper ensemble, a short
// program on the service SDK: -servers servers, each a pod on its own
// reserved resources (one per host) with its data directory and myid on a
// persistent volume, its client, peer and election ports taken from the
// offer.
//
//	zookeeper -master 127.0.0.1:5050 -state /var/lib/zk-operator/state.json -listen 127.0.0.1:8080
//
// A ZooKeeper server needs the whole ensemble in its zoo.cfg
// (server.N=host:peer:election) when it starts, so the pods are placed
// together (PodSpec.PlaceTogether): every server's resources are
// reserved, and its ports chosen, before the first is launched. Server N
// is pod server-(N-1); its myid is written on its volume. A server is
// ready once it answers the four-letter word srvr with its mode (leader
// or follower): it serves in a quorum. A server whose JVM dies is
// restarted in place on its data; a replaced one (POST
// /v1/pods/server-N/replace, or its agent lost for -replace-after) starts
// on a new agent with an empty volume and syncs from the leader; once it
// serves, the SDK restarts the other servers one at a time so that their
// zoo.cfg names it at its new address (a follower finds its leader by
// its static configuration).
//
// Restarting the operator with another -zoo-cfg (lines appended to every
// zoo.cfg) rolls the change out one server at a time, each next one only
// once the one before serves again: a quorum is kept throughout.
//
// The operator's state (framework ID, pods, reservations, plan progress)
// is in -state, so a restarted operator carries on where it was. The
// SDK's HTTP API (plans, pods, restart, replace, uninstall) is served on
// -listen.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/examples/internal/operator"
	"github.com/apronhq/apron/service"
)

// podCommand writes the server's myid on its volume and starts it; the
// -Dapron.pod property names the pod in the process list.
const podCommand = `mkdir -p data/zk && echo {{add .Index 1}} > data/zk/myid || exit 1
exec "$BIN_JAVA" $JVM_FLAGS -Dapron.pod={{.Pod}} -Dzookeeper.admin.enableServer=false \
  -cp "$ZK_CLASSPATH" org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg
`

// zooCfg is zoo.cfg's template; %d are tickTime, %s the extra lines.
const zooCfg = `tickTime=%d
initLimit=20
syncLimit=10
dataDir=data/zk
clientPort={{.Ports.client}}
4lw.commands.whitelist=srvr,ruok,mntr,conf
admin.enableServer=false
{{range .Peers}}server.{{add .Index 1}}={{.Host}}:{{.Ports.peer}}:{{.Ports.election}}
{{end}}%s
`

// serving asks the server for srvr: it names its mode once it serves.
const serving = `exec bash -c 'exec 3<>/dev/tcp/{{.Host}}/{{.Ports.client}} && printf srvr >&3 && grep -q "^Mode: " <&3'`

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "zookeeper:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("zookeeper", flag.ContinueOnError)
	var o operator.Flags
	o.Register(fs, "zookeeper", "server")
	var (
		servers   = fs.Int("servers", 3, "number of ZooKeeper servers (fixed once deployed)")
		java      = fs.String("java", "java", "`path` of java on the agents")
		classpath = fs.String("classpath", "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar", "ZooKeeper's java class path on the agents (Debian's zookeeper package)")
		jvmFlags  = fs.String("jvm-flags", "-Xmx256m -XX:+UseSerialGC", "the servers' JVM `flags` (-mem bounds the whole process)")
		tick      = fs.Duration("tick", 2*time.Second, "ZooKeeper's tickTime (sessions last 2 to 20 ticks)")
		extra     = fs.String("zoo-cfg", "", "extra zoo.cfg `lines` (separated by newlines or \\n); changing them rolls the servers one at a time")
	)
	fs.Usage = cli.Usage(fs, "zookeeper [flags]", "Runs a ZooKeeper ensemble of -servers servers on the cluster of the master given by -master.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := o.Logger()
	if err != nil {
		return err
	}
	ready := service.CheckSpec{Command: serving, Timeout: 5 * time.Second}
	spec := &service.Spec{
		Name: o.Name, Role: o.Role, Principal: o.Principal, ReplaceAfter: o.ReplaceAfter,
		Pods: []service.PodSpec{{
			Name: "server", Count: *servers, CPUs: o.CPUs, Mem: o.Mem,
			Ports:     []service.PortSpec{{Name: "client"}, {Name: "peer"}, {Name: "election"}},
			Volumes:   []service.VolumeSpec{{Path: "data", Size: o.Disk}},
			Env:       map[string]string{"BIN_JAVA": *java, "ZK_CLASSPATH": *classpath, "JVM_FLAGS": *jvmFlags},
			Configs:   []service.ConfigSpec{{Path: "zoo.cfg", Template: fmt.Sprintf(zooCfg, tick.Milliseconds(), strings.ReplaceAll(*extra, `\n`, "\n"))}},
			Command:   podCommand,
			Readiness: &ready,
			Health: &service.HealthSpec{CheckSpec: service.CheckSpec{TCPPort: "client", Interval: 5 * time.Second, Timeout: 5 * time.Second},
				ConsecutiveFailures: 6, GracePeriod: time.Minute},
			KillGracePeriod: 5 * time.Second,
			Placement:       service.Placement{MaxPerHost: 1},
			Quorum:          true,
			PlaceTogether:   true,
		}},
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	store, closeStore, err := o.Store()
	if err != nil {
		return err
	}
	defer closeStore()
	// The ensemble's membership is static: refuse to change its size.
	data, _, err := store.Load(ctx)
	if err != nil {
		return err
	}
	if st, err := service.UnmarshalState(data); err != nil {
		return err
	} else if len(st.Pods) > 0 && len(st.Pods) != *servers {
		return fmt.Errorf("-servers %d: the ensemble has %d servers and cannot change size", *servers, len(st.Pods))
	}
	svc, err := service.New(ctx, service.Config{Spec: spec, Store: store, Logger: log})
	if err != nil {
		return err
	}
	return o.Run(ctx, svc, log)
}
