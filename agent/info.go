package agent

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// defaultPorts are the ports an agent offers when its resources name none,
// as Mesos.
var defaultPorts = resources.NewRanges(resources.NamePorts, resources.Range{Begin: 31000, End: 32000})

// agentResources parses the configured resources and adds, as Mesos does,
// the detected amount of each of cpus, mem, disk and ports they leave out.
func agentResources(text, workDir string) (resources.Resources, error) {
	rs, err := resources.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: Resources: %w", ErrInvalidConfig, err)
	}
	has := func(name string) bool { return len(rs.Named(name)) > 0 }
	if !has(resources.NameCPUs) {
		rs = rs.AddResource(resources.NewScalar(resources.NameCPUs, float64(onlineCPUs())))
	}
	if !has(resources.NameMem) {
		total, err := totalMemory()
		if err != nil {
			return nil, fmt.Errorf("%w: Resources: no mem given and %w", ErrInvalidConfig, err)
		}
		rs = rs.AddResource(resources.NewScalar(resources.NameMem, float64(memAvailable(total)/mib)))
	}
	if !has(resources.NameDisk) {
		total, err := fsSize(workDir)
		if err != nil {
			return nil, fmt.Errorf("%w: Resources: no disk given and %w", ErrInvalidConfig, err)
		}
		rs = rs.AddResource(resources.NewScalar(resources.NameDisk, float64(diskAvailable(total)/mib)))
	}
	if !has(resources.NamePorts) {
		rs = rs.AddResource(defaultPorts)
	}
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("%w: Resources: %w", ErrInvalidConfig, err)
	}
	return rs, nil
}

// memAvailable leaves 1 GiB to the system, or half of a machine under 2 GiB.
func memAvailable(total uint64) uint64 {
	if total >= 2*gib {
		return total - gib
	}
	return total / 2
}

// diskAvailable leaves 5 GiB to the system, or half of a disk under 10 GiB.
func diskAvailable(total uint64) uint64 {
	if total >= 10*gib {
		return total - 5*gib
	}
	return total / 2
}

// ParseAttributes reads attributes in the text form of Mesos's --attributes
// flag: "name:value" pairs separated by ';' (or newlines). A value that is
// a number is a SCALAR, one in brackets ("[1-4,8-9]") RANGES, anything
// else TEXT, which may not contain any of "[]{},". Sets are not attributes,
// as in Mesos. Errors wrap ErrInvalidConfig.
func ParseAttributes(text string) ([]mesospb.Attribute, error) {
	var out []mesospb.Attribute
	for pair := range strings.FieldsFuncSeq(text, func(r rune) bool { return r == ';' || r == '\n' }) {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok || strings.Contains(value, ":"):
			return nil, fmt.Errorf("%w: attribute %q is not one name:value pair", ErrInvalidConfig, pair)
		case name == "":
			return nil, fmt.Errorf("%w: attribute %q has no name", ErrInvalidConfig, pair)
		case value == "":
			return nil, fmt.Errorf("%w: attribute %q has no value", ErrInvalidConfig, pair)
		}
		attr := mesospb.Attribute{Name: name}
		if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			attr.Type = mesospb.Value_SCALAR
			attr.Scalar = &mesospb.Value_Scalar{Value: f}
		} else if strings.HasPrefix(value, "[") {
			rs, err := resources.Parse("attribute:" + value)
			if err != nil || len(rs) > 1 || (len(rs) == 1 && rs[0].Type != resources.TypeRanges) {
				return nil, fmt.Errorf("%w: attribute %q: %q is not ranges such as [1-4,8-9]", ErrInvalidConfig, name, value)
			}
			attr.Type = mesospb.Value_RANGES
			attr.Ranges = &mesospb.Value_Ranges{}
			if len(rs) == 1 {
				for _, r := range rs[0].Ranges {
					attr.Ranges.Range = append(attr.Ranges.Range, mesospb.Value_Range{Begin: r.Begin, End: r.End})
				}
			}
		} else if strings.ContainsAny(value, "[]{},") {
			return nil, fmt.Errorf("%w: attribute %q: text %q may not contain any of []{}, (sets are not attributes)", ErrInvalidConfig, name, value)
		} else {
			attr.Type = mesospb.Value_TEXT
			attr.Text = &mesospb.Value_Text{Value: value}
		}
		out = append(out, attr)
	}
	return out, nil
}

// DefaultPort is the agent's port when neither Config.Port nor
// Config.Endpoint gives one: Mesos's (and AgentInfo.port's default).
const DefaultPort = 5051

// pidName is the libprocess ID of a Mesos agent, the part of its PID
// before the '@'. Mesos's executor library reaches the executor API at
// http://<ip>:<port>/<pidName>/api/v1/executor, so Handler serves it there
// too.
const pidName = "slave(1)"

// advertisedAddress fills in IP and Port (see Config) from Endpoint, the
// hostname or the machine's interfaces, and checks them.
func (c *Config) advertisedAddress() error {
	host, port, err := endpointHostPort(c.Endpoint)
	if err != nil {
		return fmt.Errorf("Endpoint %q: %w", c.Endpoint, err)
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("Port %d is not a TCP port", c.Port)
	case c.Port == 0 && port != 0:
		c.Port = port
	case c.Port == 0:
		c.Port = DefaultPort
	}
	if c.IP != "" {
		ip := net.ParseIP(c.IP)
		if ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("IP %q is not an IP address an executor can reach", c.IP)
		}
		c.IP = ip.String()
		return nil
	}
	for _, h := range []string{host, c.Hostname} {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			c.IP = ip.String()
			return nil
		}
	}
	c.IP = machineIP()
	return nil
}

// machineIP is interfaceIP, looked up once per process: an embedder
// making thousands of agents asks the kernel once.
var machineIP = sync.OnceValue(interfaceIP)

// localIPs are the addresses of the machine's interfaces, looked up once.
var localIPs = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, addr := range addrs {
		if ipn, ok := addr.(*net.IPNet); ok {
			out[ipn.IP.String()] = true
		}
	}
	return out
})

// libprocessIP is LIBPROCESS_IP for executors: the agent's IP when it is
// one of this machine's, so that a libprocess-based executor (Mesos's own)
// binds to it instead of resolving the hostname, which fails without
// DNS; Mesos's agent passes on its own LIBPROCESS_IP for that reason. An
// advertised IP of another machine (NAT) could not be bound: none then.
func (a *Agent) libprocessIP() string {
	if localIPs()[a.cfg.IP] {
		return a.cfg.IP
	}
	return ""
}

// endpointHostPort splits an Endpoint, host:port or a URL, into its host
// and port (0 when it names none).
func endpointHostPort(endpoint string) (string, int, error) {
	endpoint = strings.TrimSpace(endpoint)
	if endpoint == "" {
		return "", 0, nil
	}
	hostport := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", 0, err
		}
		hostport = u.Host
		if u.Port() == "" {
			return u.Hostname(), map[string]int{"http": 80, "https": 443}[u.Scheme], nil
		}
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		if ip := net.ParseIP(hostport); ip != nil || !strings.Contains(hostport, ":") {
			// A bare host: HTTP's port, as the executors' URL has it.
			return hostport, 80, nil
		}
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a TCP port", p)
	}
	return host, port, nil
}

// interfaceIP is the first non-loopback address of the machine's
// interfaces that are up, IPv4 first, else 127.0.0.1.
func interfaceIP() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	var v6 string
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, addr := range addrs {
			ipn, ok := addr.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
			if v6 == "" {
				v6 = ipn.IP.String()
			}
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}

// PID is the agent's libprocess PID as a Mesos agent's reads,
// "slave(1)@<ip>:<port>" (Config.IP and Config.Port): executors get it as
// MESOS_SLAVE_PID, and state endpoints show it.
func (a *Agent) PID() string {
	return pidName + "@" + net.JoinHostPort(a.cfg.IP, strconv.Itoa(a.cfg.Port))
}

// agentEndpointEnv is MESOS_AGENT_ENDPOINT: host:port, as Mesos gives it
// (its "ip:port") and executors split it, when Endpoint is host:port or a
// plain http URL; any other URL (https, a path) as it is, which
// executor.ConfigFromEnv takes too.
func (a *Agent) agentEndpointEnv() string {
	e := strings.TrimSpace(a.cfg.Endpoint)
	if e == "" || !strings.Contains(e, "://") {
		// Without an Endpoint the embedder serves no HTTP API: naming
		// the advertised address would send executors nowhere.
		return e
	}
	u, err := url.Parse(e)
	if err != nil || u.Scheme != "http" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return e
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}
