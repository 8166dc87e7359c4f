package examples

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/service"
)

// TestKafkaOperator runs the Kafka operator (examples/kafka) on a master
// and 4 agents, all separate processes on loopback, with a real ZooKeeper
// (issue 12). Kafka cannot be installed here, so the brokers are the
// stand-in (examples/kafka/standin), packaged as a Kafka distribution
// tarball served over HTTP and fetched by the agents: it registers in
// ZooKeeper as Kafka does and keeps a small log on its volume. Deploy 3
// brokers: /brokers/ids holds 0, 1 and 2 at their pods' addresses; a
// broker killed with SIGKILL is restarted in place with its broker.id and
// its records; a rolling change of log.retention.hours restarts the
// brokers one at a time, never two unregistered at once; the operator
// refuses to run fewer brokers than it has; an agent killed
// for good has its broker replaced on the spare agent with the same
// broker.id and an empty volume; uninstall leaves no reservation, volume
// or registration behind. Skipped with -short, off Linux, and without
// java and Debian's zookeeper jar.
func TestKafkaOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process Kafka test: builds the example binaries and runs ZooKeeper; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper: %s", why)
	}
	dir := t.TempDir()
	t.Cleanup(func() { killLeftovers(t, dir) }) // brokers outlive a killed agent
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/kafka", "examples/kafka/standin")
	dist := filepath.Join(t.TempDir(), "kafka_2.13-3.7.0.tgz")
	out, err := exec.Command(bin["standin"], "-package", dist).CombinedOutput()
	require.NoError(t, err, "packaging the stand-in: %s", out)
	files := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(dist))))
	defer files.Close()
	zks := zktest.Start(t)
	conn, _, err := zk.Connect([]string{zks.Addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	require.NoError(t, err)
	defer conn.Close()

	master, agents, _ := startOperatorCluster(t, bin, dir, 4, 28000)

	api := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	state := filepath.Join(dir, "operator-state.json")
	startOperator := func(extra ...string) *proctest.Proc {
		// A 3 s ZooKeeper session: a killed broker's registration goes
		// (and its successor can start) 3 s after its death.
		args := append([]string{"-master", master.Addr, "-listen", api, "-state", state,
			"-kafka-uri", files.URL + "/kafka_2.13-3.7.0.tgz", "-zookeeper", zks.Addr + "/kafka",
			"-server-properties", "zookeeper.session.timeout.ms=3000",
			"-cpus", "0.2", "-mem", "128", "-disk", "100", "-replace-after", "2s", "-log-level", "info"}, extra...)
		op := proctest.Start(t, "kafka-operator", exec.Command(bin["kafka"], args...))
		require.NoError(t, op.WaitHTTP("http://"+api+"/v1/plans", wait))
		return op
	}

	start := time.Now()
	op := startOperator()
	waitDeploy(t, api)
	t.Logf("start → 3 brokers ready: %.1f s", time.Since(start).Seconds())
	checkKafkaRegistrations(t, conn, api)
	for _, p := range pods(t, api) {
		assert.Equal(t, 1, p.Launches, "%s launched once", p.Name)
		assert.Equal(t, fmt.Sprintf("broker.id=%d", p.Index), kafkaBrokerMeta(t, dir, p.Name)["broker.id"], "%s's meta.properties", p.Name)
	}
	records := []string{"r0", "r1", "r2"}
	b1 := pod(t, api, "broker-1")
	for i, r := range records {
		assert.Equal(t, "OK "+strconv.Itoa(i), kafkaProduce(t, kafkaBrokerAddr(b1), r))
	}
	require.Equal(t, records, kafkaFetch(t, kafkaBrokerAddr(b1)))

	t.Run("RestartInPlace", func(t *testing.T) {
		before := pod(t, api, "broker-1")
		pid := kafkaPid(dir, "broker-1")
		require.NotZero(t, pid, "broker-1's process")
		killed := time.Now()
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			p := pod(t, api, "broker-1")
			return p.TaskID != before.TaskID && p.Ready
		}, wait, 100*time.Millisecond, "broker-1 restarted")
		after := pod(t, api, "broker-1")
		t.Logf("broker-1 killed → restarted in place and registered: %.1f s, %d launches (a relaunch before its old session expired refused to start, as Kafka does)",
			time.Since(killed).Seconds(), after.Launches-before.Launches)
		// The SDK's relaunch backoff (1 s, doubling) paces the relaunches
		// that the 3 s session refuses: not one per offer.
		assert.LessOrEqual(t, after.Launches-before.Launches, 3, "relaunches paced")
		assert.Equal(t, before.AgentID, after.AgentID, "restarted in place")
		assert.Equal(t, before.PersistenceIDs, after.PersistenceIDs)
		assert.Equal(t, records, kafkaFetch(t, kafkaBrokerAddr(after)), "its records are intact")
		assert.Equal(t, "broker.id=1", kafkaBrokerMeta(t, dir, "broker-1")["broker.id"])
		checkKafkaRegistrations(t, conn, api)
	})

	t.Run("RollingConfigChange", func(t *testing.T) {
		before := map[string]service.PodStatus{}
		for _, p := range pods(t, api) {
			before[p.Name] = p
		}
		regs := watchKafkaRegistrations(conn, "/kafka/brokers/ids")
		op.Stop()
		op = startOperator("-log-retention-hours", "24")
		require.Eventually(t, func() bool {
			for _, p := range pods(t, api) {
				if p.Config != p.Target || !p.Ready || p.Launches == before[p.Name].Launches {
					return false
				}
			}
			return deployStatus(api) == service.StatusComplete
		}, wait, 100*time.Millisecond, "the new server.properties rolled out")
		fewest, changes := regs.stop()
		t.Logf("rolling change: %d changes of /brokers/ids seen, fewest brokers registered %d", changes, fewest)
		assert.Equal(t, 2, fewest, "never two brokers unregistered at once (and each was restarted)")
		for _, p := range pods(t, api) {
			assert.Equal(t, before[p.Name].Launches+1, p.Launches, "%s restarted once", p.Name)
			assert.Equal(t, before[p.Name].AgentID, p.AgentID, "%s restarted in place", p.Name)
			assert.Contains(t, kafkaBrokerFile(t, dir, p.Name, "server.properties"), "\nlog.retention.hours=24\n", "%s runs the new configuration", p.Name)
		}
		assert.Equal(t, records, kafkaFetch(t, kafkaBrokerAddr(pod(t, api, "broker-1"))))
		checkKafkaRegistrations(t, conn, api)
	})

	t.Run("ScaleDownRefused", func(t *testing.T) {
		op.Stop()
		args := []string{"-master", master.Addr, "-listen", api, "-state", state, "-kafka-uri", files.URL + "/kafka_2.13-3.7.0.tgz",
			"-zookeeper", zks.Addr + "/kafka", "-brokers", "2"}
		refused := proctest.Start(t, "kafka-operator", exec.Command(bin["kafka"], args...))
		assert.Equal(t, 1, refused.Wait(t, wait))
		assert.Contains(t, refused.Output(), "-brokers 2: there are 3 brokers")
		op = startOperator("-log-retention-hours", "24")
		waitDeploy(t, api)
		for _, p := range pods(t, api) {
			assert.True(t, p.Ready, "%s untouched", p.Name)
		}
	})

	t.Run("ReplaceLostAgent", func(t *testing.T) {
		before := pod(t, api, "broker-2")
		var lost string
		for name := range agents {
			if hostOf(name) == before.Hostname {
				lost = name
			}
		}
		require.NotEmpty(t, lost)
		killed := time.Now()
		agents[lost].Kill(t, wait)
		killLeftovers(t, filepath.Join(dir, lost)) // its broker outlives it
		delete(agents, lost)
		require.Eventually(t, func() bool {
			p := pod(t, api, "broker-2")
			return p.AgentID != before.AgentID && p.AgentID != "" && p.Ready
		}, wait, 100*time.Millisecond, "broker-2 replaced")
		t.Logf("broker-2's agent killed → broker-2 replaced and registered: %.1f s", time.Since(killed).Seconds())
		after := pod(t, api, "broker-2")
		assert.NotEqual(t, before.Hostname, after.Hostname)
		assert.NotEqual(t, before.PersistenceIDs, after.PersistenceIDs, "a new volume")
		assert.Equal(t, "broker.id=2", kafkaBrokerMeta(t, dir, "broker-2")["broker.id"], "the same broker.id")
		assert.Empty(t, kafkaFetch(t, kafkaBrokerAddr(after)), "on an empty volume")
		checkKafkaRegistrations(t, conn, api)
	})

	t.Run("Uninstall", func(t *testing.T) {
		uninstall(t, master.Addr, api, op, dir, agents, "kafka")
		assert.Eventually(t, func() bool {
			ids, _, err := conn.Children("/kafka/brokers/ids")
			return err == nil && len(ids) == 0
		}, wait, 100*time.Millisecond, "every broker deregistered as it stopped")
		assert.Eventually(t, func() bool {
			return kafkaPid(dir, "broker-0")+kafkaPid(dir, "broker-1")+kafkaPid(dir, "broker-2") == 0
		}, wait, 100*time.Millisecond, "no broker left running")
	})
}

func kafkaBrokerAddr(p service.PodStatus) string {
	return net.JoinHostPort(p.Hostname, strconv.FormatUint(p.Ports["broker"], 10))
}

// kafkaRegistration is a broker's /brokers/ids/<id> znode, as Kafka
// writes it.
type kafkaRegistration struct {
	Version   int               `json:"version"`
	Host      string            `json:"host"`
	Port      uint64            `json:"port"`
	Endpoints []string          `json:"endpoints"`
	JMXPort   int               `json:"jmx_port"`
	Timestamp string            `json:"timestamp"`
	Protocols map[string]string `json:"listener_security_protocol_map"`
	Features  map[string]any    `json:"features"`
}

// checkKafkaRegistrations checks that /kafka/brokers/ids holds exactly the
// operator's brokers, each at its pod's address.
func checkKafkaRegistrations(t *testing.T, conn *zk.Conn, api string) {
	t.Helper()
	ids, _, err := conn.Children("/kafka/brokers/ids")
	require.NoError(t, err)
	sort.Strings(ids)
	require.Equal(t, []string{"0", "1", "2"}, ids, "the registered brokers")
	for _, p := range pods(t, api) {
		data, _, err := conn.Get("/kafka/brokers/ids/" + strconv.Itoa(p.Index))
		require.NoError(t, err)
		var reg kafkaRegistration
		require.NoError(t, json.Unmarshal(data, &reg), "%s", data)
		assert.Equal(t, 5, reg.Version, "%s's registration", p.Name)
		assert.Equal(t, []string{"PLAINTEXT://" + kafkaBrokerAddr(p)}, reg.Endpoints, "%s's endpoints", p.Name)
		assert.Equal(t, p.Hostname, reg.Host)
		assert.Equal(t, p.Ports["broker"], reg.Port)
		assert.Equal(t, map[string]string{"PLAINTEXT": "PLAINTEXT"}, reg.Protocols)
		assert.Equal(t, -1, reg.JMXPort)
		assert.NotNil(t, reg.Features)
		_, err = strconv.ParseInt(reg.Timestamp, 10, 64)
		assert.NoError(t, err, "timestamp %q in milliseconds", reg.Timestamp)
	}
}

// kafkaPid finds the broker process of the pod name started by an agent
// under dir; 0 when there is none.
func kafkaPid(dir, name string) int {
	return proctest.Find(func(p proctest.Process) bool {
		pod, _ := p.Getenv("POD_NAME")
		return slices.ContainsFunc(p.Args, func(a string) bool { return strings.HasSuffix(a, "/libs/kafka-standin") }) && pod == name && p.InSandboxUnder(dir)
	})
}

// kafkaBrokerFile reads a file of the running broker name's sandbox.
func kafkaBrokerFile(t *testing.T, dir, name, file string) string {
	t.Helper()
	pid := kafkaPid(dir, name)
	require.NotZero(t, pid, "%s's process", name)
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cwd", file))
	require.NoError(t, err)
	return string(data)
}

// kafkaBrokerMeta is the running broker name's meta.properties, as
// "key=value" by key.
func kafkaBrokerMeta(t *testing.T, dir, name string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(kafkaBrokerFile(t, dir, name, "data/kafka-logs/meta.properties"), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok {
			out[k] = line
		}
	}
	return out
}

// kafkaCall sends one line to the stand-in broker at addr and reads its
// answer: its first line, and n more lines when the first is a number n.
func kafkaCall(t *testing.T, addr, line string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintln(c, line)
	require.NoError(t, err)
	r := bufio.NewReader(c)
	first, err := r.ReadString('\n')
	require.NoError(t, err)
	out := []string{strings.TrimSuffix(first, "\n")}
	n, err := strconv.Atoi(out[0])
	for i := 0; err == nil && i < n; i++ {
		rec, rerr := r.ReadString('\n')
		require.NoError(t, rerr)
		out = append(out, strings.TrimSuffix(rec, "\n"))
	}
	return out
}

func kafkaProduce(t *testing.T, addr, value string) string {
	return kafkaCall(t, addr, "PRODUCE "+value)[0]
}

func kafkaFetch(t *testing.T, addr string) []string {
	out := kafkaCall(t, addr, "FETCH")
	if len(out) == 1 {
		return nil
	}
	return out[1:]
}

// kafkaRegWatch follows the children of a znode with watches: the fewest seen
// at once, and how many changes it saw.
type kafkaRegWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	fewest  int
	changes int
}

func watchKafkaRegistrations(conn *zk.Conn, path string) *kafkaRegWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &kafkaRegWatch{cancel: cancel, done: make(chan struct{}), fewest: -1}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			ids, _, ch, err := conn.ChildrenW(path)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			w.mu.Lock()
			if w.fewest < 0 || len(ids) < w.fewest {
				w.fewest = len(ids)
			}
			w.changes++
			w.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
		}
	}()
	return w
}

func (w *kafkaRegWatch) stop() (fewest, changes int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewest, w.changes - 1
}
