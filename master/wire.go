package master

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// This file shapes what the master sends as Mesos shapes it, where Mesos
// fills fields that clients read without checking: MasterInfo, and offers
// as a framework of given capabilities sees them.

// masterInfo is the master's MasterInfo as Mesos's Master::Master fills it:
// the deprecated ip (an IPv4 address as the uint32 Mesos stores, see
// ipv4Uint32), port and hostname, and the pid, address and version that
// replace them.
func masterInfo(cfg Config, id string) mesospb.MasterInfo {
	info := mesospb.MasterInfo{
		ID:       id,
		Port:     ptr(cfg.Port),
		Hostname: ptr(cfg.Hostname),
		Version:  ptr(MesosVersion),
		Address:  &mesospb.Address{Hostname: ptr(cfg.Hostname), Port: int32(cfg.Port)},
		// As Mesos's MASTER_CAPABILITIES: agents may update their
		// resources, DRAIN_AGENT and UPDATE_QUOTA work.
		Capabilities: []mesospb.MasterInfo_Capability{
			{Type: mesospb.MasterInfo_Capability_AGENT_UPDATE.Enum()},
			{Type: mesospb.MasterInfo_Capability_AGENT_DRAINING.Enum()},
			{Type: mesospb.MasterInfo_Capability_QUOTA_V2.Enum()},
		},
	}
	host := cfg.Hostname
	if ip, err := netip.ParseAddr(cfg.IP); err == nil {
		info.IP = ipv4Uint32(ip)
		info.Address.IP = ptr(ip.String())
		host = ip.String()
	}
	// Mesos's pid is the libprocess UPID of the master process,
	// "master@<ip>:<port>".
	info.Pid = ptr("master@" + net.JoinHostPort(host, strconv.FormatUint(uint64(cfg.Port), 10)))
	return info
}

// ipv4Uint32 is an IPv4 address as Mesos puts it in MasterInfo.ip: the
// in_addr.s_addr of the address, whose bytes are in network order, read as
// a host (little-endian, on every platform Mesos runs on) integer; so
// 127.0.0.1 is 16777343 (0x0100007f). Other addresses are 0.
func ipv4Uint32(ip netip.Addr) uint32 {
	ip = ip.Unmap()
	if !ip.Is4() {
		return 0
	}
	b := ip.As4()
	return binary.LittleEndian.Uint32(b[:])
}

// agentPath is the path of the agent's libprocess process in Offer.url, as
// Mesos writes it: "/" + the id of the agent's pid, which is always
// "slave(1)" for a Mesos agent.
const agentPath = "/slave(1)"

// offerURL is Offer.url as Mesos sets it: the agent's HTTP address (its
// hostname and port, and its IP address when the master knows it), with
// https for an agent of a cluster that speaks TLS (Config.AgentTLS), where
// Mesos still writes http (its TODO).
func offerURL(a *agent) *mesospb.URL {
	scheme := "http"
	if a.https {
		scheme = "https"
	}
	u := &mesospb.URL{
		Scheme:  scheme,
		Address: mesospb.Address{Hostname: ptr(a.info.Hostname), Port: a.info.GetPort()},
		Path:    ptr(agentPath),
	}
	if ip := agentIP(a); ip != "" {
		u.Address.IP = ptr(ip)
	}
	return u
}

// agentIP is the agent's IP address: the address its connection came from,
// else its hostname when that is an IP literal (or "localhost"), else "".
func agentIP(a *agent) string {
	if a.ip != "" {
		return a.ip
	}
	return defaultIP(a.info.Hostname)
}

// offerFor is an offer as framework fw receives it in OFFERS. Mesos
// (Master::offer) strips Offer.allocation_info and every resource's
// allocation_info for a framework without the MULTI_ROLE capability
// (MESOS-8237: such a framework compares resources whole), and writes the
// resources in the pre-reservation-refinement format (role and
// reservation) for a framework without RESERVATION_REFINEMENT. The
// operator API keeps the full form (o.proto).
func (c *core) offerFor(fw *framework, o *offer, a *agent) mesospb.Offer {
	multiRole := hasCapability(fw.info, mesospb.FrameworkInfo_Capability_MULTI_ROLE)
	refinement := hasCapability(fw.info, mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT)
	if multiRole && refinement {
		return o.proto(a, fw)
	}
	p := o.header(a, fw)
	rs := o.resources
	if multiRole {
		p.AllocationInfo = &mesospb.Resource_AllocationInfo{Role: ptr(o.role)}
	} else {
		rs = rs.Unallocated()
	}
	if !refinement {
		if old, err := rs.ToProtoFormat(resources.PreRefinement); err == nil {
			p.Resources = old
			return p
		}
		// A refined reservation has no pre-refinement form; Mesos's
		// allocator never offers one to such a framework. Apron's
		// allocator may, so it goes out in the current form.
		c.log.Warn("offer holds refined reservations the framework cannot read", "framework", fw.id, "offer", o.id)
	}
	p.Resources = rs.ToProto()
	return p
}

// connectAgentFrom is connectAgent for an agent whose connection came from
// ip ("" when unknown, as for an agent in the same process): Mesos takes
// the agent's IP in Offer.url from its libprocess pid, which Apron's agent
// link does not carry, so the address the agent connected from stands in.
func (c *core) connectAgentFrom(call *internalpb.Call, ip string) (string, error) {
	id, err := c.connectAgent(call)
	if err != nil {
		return "", err
	}
	if s := c.streams[id]; s != nil {
		if a := c.agents[s.peer]; a != nil {
			a.ip = ip
			a.https = c.cfg.AgentTLS != nil
		}
	}
	return id, nil
}

// agentPid is the agent's libprocess pid as Mesos reports it
// ("slave(1)@ip:port"), with the hostname for the IP when the master does
// not know the agent's address.
func agentPid(a *agent) string {
	host := agentIP(a)
	if host == "" {
		host = a.info.Hostname
	}
	return "slave(1)@" + net.JoinHostPort(host, strconv.Itoa(int(a.info.GetPort())))
}
