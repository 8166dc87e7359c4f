package examples

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/scheduler"
)

// TestTLSCluster runs the binaries with TLS from a CA made in the test: a
// master that requires client certificates, an agent (its command
// executors processes of their own, on https too) and the batch
// framework, each with a certificate of that CA. The job runs; Offer.url
// says https; a framework that does not trust the CA, and an agent whose
// certificate another CA signed, are refused; curl --cacert (when curl is
// installed) reaches the master only with a client certificate.
func TestTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster")
	masterCert := ca.Issue(t, "master")
	agentCert := ca.Issue(t, "agent")
	batchCert := ca.Issue(t, "batch")
	tlsArgs := func(p tlstest.Pair) []string {
		return []string{"-tls-cert", p.CertFile, "-tls-key", p.KeyFile, "-tls-ca", ca.CAFile}
	}
	client := tlsClient(t, tlsconfig.Files{CertFile: batchCert.CertFile, KeyFile: batchCert.KeyFile, CAFile: ca.CAFile})

	master := startTLSServer(t, "master", client, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], append([]string{"-listen", addr, "-allocation-interval", "100ms", "-log-level", "info",
			"-tls-require-client-cert"}, tlsArgs(masterCert)...)...)
	})
	assert.Contains(t, master.Output(), "listening on https://")
	startTLSServer(t, "agent", client, func(addr string) *exec.Cmd {
		return exec.Command(bin["agent"], append([]string{"-master", master.Addr, "-listen", addr,
			"-work-dir", filepath.Join(dir, "agent"), "-hostname", "127.0.0.1",
			// Executor processes: they must speak TLS to the agent too,
			// from the LIBPROCESS_SSL_* environment the agent gives them.
			"-command-executor", "process",
			"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]", "-log-level", "info"}, tlsArgs(agentCert)...)...)
	})
	require.Eventually(t, func() bool { return tlsAgents(client, master.Addr) == 1 }, wait, 50*time.Millisecond,
		"the agent registers over TLS")

	t.Run("Job", func(t *testing.T) {
		batch := proctest.Start(t, "batch", exec.Command(bin["batch"], append([]string{"-master", master.Addr, "-tasks", "3",
			"-cmd", `echo "task $TASK_INDEX"`, "-cpus", "0.5", "-mem", "32", "-name", "tls-job",
			"-journal-dir", t.TempDir()}, tlsArgs(batchCert)...)...))
		require.Equal(t, 0, batch.Wait(t, wait), "the batch job succeeds over TLS:\n%s", batch.Output())
		assert.Contains(t, batch.Output(), "3 tasks: 3 finished, 0 failed for good")
	})

	t.Run("OfferURL", func(t *testing.T) {
		src, err := tlsconfig.Load(tlsconfig.Files{CertFile: batchCert.CertFile, KeyFile: batchCert.KeyFile, CAFile: ca.CAFile}, tlsconfig.Options{})
		require.NoError(t, err)
		fw := &offerCatcher{offers: make(chan mesospb.Offer, 16)}
		d, err := scheduler.NewDriver(fw, mesospb.FrameworkInfo{User: "nobody", Name: "offer-url"},
			scheduler.WithMasterURL(master.Addr), scheduler.WithTLS(src.ClientConfig()))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Run(ctx) }()
		defer func() { cancel(); <-done }()
		select {
		case o := <-fw.offers:
			assert.Equal(t, "https", o.URL.Scheme)
			assert.Equal(t, "127.0.0.1", o.URL.Address.GetHostname())
		case <-time.After(wait):
			t.Fatal("no offer over TLS")
		}
	})

	t.Run("WrongCA", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		batch := proctest.Start(t, "batch-wrong-ca", exec.Command(bin["batch"], "-master", master.Addr, "-tasks", "1",
			"-cmd", "true", "-name", "intruder", "-journal-dir", t.TempDir(), "-timeout", "20s", "-log-level", "warn",
			"-tls-cert", batchCert.CertFile, "-tls-key", batchCert.KeyFile, "-tls-ca", other.CAFile))
		batch.WaitFor(t, regexp.MustCompile(`certificate signed by unknown authority`), wait)
		batch.Stop()
		assert.NotContains(t, batch.Output(), "registered")

		bad := tlsClient(t, tlsconfig.Files{CertFile: batchCert.CertFile, KeyFile: batchCert.KeyFile, CAFile: other.CAFile})
		_, err := bad.Get("https://" + master.Addr + "/health")
		require.Error(t, err)
	})

	t.Run("AgentWithoutClientCert", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		foreign := other.Issue(t, "foreign-agent")
		port := proctest.FreePort(t)
		agent := proctest.Start(t, "agent-foreign", exec.Command(bin["agent"], "-master", master.Addr,
			"-listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			"-work-dir", filepath.Join(dir, "agent-foreign"), "-hostname", "foreign",
			"-resources", "cpus:1;mem:512;disk:100;ports:[33000-33010]", "-log-level", "info",
			"-tls-cert", foreign.CertFile, "-tls-key", foreign.KeyFile, "-tls-ca", ca.CAFile))
		agent.WaitFor(t, regexp.MustCompile(`connecting to the master failed.*(certificate|tls)`), wait)
		assert.Equal(t, 1, tlsAgents(client, master.Addr), "the agent without a certificate the master trusts is not admitted")
		assert.NotContains(t, agent.Output(), "agent: registered")
		agent.Stop()
	})

	t.Run("PlainHTTPRefused", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + master.Addr + "/health")
		if err == nil {
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}
	})

	t.Run("Curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl is not installed")
		}
		url := "https://" + master.Addr + "/health"
		out, err := exec.Command(curl, "-sS", "--fail", "--cacert", ca.CAFile,
			"--cert", batchCert.CertFile, "--key", batchCert.KeyFile, url).CombinedOutput()
		require.NoError(t, err, "curl --cacert with a client certificate: %s", out)
		out, err = exec.Command(curl, "-sS", "--fail", "--cacert", ca.CAFile, url).CombinedOutput()
		require.Error(t, err, "curl without a client certificate is refused: %s", out)
		out, err = exec.Command(curl, "-sS", "--fail", url).CombinedOutput()
		require.Error(t, err, "curl without the CA does not trust the master: %s", out)
	})
}

// TestTLSRenewal: a master whose certificate files are rewritten serves
// the new certificate without a restart.
func TestTLSRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries; skipped with -short")
	}
	bin := proctest.BuildT(t, "examples/master")
	ca := tlstest.NewCA(t, "cluster")
	first := ca.Issue(t, "master")
	client := tlsClient(t, tlsconfig.Files{CAFile: ca.CAFile})
	master := startTLSServer(t, "master", client, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-log-level", "info",
			"-tls-cert", first.CertFile, "-tls-key", first.KeyFile)
	})
	require.Equal(t, first.Cert.SerialNumber.String(), servedSerial(t, master.Addr, ca))
	second := ca.Issue(t, "master") // the same files, renewed
	require.Eventually(t, func() bool { return servedSerial(t, master.Addr, ca) == second.Cert.SerialNumber.String() },
		wait, 200*time.Millisecond, "the master serves the renewed certificate")
	assert.False(t, master.Exited())
}

// servedSerial is the serial number of the certificate the server at addr
// presents.
func servedSerial(t *testing.T, addr string, ca *tlstest.CA) string {
	t.Helper()
	src, err := tlsconfig.Load(tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	require.NoError(t, err)
	c := src.HTTPClient()
	c.Timeout = 5 * time.Second
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/health")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// tlsClient is an HTTPS client with f's certificate and CA.
func tlsClient(t *testing.T, f tlsconfig.Files) *http.Client {
	t.Helper()
	src, err := tlsconfig.Load(f, tlsconfig.Options{})
	require.NoError(t, err)
	c := src.HTTPClient()
	c.Timeout = 5 * time.Second
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// startTLSServer is proctest.StartServer for a server that speaks only
// HTTPS: it waits until https://addr/health answers 200 to client.
func startTLSServer(t *testing.T, name string, client *http.Client, command func(addr string) *exec.Cmd) *proctest.Proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := proctest.FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p := proctest.Start(t, name, command(addr))
		p.Addr, p.Port = addr, port
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) && !p.Exited() {
			if resp, err := client.Get("https://" + addr + "/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		out := p.Output()
		if p.Exited() && strings.Contains(out, "address already in use") && attempt < 5 {
			continue
		}
		t.Fatalf("%s did not start serving HTTPS on %s:\n%s", name, addr, out)
	}
}

// tlsAgents counts the agents in the master's /state, or -1.
func tlsAgents(client *http.Client, masterAddr string) int {
	resp, err := client.Get("https://" + masterAddr + "/state")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		GetAgents struct {
			Agents []json.RawMessage `json:"agents"`
		} `json:"get_agents"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	return len(st.GetAgents.Agents)
}

// offerCatcher passes on the offers it is made.
type offerCatcher struct {
	scheduler.Base
	offers chan mesospb.Offer
}

func (c *offerCatcher) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	for _, o := range offers {
		select {
		case c.offers <- o:
		default:
		}
	}
}

// TestTLSZooKeeper: with TLS, the agent and the framework find the master
// through ZooKeeper, whose MasterInfo has no scheme, and reach it over
// https, as Mesos's do with LIBPROCESS_SSL_ENABLED. Skipped with -short,
// off Linux and without ZooKeeper.
func TestTLSZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries and runs ZooKeeper; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper: %s", why)
	}
	zoo := zktest.Start(t)
	zkURL := "zk://" + zoo.Addr + "/apron-tls"
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster")
	tlsArgs := func(name string) []string {
		p := ca.Issue(t, name)
		return []string{"-tls-cert", p.CertFile, "-tls-key", p.KeyFile, "-tls-ca", ca.CAFile}
	}
	client := tlsClient(t, tlsconfig.Files{CAFile: ca.CAFile})
	master := startTLSServer(t, "master", client, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], append([]string{"-listen", addr, "-zk", zkURL, "-quorum", "1",
			"-allocation-interval", "100ms", "-work-dir", filepath.Join(dir, "master"), "-log-level", "info"}, tlsArgs("master")...)...)
	})
	startTLSServer(t, "agent", client, func(addr string) *exec.Cmd {
		return exec.Command(bin["agent"], append([]string{"-master", zkURL, "-listen", addr,
			"-work-dir", filepath.Join(dir, "agent"), "-hostname", "127.0.0.1",
			"-resources", "cpus:2;mem:1024;disk:1000;ports:[31000-32000]", "-log-level", "info"}, tlsArgs("agent")...)...)
	})
	require.Eventually(t, func() bool { return tlsAgents(client, master.Addr) == 1 }, wait, 50*time.Millisecond,
		"the agent finds the master in ZooKeeper and registers over TLS")
	batch := proctest.Start(t, "batch", exec.Command(bin["batch"], append([]string{"-master", zkURL, "-tasks", "2",
		"-cmd", "true", "-cpus", "0.5", "-mem", "32", "-journal-dir", t.TempDir()}, tlsArgs("batch")...)...))
	require.Equal(t, 0, batch.Wait(t, wait), "the job runs on the detected master over TLS:\n%s", batch.Output())
	assert.Contains(t, batch.Output(), "2 tasks: 2 finished, 0 failed for good")
}
