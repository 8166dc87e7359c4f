// Command kafka is an operator for Apache Kafka brokers in ZooKeeper mode,
// a short program on the service SDK: -brokers brokers, each a pod on its
// own reserved resources (one per host) with its log directory on a
// persistent volume and its listener's port taken from the offer, all
// registered in the ZooKeeper ensemble (and chroot) given by -zookeeper.
//
//	kafka -master 127.0.0.1:5050 -state /var/lib/kafka-operator/state.json -listen 127.0.0.1:8080 \
//	  -zookeeper zk1:2181,zk2:2181,zk3:2181/kafka \
//	  -kafka-uri https://archive.apache.org/dist/kafka/3.7.0/kafka_2.13-3.7.0.tgz
//
// Kafka comes from the distribution at -kafka-uri (Apache's .tgz, which
// unpacks to the directory named as the file), fetched and extracted into
// each task's sandbox by the agent, and runs as
// <dist>/bin/kafka-server-start.sh server.properties, that file rendered
// from serverProperties. The agents need java. Broker N is pod broker-N
// and has broker.id N for good: restarted in place (its process died, or
// a roll-out) it finds its log directory and meta.properties on its
// volume; replaced on another agent (its agent lost for -replace-after,
// or POST /v1/pods/broker-N/replace) it starts with the same broker.id on
// an empty volume, as Kafka replaces a failed broker, and its partitions'
// replicas catch up from the other brokers. A broker killed with SIGKILL
// stays registered until its ZooKeeper session expires
// (zookeeper.session.timeout.ms, 18 s by default); until then Kafka
// refuses to start under the same broker.id, exits, and is relaunched.
//
// The brokers of a deploy (or a scale up) start at once: none needs
// another to start. A broker is ready once Kafka logs "[KafkaServer
// id=N] started" in <dist>/logs/server.log (it has registered at
// /brokers/ids/N and opened its listener; DC/OS's Kafka service checked
// the same line), and healthy while its port answers.
//
// Restarting the operator with another -log-retention-hours,
// -server-properties or -kafka-uri (an upgrade) rolls the change out one
// broker at a time, each next one only once the one before is ready
// again: never two brokers down. A larger -brokers adds brokers; a
// smaller one is refused, since brokers can only be taken away once their
// partitions are reassigned (kafka-reassign-partitions.sh), which this
// operator does not do.
//
// The operator's state (framework ID, pods, reservations, plan progress)
// is in -state (a file) or -zk (a znode), so a restarted operator carries
// on where it was. The SDK's HTTP API (plans, pods, restart, replace,
// uninstall) is served on -listen.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/examples/internal/operator"
	"github.com/apronhq/apron/service"
)

// serverProperties is server.properties' template; the %s and %d are
// zookeeper.connect, log.retention.hours, the internal topics'
// replication factor and minimum in-sync replicas, and the extra lines.
// log.dirs is relative to the sandbox, where the volume is.
const serverProperties = `broker.id={{.Index}}
listeners=PLAINTEXT://:{{.Ports.broker}}
advertised.listeners=PLAINTEXT://{{.Host}}:{{.Ports.broker}}
log.dirs=data/kafka-logs
zookeeper.connect=%s
log.retention.hours=%d
offsets.topic.replication.factor=%[3]d
transaction.state.log.replication.factor=%[3]d
transaction.state.log.min.isr=%d
%s
`

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	var o operator.Flags
	o.Register(fs, "kafka", "broker")
	var (
		brokers   = fs.Int("brokers", 3, "number of Kafka brokers (change it and restart the operator to add brokers)")
		uri       = fs.String("kafka-uri", "", "`URI` of the Kafka distribution (a .tgz such as kafka_2.13-3.7.0.tgz) the agents fetch")
		zkConnect = fs.String("zookeeper", "", "the brokers' zookeeper.connect: `host:port[,...][/chroot]`")
		retention = fs.Int("log-retention-hours", 168, "the brokers' log.retention.hours; changing it rolls the brokers one at a time")
		extra     = fs.String("server-properties", "", "extra server.properties `lines` (separated by newlines or \\n); changing them rolls the brokers one at a time")
	)
	fs.Usage = cli.Usage(fs, "kafka [flags]", "Runs -brokers Kafka brokers on the cluster of the master given by -master.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := o.Logger()
	if err != nil {
		return err
	}
	u, err := url.Parse(*uri)
	if err != nil || !strings.HasSuffix(u.Path, ".tgz") && !strings.HasSuffix(u.Path, ".tar.gz") {
		return fmt.Errorf("-kafka-uri %q: want the URI of a Kafka distribution's .tgz", *uri)
	}
	dist := strings.TrimSuffix(strings.TrimSuffix(path.Base(u.Path), ".tgz"), ".tar.gz")
	if *zkConnect == "" {
		return errors.New("-zookeeper is required: the ZooKeeper ensemble the brokers register in")
	}
	props := fmt.Sprintf(serverProperties, *zkConnect, *retention, min(*brokers, 3), min(*brokers, 2), strings.ReplaceAll(*extra, `\n`, "\n"))
	started := fmt.Sprintf(`grep -qF '[KafkaServer id={{.Index}}] started' %s/logs/server.log`, dist)
	spec := &service.Spec{
		Name: o.Name, Role: o.Role, Principal: o.Principal, ReplaceAfter: o.ReplaceAfter,
		Pods: []service.PodSpec{{
			Name: "broker", Count: *brokers, CPUs: o.CPUs, Mem: o.Mem,
			Ports:     []service.PortSpec{{Name: "broker"}},
			Volumes:   []service.VolumeSpec{{Path: "data", Size: o.Disk}},
			URIs:      []string{*uri},
			Env:       map[string]string{"KAFKA_HEAP_OPTS": fmt.Sprintf("-Xmx%[1]dm -Xms%[1]dm", int(o.Mem/2))},
			Configs:   []service.ConfigSpec{{Path: "server.properties", Template: props}},
			Command:   "exec " + dist + "/bin/kafka-server-start.sh server.properties",
			Readiness: &service.CheckSpec{Command: started, Timeout: 5 * time.Second},
			Health: &service.HealthSpec{CheckSpec: service.CheckSpec{TCPPort: "broker", Interval: 5 * time.Second, Timeout: 5 * time.Second},
				ConsecutiveFailures: 6, GracePeriod: time.Minute},
			KillGracePeriod: 30 * time.Second, // a controlled shutdown moves the broker's leaderships first
			Placement:       service.Placement{MaxPerHost: 1},
			Strategy:        service.Parallel, // brokers start on their own...
			Quorum:          true,             // ...but roll one at a time
		}},
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	store, closeStore, err := o.Store()
	if err != nil {
		return err
	}
	defer closeStore()
	data, _, err := store.Load(ctx)
	if err != nil {
		return err
	}
	if st, err := service.UnmarshalState(data); err != nil {
		return err
	} else if len(st.Pods) > *brokers {
		return fmt.Errorf("-brokers %d: there are %d brokers; removing brokers needs their partitions reassigned first", *brokers, len(st.Pods))
	}
	svc, err := service.New(ctx, service.Config{Spec: spec, Store: store, Logger: log})
	if err != nil {
		return err
	}
	return o.Run(ctx, svc, log)
}
