package master

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Maintenance is Mesos's maintenance primitives (docs/maintenance.md). The
// operator posts a schedule of windows, each a set of machines and when
// they will be unavailable (UPDATE_MAINTENANCE_SCHEDULE). A scheduled
// machine is DRAINING: offers of its agents carry the unavailability, and
// frameworks using its agents get inverse offers (inverse_offers.go) to
// say whether they can do without them. START_MAINTENANCE takes DRAINING
// machines DOWN: their agents are shut down and removed, and refused while
// the machine is DOWN. STOP_MAINTENANCE brings DOWN machines back UP and
// drops them from the schedule. The master never changes a mode by itself,
// whatever the clock says.
//
// Machines and agents: Mesos identifies an agent's machine by the agent's
// hostname and the IP its messages come from, and a MachineID matches only
// when both are equal. Apron's master knows an agent's IP only when it
// connected over HTTP (none in process), so a MachineID with a hostname
// names the agents with that hostname, case aside, whatever its IP; one
// with only an IP names the agents whose hostname is that IP, or whose
// connection came from it (known once the agent is registered: refusing
// an agent of a DOWN machine, and the unavailability of an agent that
// just registered, go by its hostname). The schedule, like the rest of
// the master's state, is kept in memory: a master that fails over starts
// with none (Mesos keeps it in its replicated registry).

// maintenance is the core's maintenance state. Its maps are made on first
// use, so a master that never sees a schedule pays nothing.
type maintenance struct {
	// schedule is the posted schedule, less the machines brought back UP.
	schedule masterpb.Schedule
	// machines are the DRAINING and DOWN machines; UP machines are not
	// kept (Mesos's registry does not keep them either).
	machines map[machineKey]*machine
	// draining holds the agents on DRAINING machines, by agent ID, with
	// their inverse-offer bookkeeping.
	draining map[string]*drainingAgent
	// inverse holds the outstanding inverse offers, by ID.
	inverse map[string]*inverseOffer
	// allocationRuns is the allocation run inverse offers were last made
	// after: as Mesos's allocator, the master makes them once per run.
	allocationRuns uint64
}

func (m *maintenance) init() {
	if m.machines == nil {
		m.machines = map[machineKey]*machine{}
		m.draining = map[string]*drainingAgent{}
		m.inverse = map[string]*inverseOffer{}
	}
}

// machine is a machine in the schedule, DRAINING or DOWN.
type machine struct {
	id             mesospb.MachineID
	mode           mesospb.MachineInfo_Mode
	unavailability mesospb.Unavailability
}

// machineKey identifies a machine as Mesos compares MachineIDs: hostname
// without case, IP exactly, and whether each is set.
type machineKey struct {
	hostname, ip       string
	hasHostname, hasIP bool
}

func keyOf(id mesospb.MachineID) machineKey {
	return machineKey{
		hostname:    strings.ToLower(id.GetHostname()),
		ip:          id.GetIP(),
		hasHostname: id.Hostname != nil,
		hasIP:       id.IP != nil,
	}
}

func (k machineKey) compare(o machineKey) int {
	if c := cmp.Compare(k.hostname, o.hostname); c != 0 {
		return c
	}
	return cmp.Compare(k.ip, o.ip)
}

// names says whether the machine k is the one an agent with this hostname
// and IP ("" when unknown) runs on; see the comment on maintenance.
func (k machineKey) names(hostname, ip string) bool {
	if k.hostname != "" {
		return k.hostname == strings.ToLower(hostname)
	}
	return k.ip != "" && k.ip == ip
}

// machineJSON writes a MachineID as Mesos's messages quote it.
func machineJSON(id mesospb.MachineID) string {
	var parts []string
	if id.Hostname != nil {
		parts = append(parts, `"hostname":`+strconv.Quote(id.GetHostname()))
	}
	if id.IP != nil {
		parts = append(parts, `"ip":`+strconv.Quote(id.GetIP()))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// machineOf returns the scheduled machine an agent with this hostname and
// IP runs on, or nil when it is UP. Should several MachineIDs name it (they differ
// only by IP, which Apron cannot tell apart), a DOWN one wins, then the
// first in order.
func (c *core) machineOf(hostname, ip string) *machine {
	var found *machine
	for k, m := range c.maint.machines {
		if !k.names(hostname, ip) {
			continue
		}
		if found == nil || m.mode > found.mode || (m.mode == found.mode && k.compare(keyOf(found.id)) < 0) {
			found = m
		}
	}
	return found
}

// refuseDownMachine answers an agent's REGISTER or REREGISTER from a DOWN
// machine, as Mesos does: with a stream that carries SHUTDOWN and ends.
func (c *core) refuseDownMachine(call *internalpb.Call) (string, bool) {
	if len(c.maint.machines) == 0 {
		return "", false
	}
	var info *mesospb.AgentInfo
	switch {
	case call.Register != nil:
		info = &call.Register.AgentInfo
	case call.Reregister != nil:
		info = &call.Reregister.AgentInfo
	default:
		return "", false // connectAgent says what is missing
	}
	m := c.machineOf(info.Hostname, defaultIP(info.Hostname))
	if m == nil || m.mode != mesospb.MachineInfo_DOWN {
		return "", false
	}
	peer := ""
	if info.ID != nil {
		peer = info.ID.Value
	}
	s := c.newStream(agentStream, peer)
	c.out.messages = append(c.out.messages, message{stream: s.id, agent: &internalpb.Event{
		Type:     internalpb.Event_SHUTDOWN.Enum(),
		Shutdown: &internalpb.Event_Shutdown{Message: ptr("Machine is `DOWN`")},
	}})
	c.endStream(s.id)
	c.log.Warn("refused an agent on a machine DOWN for maintenance", "hostname", info.Hostname, "machine", machineJSON(m.id))
	return s.id, true
}

// agentJoined gives a newly added agent the maintenance state of its
// machine: the unavailability its offers carry and, on a DRAINING
// machine, a fresh inverse-offer record.
func (c *core) agentJoined(a *agent) {
	a.unavailability = nil
	if len(c.maint.machines) == 0 {
		return
	}
	delete(c.maint.draining, a.id)
	if m := c.machineOf(a.info.Hostname, agentIP(a)); m != nil && m.mode == mesospb.MachineInfo_DRAINING {
		c.startDraining(a, m.unavailability)
	}
}

// validateMachineID checks one MachineID as Mesos does: a hostname or an
// IP, and the IP, when given, an IPv4 address.
func validateMachineID(id mesospb.MachineID) error {
	if id.GetHostname() == "" && id.GetIP() == "" {
		return fmt.Errorf("%w: both 'hostname' and 'ip' for a machine are empty", ErrInvalidCall)
	}
	if ip := id.GetIP(); ip != "" {
		if addr, err := netip.ParseAddr(ip); err != nil || !addr.Is4() {
			return fmt.Errorf("%w: machine %s: %q is not an IPv4 address", ErrInvalidCall, machineJSON(id), ip)
		}
	}
	return nil
}

// validateMachineList checks the machines of START_MAINTENANCE and
// STOP_MAINTENANCE: at least one, each valid, none twice.
func validateMachineList(ids []mesospb.MachineID) error {
	if len(ids) == 0 {
		return fmt.Errorf("%w: list of machines is empty", ErrInvalidCall)
	}
	seen := make(map[machineKey]bool, len(ids))
	for _, id := range ids {
		if err := validateMachineID(id); err != nil {
			return err
		}
		k := keyOf(id)
		if seen[k] {
			return fmt.Errorf("%w: machine %s appears more than once in the list", ErrInvalidCall, machineJSON(id))
		}
		seen[k] = true
	}
	return nil
}

// validateSchedule checks a schedule as Mesos does: every window has
// machines and a duration that is not negative, every machine is valid
// and in one window only, and every DOWN machine stays in the schedule
// (only STOP_MAINTENANCE brings a machine back UP).
func (c *core) validateSchedule(s *masterpb.Schedule) error {
	updated := map[machineKey]bool{}
	for i, w := range s.Windows {
		if len(w.MachineIDs) == 0 {
			return fmt.Errorf("%w: windows[%d]: list of machines in the maintenance window is empty", ErrInvalidCall, i)
		}
		if w.Unavailability.Duration.GetNanoseconds() < 0 {
			return fmt.Errorf("%w: windows[%d]: unavailability 'duration' is negative", ErrInvalidCall, i)
		}
		for _, id := range w.MachineIDs {
			if err := validateMachineID(id); err != nil {
				return err
			}
			k := keyOf(id)
			if updated[k] {
				return fmt.Errorf("%w: machine %s appears more than once in the schedule", ErrInvalidCall, machineJSON(id))
			}
			updated[k] = true
		}
	}
	for _, k := range c.sortedMachines() {
		if m := c.maint.machines[k]; m.mode == mesospb.MachineInfo_DOWN && !updated[k] {
			return fmt.Errorf("%w: machine %s is deactivated and cannot be removed from the schedule", ErrInvalidCall, machineJSON(m.id))
		}
	}
	return nil
}

func (c *core) sortedMachines() []machineKey {
	keys := make([]machineKey, 0, len(c.maint.machines))
	for k := range c.maint.machines {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, machineKey.compare)
	return keys
}

// changeMaintenance handles UPDATE_MAINTENANCE_SCHEDULE, START_MAINTENANCE
// and STOP_MAINTENANCE: validated whole, then applied whole.
func (c *core) changeMaintenance(call *masterpb.Call) error {
	switch call.GetType() {
	case masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE:
		if call.UpdateMaintenanceSchedule == nil {
			return fmt.Errorf("%w: expecting 'update_maintenance_schedule' to be present", ErrInvalidCall)
		}
		return c.updateSchedule(&call.UpdateMaintenanceSchedule.Schedule)
	case masterpb.Call_START_MAINTENANCE:
		if call.StartMaintenance == nil {
			return fmt.Errorf("%w: expecting 'start_maintenance' to be present", ErrInvalidCall)
		}
		return c.startMaintenance(call.StartMaintenance.Machines)
	case masterpb.Call_STOP_MAINTENANCE:
		if call.StopMaintenance == nil {
			return fmt.Errorf("%w: expecting 'stop_maintenance' to be present", ErrInvalidCall)
		}
		return c.stopMaintenance(call.StopMaintenance.Machines)
	}
	return fmt.Errorf("%w: %s is not a maintenance change", ErrInvalidCall, call.GetType())
}

// updateSchedule replaces the schedule. New machines become DRAINING,
// machines left out go back UP, and scheduled ones (DOWN ones included)
// take their window's unavailability. As in Mesos, every agent on a
// machine of the old or the new schedule that is not DOWN starts afresh:
// its offers are rescinded (to come back with the new unavailability, or
// none), its inverse offers rescinded, and the frameworks' answers and
// filters for it forgotten.
func (c *core) updateSchedule(s *masterpb.Schedule) error {
	if err := c.validateSchedule(s); err != nil {
		return err
	}
	c.maint.init()
	next := map[machineKey]*machine{}
	for _, w := range s.Windows {
		for _, id := range w.MachineIDs {
			k := keyOf(id)
			m := &machine{id: cloneMachineID(id), mode: mesospb.MachineInfo_DRAINING, unavailability: cloneUnavailability(w.Unavailability)}
			if old := c.maint.machines[k]; old != nil {
				m.mode = old.mode
			}
			next[k] = m
		}
	}
	c.maint.machines = next
	c.maint.schedule = cloneSchedule(*s)
	c.refreshAgents()
	return nil
}

// refreshAgents puts every registered agent in the state its machine now
// says, starting afresh those on scheduled machines and those whose
// machine left the schedule. Its cost grows with the number of agents; it
// runs on the operator's schedule changes only.
func (c *core) refreshAgents() {
	for _, id := range sortedKeys(c.agents) {
		a := c.agents[id]
		m := c.machineOf(a.info.Hostname, agentIP(a))
		if m == nil && a.unavailability == nil {
			continue
		}
		c.stopDraining(a)
		if m != nil && m.mode == mesospb.MachineInfo_DRAINING {
			c.startDraining(a, m.unavailability)
		}
	}
}

// stopDraining takes an agent out of maintenance: its offers (which carry
// the unavailability) and inverse offers are rescinded, its record is
// forgotten, and it is allocated again at the next tick.
func (c *core) stopDraining(a *agent) {
	for _, id := range sortedKeys(a.offers) {
		c.rescindOffer(a.offers[id])
	}
	c.rescindInverseOffersOn(a.id)
	delete(c.maint.draining, a.id)
	a.unavailability = nil
	c.dirtyAgents[a.id] = true
}

// startMaintenance takes DRAINING machines DOWN: their agents are told to
// shut down and removed at once, their tasks reported lost, as Mesos's
// /machine/down does.
func (c *core) startMaintenance(ids []mesospb.MachineID) error {
	if err := validateMachineList(ids); err != nil {
		return err
	}
	for _, id := range ids {
		m := c.maint.machines[keyOf(id)]
		switch {
		case m == nil:
			return fmt.Errorf("%w: machine %s is not part of a maintenance schedule", ErrInvalidCall, machineJSON(id))
		case m.mode != mesospb.MachineInfo_DRAINING:
			return fmt.Errorf("%w: machine %s is not in DRAINING mode and cannot be brought down", ErrInvalidCall, machineJSON(id))
		}
	}
	for _, id := range ids {
		c.maint.machines[keyOf(id)].mode = mesospb.MachineInfo_DOWN
	}
	for _, agentID := range sortedKeys(c.agents) {
		a := c.agents[agentID]
		if m := c.machineOf(a.info.Hostname, agentIP(a)); m == nil || m.mode != mesospb.MachineInfo_DOWN {
			continue
		}
		c.rescindInverseOffersOn(a.id)
		delete(c.maint.draining, a.id)
		// As Mesos's removeSlave without an unreachable time: TASK_LOST
		// (REASON_AGENT_REMOVED), or TASK_GONE_BY_OPERATOR for
		// partition-aware frameworks (removedTaskState).
		c.removeAgent(a, mesospb.TaskStatus_REASON_AGENT_REMOVED_BY_OPERATOR, "Operator initiated 'Machine DOWN'")
		c.persist(RemoveAgent{AgentID: a.id})
	}
	return nil
}

// stopMaintenance brings DOWN machines back UP: they leave the schedule
// (and windows left empty go too), and their agents may register again.
// Frameworks learn of it only by the machines' offers, as in Mesos.
func (c *core) stopMaintenance(ids []mesospb.MachineID) error {
	if err := validateMachineList(ids); err != nil {
		return err
	}
	up := make(map[machineKey]bool, len(ids))
	for _, id := range ids {
		k := keyOf(id)
		m := c.maint.machines[k]
		switch {
		case m == nil:
			return fmt.Errorf("%w: machine %s is not part of a maintenance schedule", ErrInvalidCall, machineJSON(id))
		case m.mode != mesospb.MachineInfo_DOWN:
			return fmt.Errorf("%w: machine %s is not in DOWN mode and cannot be brought up", ErrInvalidCall, machineJSON(id))
		}
		up[k] = true
	}
	for k := range up {
		delete(c.maint.machines, k)
	}
	var windows []masterpb.Window
	for _, w := range c.maint.schedule.Windows {
		kept := slices.DeleteFunc(slices.Clone(w.MachineIDs), func(id mesospb.MachineID) bool { return up[keyOf(id)] })
		if len(kept) > 0 {
			windows = append(windows, masterpb.Window{MachineIDs: kept, Unavailability: w.Unavailability})
		}
	}
	c.maint.schedule = masterpb.Schedule{Windows: windows}
	return nil
}

// maintenanceSchedule answers GET_MAINTENANCE_SCHEDULE: the schedule as
// posted, less the machines brought back UP since.
func (c *core) maintenanceSchedule() masterpb.Schedule { return cloneSchedule(c.maint.schedule) }

// maintenanceStatus answers GET_MAINTENANCE_STATUS: the DRAINING machines,
// each with the latest answers of the frameworks to the inverse offers for
// its agents, and the DOWN machines, in the order of their IDs.
func (c *core) maintenanceStatus() masterpb.ClusterStatus {
	byMachine := map[machineKey][]masterpb.InverseOfferStatus{}
	for _, agentID := range sortedKeys(c.maint.draining) {
		a := c.agents[agentID]
		if a == nil {
			continue
		}
		m := c.machineOf(a.info.Hostname, agentIP(a))
		if m == nil {
			continue
		}
		d := c.maint.draining[agentID]
		k := keyOf(m.id)
		for _, fw := range sortedKeys(d.statuses) {
			st := d.statuses[fw]
			st.Status = st.Status.Enum()
			byMachine[k] = append(byMachine[k], st)
		}
	}
	var status masterpb.ClusterStatus
	for _, k := range c.sortedMachines() {
		m := c.maint.machines[k]
		switch m.mode {
		case mesospb.MachineInfo_DRAINING:
			status.DrainingMachines = append(status.DrainingMachines, masterpb.ClusterStatus_DrainingMachine{
				ID: cloneMachineID(m.id), Statuses: byMachine[k],
			})
		case mesospb.MachineInfo_DOWN:
			status.DownMachines = append(status.DownMachines, cloneMachineID(m.id))
		}
	}
	return status
}

func cloneMachineID(id mesospb.MachineID) mesospb.MachineID {
	out := mesospb.MachineID{}
	if id.Hostname != nil {
		out.Hostname = ptr(*id.Hostname)
	}
	if id.IP != nil {
		out.IP = ptr(*id.IP)
	}
	return out
}

func cloneUnavailability(u mesospb.Unavailability) mesospb.Unavailability {
	out := mesospb.Unavailability{Start: mesospb.TimeInfo{Nanoseconds: u.Start.Nanoseconds}}
	if u.Duration != nil {
		out.Duration = &mesospb.DurationInfo{Nanoseconds: u.Duration.Nanoseconds}
	}
	return out
}

// cloneSchedule copies a schedule so that neither the caller's nor the
// answer's copy shares memory with the core's.
func cloneSchedule(s masterpb.Schedule) masterpb.Schedule {
	var out masterpb.Schedule
	for _, w := range s.Windows {
		cw := masterpb.Window{Unavailability: cloneUnavailability(w.Unavailability)}
		for _, id := range w.MachineIDs {
			cw.MachineIDs = append(cw.MachineIDs, cloneMachineID(id))
		}
		out.Windows = append(out.Windows, cw)
	}
	return out
}
