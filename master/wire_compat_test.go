package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// These tests check what the master sends schedulers against what Mesos's
// master sends (src/master/master.cpp), field by field, where a real Mesos
// client reads the field.

func capabilities(info mesospb.FrameworkInfo, types ...mesospb.FrameworkInfo_Capability_Type) mesospb.FrameworkInfo {
	for _, t := range types {
		info.Capabilities = append(info.Capabilities, mesospb.FrameworkInfo_Capability{Type: t.Enum()})
	}
	return info
}

// registerAgentInfo registers an agent with the given AgentInfo.
func (h *harness) registerAgentInfo(info mesospb.AgentInfo) (stream, agentID string) {
	h.t.Helper()
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: info},
	})
	require.NoError(h.t, err)
	h.collect()
	evs := h.takeAgent(stream)
	require.NotEmpty(h.t, evs)
	return stream, evs[0].Registered.AgentID.Value
}

// A framework without MULTI_ROLE gets offers without Offer.allocation_info
// and without Resource.allocation_info (Mesos's Master::offer, MESOS-8237),
// and, without RESERVATION_REFINEMENT, resources in the pre-refinement
// format (role "*" on unreserved resources). The operator API keeps the
// full offer.
func TestOffersToASingleRoleFrameworkCarryNoAllocationInfo(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(roleFramework("web", "web", ""))
	h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	o := offers[0]
	assert.Nil(t, o.AllocationInfo, "Offer.allocation_info")
	require.NotEmpty(t, o.Resources)
	for _, r := range o.Resources {
		assert.Nil(t, r.AllocationInfo, "Resource.allocation_info of %s", r.Name)
		assert.Empty(t, r.Reservations, "no reservations stack for a framework without RESERVATION_REFINEMENT")
		assert.Equal(t, "*", r.GetRole(), "pre-refinement role of %s", r.Name)
	}

	fws := h.sm.State().GetFrameworks.Frameworks
	require.Len(t, fws, 1)
	require.Len(t, fws[0].Offers, 1)
	assert.Equal(t, "web", fws[0].Offers[0].AllocationInfo.GetRole(), "GET_STATE keeps the allocation")
	for _, r := range fws[0].Offers[0].Resources {
		assert.Equal(t, "web", r.AllocationInfo.GetRole())
	}
	_ = fid
}

// A MULTI_ROLE framework with RESERVATION_REFINEMENT gets offers as the
// master keeps them.
func TestOffersToAMultiRoleFrameworkCarryAllocationInfo(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := capabilities(frameworkInfo("multi"), mesospb.FrameworkInfo_Capability_MULTI_ROLE, mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT)
	info.Roles = []string{"a"}
	fs, _ := h.subscribe(info)
	h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	assert.Equal(t, "a", offers[0].AllocationInfo.GetRole())
	for _, r := range offers[0].Resources {
		assert.Equal(t, "a", r.AllocationInfo.GetRole())
		assert.Nil(t, r.Role, "no pre-refinement role")
	}
}

// MULTI_ROLE alone keeps allocation_info but writes reservations in the
// pre-refinement format; RESERVATION_REFINEMENT alone strips allocation_info
// and keeps the reservations stack.
func TestOfferFormatFollowsEachCapability(t *testing.T) {
	h := newHarness(t, master.Config{})
	mr := capabilities(frameworkInfo("mr"), mesospb.FrameworkInfo_Capability_MULTI_ROLE)
	mr.Roles = []string{"db"}
	mrs, _ := h.subscribe(mr)
	reserved := resources.MustParse("cpus:1").PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "db", Principal: "p"})
	rs := resources.MustParse("mem:512").Add(reserved)
	h.registerAgentInfo(mesospb.AgentInfo{Hostname: "h", Resources: rs.ToProto()})
	h.advance(40 * time.Millisecond)
	offers := h.offers(mrs)
	require.Len(t, offers, 1)
	assert.Equal(t, "db", offers[0].AllocationInfo.GetRole())
	for _, r := range offers[0].Resources {
		assert.Equal(t, "db", r.AllocationInfo.GetRole())
		assert.Empty(t, r.Reservations)
		if r.Name == "cpus" {
			assert.Equal(t, "db", r.GetRole())
			require.NotNil(t, r.Reservation, "the dynamic reservation in the old field")
			assert.Equal(t, "p", r.Reservation.GetPrincipal())
		}
	}
	require.NoError(t, h.call(mrs, offers[0].FrameworkID.Value, &schedulerpb.Call{Type: schedulerpb.Call_TEARDOWN.Enum()}))

	rr := capabilities(roleFramework("rr", "db", ""), mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT)
	rrs, _ := h.subscribe(rr)
	h.advance(40 * time.Millisecond)
	offers = h.offers(rrs)
	require.Len(t, offers, 1)
	assert.Nil(t, offers[0].AllocationInfo)
	for _, r := range offers[0].Resources {
		assert.Nil(t, r.AllocationInfo)
		assert.Nil(t, r.Role)
		if r.Name == "cpus" {
			require.Len(t, r.Reservations, 1)
			assert.Equal(t, "db", r.Reservations[0].GetRole())
		}
	}
}

// A single-role framework may send its offer's resources back with or
// without allocation_info, and in either reservation format; the master
// injects its role (Mesos's injectAllocationInfo) and upgrades the format,
// so the task and the agent see one form.
func TestAcceptTakesResourcesInEitherForm(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(roleFramework("web", "web", ""))
	as, _ := h.registerAgent("cpus:4;mem:1024")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)

	// As offered: role "*", no allocation_info.
	asOffered := commandTask("as-offered", offers[0], "")
	asOffered.Resources = offers[0].Resources
	for i := range asOffered.Resources {
		asOffered.Resources[i].Scalar = &mesospb.Value_Scalar{Value: 1}
		asOffered.Resources[i].Ranges = nil
	}
	// Explicitly allocated, post-refinement.
	allocated := commandTask("allocated", offers[0], "")
	allocated.Resources = resources.MustParse("cpus:1;mem:128").Allocate("web").ToProto()
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers[0]), asOffered, allocated)))
	require.Empty(t, h.updates(fs), "both tasks accepted")

	runs := h.agentEventsOf(as, internalpb.Event_RUN_TASK)
	require.Len(t, runs, 2)
	for _, run := range runs {
		for _, r := range run.RunTask.Task.Resources {
			assert.Equal(t, "web", r.AllocationInfo.GetRole(), "task %s: the offer's role is injected", run.RunTask.Task.TaskID.Value)
			assert.Nil(t, r.Role, "task %s: upgraded to the reservations stack", run.RunTask.Task.TaskID.Value)
		}
	}
}

// Executor resources of a LAUNCH_GROUP without allocation_info get the
// offer's role too.
func TestAcceptInjectsAllocationIntoTaskGroups(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(roleFramework("web", "web", ""))
	as, _ := h.registerAgent("cpus:4;mem:1024")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	task := commandTask("g1", offers[0], "cpus:1;mem:64")
	group := mesospb.Offer_Operation{
		Type: mesospb.Offer_Operation_LAUNCH_GROUP.Enum(),
		LaunchGroup: &mesospb.Offer_Operation_LaunchGroup{
			Executor: mesospb.ExecutorInfo{
				ExecutorID: mesospb.ExecutorID{Value: "e1"},
				Type:       mesospb.ExecutorInfo_DEFAULT.Enum(),
				Resources:  resources.MustParse("cpus:0.1;mem:32").ToProto(),
			},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{task}},
		},
	}
	require.NoError(t, h.call(fs, fid, acceptOps(offers, 0, group)))
	require.Empty(t, h.updates(fs))
	runs := h.agentEventsOf(as, internalpb.Event_RUN_TASK_GROUP)
	require.Len(t, runs, 1)
	for _, r := range runs[0].RunTaskGroup.Executor.Resources {
		assert.Equal(t, "web", r.AllocationInfo.GetRole())
	}
	for _, r := range runs[0].RunTaskGroup.TaskGroup.Tasks[0].Resources {
		assert.Equal(t, "web", r.AllocationInfo.GetRole())
	}

	// The next offer on that agent names the framework's executor.
	h.advance(40 * time.Millisecond)
	offers = h.offers(fs)
	require.Len(t, offers, 1)
	require.Len(t, offers[0].ExecutorIDs, 1)
	assert.Equal(t, "e1", offers[0].ExecutorIDs[0].Value)
}

// Offer.url is the agent's address, as Mesos sets it: scheme http, the
// agent's hostname, IP and port, path /slave(1); domain is the agent's.
func TestOfferURL(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, _ := h.subscribe(frameworkInfo("f"))
	domain := &mesospb.DomainInfo{FaultDomain: &mesospb.DomainInfo_FaultDomain{
		Region: mesospb.DomainInfo_FaultDomain_RegionInfo{Name: "r1"},
		Zone:   mesospb.DomainInfo_FaultDomain_ZoneInfo{Name: "z1"},
	}}
	h.registerAgentInfo(mesospb.AgentInfo{Hostname: "10.1.2.3", Port: ptr(int32(5052)),
		Resources: mustProto("cpus:1;mem:128"), Domain: domain})
	h.registerAgentInfo(mesospb.AgentInfo{Hostname: "agent.example", Resources: mustProto("cpus:1;mem:128")})
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 2)
	byHost := map[string]mesospb.Offer{}
	for _, o := range offers {
		byHost[o.Hostname] = o
	}

	o := byHost["10.1.2.3"]
	require.NotNil(t, o.URL)
	assert.Equal(t, "http", o.URL.Scheme)
	assert.Equal(t, "10.1.2.3", o.URL.Address.GetHostname())
	assert.Equal(t, "10.1.2.3", o.URL.Address.GetIP(), "an IP literal hostname is the agent's IP")
	assert.Equal(t, int32(5052), o.URL.Address.Port)
	assert.Equal(t, "/slave(1)", o.URL.GetPath())
	assert.Equal(t, "r1", o.Domain.GetFaultDomain().Region.Name)

	o = byHost["agent.example"]
	require.NotNil(t, o.URL)
	assert.Equal(t, "agent.example", o.URL.Address.GetHostname())
	assert.Equal(t, int32(5051), o.URL.Address.Port, "AgentInfo.port's default")
	assert.Nil(t, o.URL.Address.IP, "no address known in process")
	assert.Nil(t, o.Domain)
}

// MasterInfo as Mesos's Master::Master fills it, in SUBSCRIBED, GET_MASTER
// and the agents' REGISTERED; GET_VERSION reports the same Mesos version.
func TestMasterInfoAsMesosFillsIt(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              master.Config
		ip               uint32
		addressIP, pid   string
		hostname         string
		port             uint32
		wantAddressIPSet bool
	}{
		// 10.0.0.2: in_addr.s_addr bytes 0a 00 00 02, read little-endian.
		{"advertised IP", master.Config{Hostname: "m1.example", IP: "10.0.0.2", Port: 5050}, 0x0200000a, "10.0.0.2", "master@10.0.0.2:5050", "m1.example", 5050, true},
		{"defaults", master.Config{}, 16777343, "127.0.0.1", "master@127.0.0.1:5050", "localhost", 5050, true},
		{"IP literal hostname", master.Config{Hostname: "192.168.1.9", Port: 5055}, 0x0901a8c0, "192.168.1.9", "master@192.168.1.9:5055", "192.168.1.9", 5055, true},
		{"unknown address", master.Config{Hostname: "m2.example", Port: 5050}, 0, "", "master@m2.example:5050", "m2.example", 5050, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			_, err := h.sm.SubscribeScheduler(&schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(),
				Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: frameworkInfo("f")}})
			require.NoError(t, err)
			var info *mesospb.MasterInfo
			for _, o := range h.sm.Ready().Outputs {
				if o.Scheduler != nil && o.Scheduler.GetType() == schedulerpb.Event_SUBSCRIBED {
					info = o.Scheduler.Subscribed.MasterInfo
				}
			}
			require.NotNil(t, info)
			assert.NotEmpty(t, info.ID)
			assert.Equal(t, tc.ip, info.IP)
			assert.Equal(t, tc.port, info.GetPort())
			assert.Equal(t, tc.pid, info.GetPid())
			assert.Equal(t, tc.hostname, info.GetHostname())
			assert.Equal(t, master.MesosVersion, info.GetVersion())
			var caps []mesospb.MasterInfo_Capability_Type
			for _, c := range info.Capabilities {
				caps = append(caps, c.GetType())
			}
			assert.ElementsMatch(t, []mesospb.MasterInfo_Capability_Type{mesospb.MasterInfo_Capability_AGENT_UPDATE,
				mesospb.MasterInfo_Capability_AGENT_DRAINING, mesospb.MasterInfo_Capability_QUOTA_V2}, caps, "Mesos's MASTER_CAPABILITIES")
			require.NotNil(t, info.Address)
			assert.Equal(t, tc.hostname, info.Address.GetHostname())
			assert.Equal(t, int32(tc.port), info.Address.Port)
			if tc.wantAddressIPSet {
				assert.Equal(t, tc.addressIP, info.Address.GetIP())
			} else {
				assert.Nil(t, info.Address.IP)
			}

			resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_MASTER.Enum()})
			require.NoError(t, err)
			assert.Equal(t, info, resp.GetMaster.MasterInfo, "GET_MASTER reports the same MasterInfo")
			resp, err = h.operator(&masterpb.Call{Type: masterpb.Call_GET_VERSION.Enum()})
			require.NoError(t, err)
			assert.Equal(t, info.GetVersion(), resp.GetVersion.VersionInfo.Version)
		})
	}
	_, err := master.NewStateMachine(master.Config{IP: "not-an-ip"}, time.Now())
	require.Error(t, err)
}

// SUBSCRIBED carries the framework ID, the heartbeat interval and the
// MasterInfo, and a HEARTBEAT follows at once, as Mesos's heartbeater
// starts with the subscription; then one every interval.
func TestSubscribedThenHeartbeat(t *testing.T) {
	h := newHarness(t, master.Config{HeartbeatInterval: time.Second})
	stream, err := h.sm.SubscribeScheduler(&schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: frameworkInfo("f")}})
	require.NoError(t, err)
	h.collect()
	evs := h.take(stream)
	require.Len(t, evs, 2)
	require.Equal(t, schedulerpb.Event_SUBSCRIBED, evs[0].GetType())
	assert.NotEmpty(t, evs[0].Subscribed.FrameworkID.Value)
	assert.Equal(t, 1.0, evs[0].Subscribed.GetHeartbeatIntervalSeconds())
	assert.NotNil(t, evs[0].Subscribed.MasterInfo)
	assert.Equal(t, schedulerpb.Event_HEARTBEAT, evs[1].GetType())

	h.advance(980 * time.Millisecond)
	assert.Empty(t, h.take(stream))
	h.advance(20 * time.Millisecond)
	evs = h.take(stream)
	require.Len(t, evs, 1)
	assert.Equal(t, schedulerpb.Event_HEARTBEAT, evs[0].GetType())
}

// GET_FRAMEWORKS and GET_AGENTS as Mesos's model(Framework) and
// createAgentResponse: reregistered_time from the latest SUBSCRIBE, no
// unregistered_time while the framework is not removed (even
// disconnected), resources in the ENDPOINT format (role "*" next to an
// empty reservations stack), and the agent's pid.
func TestOperatorModelsAsMesos(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := frameworkInfo("f")
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	h.registerAgentInfo(mesospb.AgentInfo{Hostname: "10.1.2.3", Port: ptr(int32(5052)), Resources: mustProto("cpus:1;mem:128")})
	h.advance(40 * time.Millisecond)
	require.Len(t, h.offers(fs), 1)

	f := h.sm.State().GetFrameworks.Frameworks[0]
	registered := f.RegisteredTime.Nanoseconds
	assert.Equal(t, registered, f.ReregisteredTime.Nanoseconds)
	require.NotEmpty(t, f.OfferedResources)
	for _, r := range f.OfferedResources {
		assert.Equal(t, "*", r.GetRole(), "ENDPOINT format")
	}

	h.sm.StreamEnded(fs)
	h.advance(time.Second)
	f = h.sm.State().GetFrameworks.Frameworks[0]
	assert.False(t, f.Connected)
	assert.Nil(t, f.UnregisteredTime, "Mesos sets it only when the framework is removed")
	info.ID = &mesospb.FrameworkID{Value: fid}
	h.subscribe(info)
	f = h.sm.State().GetFrameworks.Frameworks[0]
	assert.Equal(t, registered, f.RegisteredTime.Nanoseconds)
	assert.Equal(t, h.now.UnixNano(), f.ReregisteredTime.Nanoseconds)

	a := h.sm.State().GetAgents.Agents[0]
	assert.Equal(t, "slave(1)@10.1.2.3:5052", a.GetPid())
	for _, r := range a.TotalResources {
		assert.Equal(t, "*", r.GetRole())
	}
}

// A framework without RESERVATION_REFINEMENT may write its RESERVE in the
// pre-refinement format (role and reservation), as its offers are: the
// master reads it and applies the same reservation.
func TestReserveInThePreRefinementFormat(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", "p"))
	as, _ := h.registerAgent("cpus:4;mem:1024")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)
	reserved := dyn("cpus:1;mem:128", "db", "p")
	old, err := reserved.ToProtoFormat(resources.PreRefinement)
	require.NoError(t, err)
	require.Empty(t, old[0].Reservations)
	op := mesospb.Offer_Operation{Type: mesospb.Offer_Operation_RESERVE.Enum(),
		Reserve: &mesospb.Offer_Operation_Reserve{Resources: old}}
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, op)))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	requireSame(t, reserved, ckpt, "checkpointed reservation")
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	var reservedCPU bool
	for _, r := range offers[0].Resources {
		if r.Name == "cpus" && r.GetRole() == "db" {
			reservedCPU = true
			require.NotNil(t, r.Reservation)
			assert.Equal(t, "p", r.Reservation.GetPrincipal())
		}
	}
	assert.True(t, reservedCPU, "the reservation is offered back in the format it was made in")
}
