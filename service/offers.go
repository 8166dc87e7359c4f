package service

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/resources"
)

// offer is one offer being answered: what is left of it and what the
// answer does with it.
type offer struct {
	o     *mesospb.Offer
	attrs map[string]string // text and scalar attributes, and "hostname"
	avail resources.Resources
	ops   []mesospb.Offer_Operation
}

func (o *offer) op(op mesospb.Offer_Operation) { o.ops = append(o.ops, op) }

// Offers answers every offer: each is accepted (reserving, creating,
// launching, destroying, unreserving) or declined, in the same Ready.
func (c *Core) Offers(offers []mesospb.Offer) {
	// Every spread value of the batch counts before any pod is placed.
	for i := range offers {
		attrs := attributes(&offers[i])
		for _, ps := range c.spec.Pods {
			if a := ps.Placement.SpreadBy; a != "" {
				if v, ok := attrs[a]; ok {
					if c.spread[a] == nil {
						c.spread[a] = map[string]bool{}
					}
					c.spread[a][v] = true
				}
			}
		}
	}
	for i := range offers {
		c.answer(&offers[i])
	}
	c.advance()
}

func (c *Core) answer(po *mesospb.Offer) {
	rs, err := resources.FromProto(po.Resources)
	refuse := c.idleFor
	if c.needsOffers() {
		refuse = c.declineFor
	}
	if next := c.nextRelaunch().Seconds(); next > 0 && next < refuse {
		// A pod waits to be relaunched: no offer is declined past the
		// end of its wait (the REVIVE sent then is the fast way back;
		// this one holds if it is lost).
		refuse = next
	}
	filters := &mesospb.Filters{RefuseSeconds: &refuse}
	if err != nil {
		c.send(&schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(), Decline: &schedulerpb.Call_Decline{OfferIDs: []mesospb.OfferID{po.ID}, Filters: filters}})
		return
	}
	o := &offer{o: po, attrs: attributes(po), avail: rs.Unallocated()}

	groups := c.labelled(o.avail)
	// Reservations of no current pod: destroy and unreserve them.
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if p := c.podOfResource(id); p == nil || p.AgentID != po.AgentID.Value {
			c.cleanup(o, groups[id])
		}
	}
	pods := c.sortedByPlan()
	// Pods placed on this agent.
	for _, p := range pods {
		if p.AgentID != po.AgentID.Value {
			continue
		}
		group := groups[p.ResourceID]
		switch {
		case p.Decommission && !p.active():
			if c.decommissionable(p) {
				if !group.Empty() {
					c.cleanup(o, group)
					delete(c.state.Pods, p.Name())
					c.changed()
				} else if !p.Reserved {
					delete(c.state.Pods, p.Name())
					c.changed()
				}
			}
		case c.wantsLaunch(p):
			c.launchInPlace(o, p, group)
		}
	}
	// Pods to place.
	for _, p := range pods {
		if !p.placed() && c.wantsLaunch(p) {
			c.place(o, p)
		}
	}
	if len(o.ops) == 0 {
		c.send(&schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(), Decline: &schedulerpb.Call_Decline{OfferIDs: []mesospb.OfferID{po.ID}, Filters: filters}})
		return
	}
	c.send(&schedulerpb.Call{Type: schedulerpb.Call_ACCEPT.Enum(), Accept: &schedulerpb.Call_Accept{OfferIDs: []mesospb.OfferID{po.ID}, Operations: o.ops, Filters: filters}})
}

// decommissionable: the pod is the one of its type being removed now (or
// the service is uninstalling, when all go at once).
func (c *Core) decommissionable(p *PodState) bool {
	if c.state.Uninstalling {
		return true
	}
	if c.state.Paused[PlanDecommission] || c.awaitsHook(p) {
		return false
	}
	return c.decommissionHeads()[p.Type] == p
}

func attributes(o *mesospb.Offer) map[string]string {
	m := map[string]string{"hostname": o.Hostname}
	for _, a := range o.Attributes {
		switch {
		case a.Text != nil:
			m[a.Name] = a.Text.Value
		case a.Scalar != nil:
			m[a.Name] = fmt.Sprint(a.Scalar.Value)
		}
	}
	return m
}

// labelled groups the resources reserved by this service by resource ID.
func (c *Core) labelled(rs resources.Resources) map[string]resources.Resources {
	out := map[string]resources.Resources{}
	for _, r := range rs {
		if len(r.Reservations) == 0 {
			continue
		}
		top := r.Reservations[len(r.Reservations)-1]
		if top.Type != resources.Dynamic || top.Role != c.spec.Role {
			continue
		}
		var service, id string
		for _, l := range top.Labels {
			switch l.Key {
			case LabelService:
				service = l.Value
			case LabelResourceID:
				id = l.Value
			}
		}
		if service == c.spec.Name && id != "" {
			out[id] = out[id].AddResource(r)
		}
	}
	return out
}

func (c *Core) podOfResource(id string) *PodState {
	for _, p := range c.state.Pods {
		if p.ResourceID == id {
			return p
		}
	}
	return nil
}

// cleanup destroys the volumes of group and unreserves all of it.
func (c *Core) cleanup(o *offer, group resources.Resources) {
	vols := group.PersistentVolumes()
	if !vols.Empty() {
		o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_DESTROY.Enum(), Destroy: &mesospb.Offer_Operation_Destroy{Volumes: vols.ToProto()}})
	}
	var plain resources.Resources
	for _, r := range group {
		plain = plain.AddResource(r.StripVolume())
	}
	o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_UNRESERVE.Enum(), Unreserve: &mesospb.Offer_Operation_Unreserve{Resources: plain.ToProto()}})
	o.avail = o.avail.Subtract(group)
}

func (c *Core) reservation(p *PodState) resources.Reservation {
	return resources.Reservation{
		Type:      resources.Dynamic,
		Role:      c.spec.Role,
		Principal: c.spec.Principal,
		Labels: []resources.Label{
			{Key: LabelService, Value: c.spec.Name},
			{Key: LabelPod, Value: p.Name()},
			{Key: LabelResourceID, Value: p.ResourceID},
		},
	}
}

// plainResources are the pod's unreserved needs besides its volumes.
func plainResources(ps *PodSpec, ports map[string]uint64) resources.Resources {
	rs := resources.New(resources.NewScalar(resources.NameCPUs, ps.CPUs), resources.NewScalar(resources.NameMem, ps.Mem))
	if ps.Disk > 0 {
		rs = rs.AddResource(resources.NewScalar(resources.NameDisk, ps.Disk))
	}
	for _, port := range ps.Ports {
		if v := ports[port.Name]; v != 0 {
			rs = rs.AddResource(resources.NewRanges(resources.NamePorts, resources.Range{Begin: v, End: v}))
		}
	}
	return rs
}

// volumes are the pod's persistent volumes, reserved.
func (c *Core) volumes(ps *PodSpec, p *PodState) resources.Resources {
	var rs resources.Resources
	res := c.reservation(p)
	for i, v := range ps.Volumes {
		if i >= len(p.PersistenceIDs) {
			break
		}
		r := resources.NewScalar(resources.NameDisk, v.Size).PushReservation(res)
		r.Disk = &resources.DiskInfo{
			Persistence: &resources.Persistence{ID: p.PersistenceIDs[i], Principal: c.spec.Principal},
			Volume:      &resources.Volume{ContainerPath: v.Path, Mode: resources.RW},
		}
		rs = rs.AddResource(r)
	}
	return rs
}

// choosePorts keeps the pod's ports where the spec allows and picks the
// others from free, reporting false when it cannot.
func choosePorts(ps *PodSpec, old map[string]uint64, free resources.Ranges) (map[string]uint64, bool) {
	out := map[string]uint64{}
	taken := resources.Ranges{}
	for _, port := range ps.Ports {
		switch {
		case port.Port != 0:
			out[port.Name] = port.Port
		case old[port.Name] != 0:
			out[port.Name] = old[port.Name]
		default:
			continue
		}
		taken = taken.Add(resources.RangesOf(resources.Range{Begin: out[port.Name], End: out[port.Name]}))
	}
	free = free.Subtract(taken)
	for _, port := range ps.Ports {
		if out[port.Name] != 0 {
			continue
		}
		if free.Empty() {
			return nil, false
		}
		v := free[0].Begin
		out[port.Name] = v
		free = free.Subtract(resources.RangesOf(resources.Range{Begin: v, End: v}))
	}
	return out, true
}

// placementAllows checks the pod type's placement rules on an offer.
func (c *Core) placementAllows(ps *PodSpec, p *PodState, o *offer) bool {
	if p.AvoidAgent == o.o.AgentID.Value {
		return false
	}
	for _, pred := range ps.Placement.Require {
		v, ok := o.attrs[pred.Attribute]
		match := ok && regexp.MustCompile("^(?:"+pred.Matches+")$").MatchString(v)
		if match == pred.Not {
			return false
		}
	}
	if n := ps.Placement.MaxPerHost; n > 0 {
		on := 0
		for _, q := range c.state.Pods {
			if q.Type == ps.Name && q != p && q.placed() && q.Hostname == o.o.Hostname {
				on++
			}
		}
		if on >= n {
			return false
		}
	}
	if a := ps.Placement.SpreadBy; a != "" {
		v, ok := o.attrs[a]
		if !ok {
			return false
		}
		count := map[string]int{}
		for val := range c.spread[a] {
			count[val] = 0
		}
		for _, q := range c.state.Pods {
			if q.Type == ps.Name && q != p && q.placed() {
				count[c.attrOf(q, a)]++
			}
		}
		least := count[v]
		for val := range c.spread[a] {
			least = min(least, count[val])
		}
		if count[v] > least {
			return false
		}
	}
	return true
}

// attrOf is the value of attribute a on the agent of a placed pod, kept
// from its placement.
func (c *Core) attrOf(p *PodState, a string) string {
	for _, kv := range strings.Split(p.Attributes, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == a {
			return v
		}
	}
	return ""
}

// place puts an unplaced pod on the offer if it fits and placement allows:
// RESERVE its resources, CREATE its volumes, LAUNCH its task.
func (c *Core) place(o *offer, p *PodState) {
	ps := c.spec.pod(p.Type)
	if ps == nil || !c.placementAllows(ps, p, o) {
		return
	}
	free := o.avail.Unreserved()
	ports, ok := choosePorts(ps, nil, free.Ports())
	if !ok {
		return
	}
	plain := plainResources(ps, ports)
	need := plain
	for _, v := range ps.Volumes {
		need = need.AddResource(resources.NewScalar(resources.NameDisk, v.Size))
	}
	if !free.Contains(need) {
		return
	}
	p.AgentID, p.Hostname, p.Ports = o.o.AgentID.Value, o.o.Hostname, ports
	p.Reserved = false
	var attrs []string
	for _, a := range []string{ps.Placement.SpreadBy} {
		if a != "" {
			attrs = append(attrs, a+"="+o.attrs[a])
		}
	}
	p.Attributes = strings.Join(attrs, ";")
	c.changed()
	res := c.reservation(p)
	o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_RESERVE.Enum(), Reserve: &mesospb.Offer_Operation_Reserve{Resources: need.PushReservation(res).ToProto()}})
	if vols := c.volumes(ps, p); !vols.Empty() {
		o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_CREATE.Enum(), Create: &mesospb.Offer_Operation_Create{Volumes: vols.ToProto()}})
	}
	o.avail = o.avail.Subtract(need)
	if c.waitsForPeers(p) {
		return // placed; launched on its reservations once all are
	}
	c.launch(o, ps, p, plain.PushReservation(res).Add(c.volumes(ps, p)))
}

// launchInPlace relaunches a placed pod on its own reservations (group),
// adjusting them first if the spec's resources changed and re-creating
// volumes whose CREATE was lost.
func (c *Core) launchInPlace(o *offer, p *PodState, group resources.Resources) {
	ps := c.spec.pod(p.Type)
	if ps == nil {
		return
	}
	if group.Empty() {
		if !p.Reserved {
			// The RESERVE never happened (its ACCEPT failed): place the
			// pod anew, on any agent, with fresh IDs so that a late
			// reservation is recognized as stale.
			p.AgentID, p.Hostname, p.Ports = "", "", nil
			p.ResourceID = c.newID()
			p.PersistenceIDs = c.newPersistenceIDs(p)
			c.changed()
		}
		return // reserved, but not in this offer: wait for one that has them
	}
	if !p.Reserved {
		p.Reserved = true
		c.changed()
	}
	if c.waitsForPeers(p) {
		return
	}
	res := c.reservation(p)
	vols := c.volumes(ps, p)
	haveVols := group.PersistentVolumes()
	var missing resources.Resources
	for _, v := range vols {
		if !haveVols.ContainsResource(v) {
			missing = missing.AddResource(v)
		}
	}
	haveOther := group.Subtract(haveVols)
	free := o.avail.Unreserved()
	ports, ok := choosePorts(ps, p.Ports, free.Add(haveOther.PopReservation()).Ports())
	if !ok {
		return
	}
	plain := plainResources(ps, ports)
	wantOther := plain
	for _, v := range missing {
		wantOther = wantOther.AddResource(v.StripVolume().PopReservation())
	}
	wantOther = wantOther.PushReservation(res)
	need := wantOther.Subtract(haveOther)
	extra := haveOther.Subtract(wantOther)
	if !free.Contains(need.PopReservation()) {
		return
	}
	if !extra.Empty() {
		o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_UNRESERVE.Enum(), Unreserve: &mesospb.Offer_Operation_Unreserve{Resources: extra.ToProto()}})
	}
	if !need.Empty() {
		o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_RESERVE.Enum(), Reserve: &mesospb.Offer_Operation_Reserve{Resources: need.ToProto()}})
		o.avail = o.avail.Subtract(need.PopReservation())
	}
	if !missing.Empty() {
		o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_CREATE.Enum(), Create: &mesospb.Offer_Operation_Create{Volumes: missing.ToProto()}})
	}
	o.avail = o.avail.Subtract(group)
	if fmt.Sprint(ports) != fmt.Sprint(p.Ports) {
		p.Ports = ports
		c.changed()
	}
	c.launch(o, ps, p, plain.PushReservation(res).Add(vols))
}

// launch adds the LAUNCH of the pod's next task on rs.
func (c *Core) launch(o *offer, ps *PodSpec, p *PodState, rs resources.Resources) {
	data := c.templateData(p)
	task, err := c.taskInfo(ps, p, data, rs)
	if err != nil {
		return // a template that fails on this data: nothing to launch
	}
	p.TaskID = task.TaskID.Value
	p.TaskState = mesospb.TASK_STAGING.String()
	p.Config = p.Target
	p.Peers = c.peersKey(ps)
	p.Ready, p.Killing = false, false
	p.DownSince = time.Time{}
	p.AvoidAgent = ""
	p.Launches++
	c.changed()
	o.op(mesospb.Offer_Operation{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{task}}})
}

func (c *Core) templateData(p *PodState) *TemplateData {
	d := &TemplateData{Service: c.spec.Name, Pod: p.Name(), Type: p.Type, Index: p.Index, Host: p.Hostname, Ports: p.Ports}
	ps := c.spec.pod(p.Type)
	for i := 0; ps != nil && i < ps.Count; i++ {
		peer := Peer{Pod: podName(p.Type, i), Index: i}
		if q := c.state.Pods[peer.Pod]; q != nil {
			peer.Host, peer.Ports = q.Hostname, q.Ports
		}
		d.Peers = append(d.Peers, peer)
	}
	return d
}

func (c *Core) taskInfo(ps *PodSpec, p *PodState, data *TemplateData, rs resources.Resources) (mesospb.TaskInfo, error) {
	cmd, err := podCommand(ps, data)
	if err != nil {
		return mesospb.TaskInfo{}, err
	}
	env, err := podEnv(ps, data)
	if err != nil {
		return mesospb.TaskInfo{}, err
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vars []mesospb.Environment_Variable
	for _, k := range keys {
		v := env[k]
		vars = append(vars, mesospb.Environment_Variable{Name: k, Value: &v})
	}
	command := &mesospb.CommandInfo{Value: &cmd, Shell: ptr(true), Environment: &mesospb.Environment{Variables: vars}}
	if c.spec.User != "" {
		command.User = ptr(c.spec.User)
	}
	for _, u := range ps.URIs {
		command.URIs = append(command.URIs, mesospb.CommandInfo_URI{Value: u})
	}
	id := fmt.Sprintf("%s__%s__%s", c.spec.Name, p.Name(), c.newID())
	task := mesospb.TaskInfo{
		Name:      p.Name(),
		TaskID:    mesospb.TaskID{Value: id},
		AgentID:   mesospb.AgentID{Value: p.AgentID},
		Resources: rs.ToProto(),
		Command:   command,
		Labels: &mesospb.Labels{Labels: []mesospb.Label{
			{Key: LabelService, Value: ptr(c.spec.Name)},
			{Key: LabelPod, Value: ptr(p.Name())},
			{Key: "config", Value: ptr(p.Target)},
		}},
	}
	if ps.Image != "" {
		task.Container = &mesospb.ContainerInfo{
			Type:  mesospb.ContainerInfo_MESOS.Enum(),
			Mesos: &mesospb.ContainerInfo_MesosInfo{Image: &mesospb.Image{Type: mesospb.Image_DOCKER.Enum(), Docker: &mesospb.Image_Docker{Name: ps.Image}}},
		}
	}
	if ps.Readiness != nil {
		check, err := checkInfo(ps.Readiness, p.Ports, data)
		if err != nil {
			return mesospb.TaskInfo{}, err
		}
		task.Check = check
	}
	if ps.Health != nil {
		hc, err := healthCheck(ps.Health, p.Ports, data)
		if err != nil {
			return mesospb.TaskInfo{}, err
		}
		task.HealthCheck = hc
	}
	if ps.KillGracePeriod > 0 {
		task.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(ps.KillGracePeriod)}}
	}
	return task, nil
}

func seconds(d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	return ptr(d.Seconds())
}

func checkInfo(cs *CheckSpec, ports map[string]uint64, data *TemplateData) (*mesospb.CheckInfo, error) {
	ci := &mesospb.CheckInfo{DelaySeconds: seconds(cs.Delay), IntervalSeconds: seconds(cs.Interval), TimeoutSeconds: seconds(cs.Timeout)}
	if cs.Delay == 0 {
		ci.DelaySeconds = ptr(0.0) // readiness is worth knowing early
	}
	if cs.Interval == 0 {
		ci.IntervalSeconds = ptr(1.0)
	}
	switch {
	case cs.Command != "":
		cmd, err := render("check", cs.Command, data)
		if err != nil {
			return nil, err
		}
		ci.Type = mesospb.CheckInfo_COMMAND.Enum()
		ci.Command = &mesospb.CheckInfo_Command{Command: mesospb.CommandInfo{Value: &cmd, Shell: ptr(true)}}
	case cs.HTTPPort != "":
		ci.Type = mesospb.CheckInfo_HTTP.Enum()
		ci.HTTP = &mesospb.CheckInfo_Http{Port: uint32(ports[cs.HTTPPort])}
		if cs.HTTPPath != "" {
			ci.HTTP.Path = ptr(cs.HTTPPath)
		}
	default:
		ci.Type = mesospb.CheckInfo_TCP.Enum()
		ci.TCP = &mesospb.CheckInfo_Tcp{Port: uint32(ports[cs.TCPPort])}
	}
	return ci, nil
}

func healthCheck(hs *HealthSpec, ports map[string]uint64, data *TemplateData) (*mesospb.HealthCheck, error) {
	hc := &mesospb.HealthCheck{DelaySeconds: seconds(hs.Delay), IntervalSeconds: seconds(hs.Interval), TimeoutSeconds: seconds(hs.Timeout), GracePeriodSeconds: seconds(hs.GracePeriod)}
	if hs.ConsecutiveFailures > 0 {
		hc.ConsecutiveFailures = ptr(hs.ConsecutiveFailures)
	}
	switch {
	case hs.Command != "":
		cmd, err := render("health", hs.Command, data)
		if err != nil {
			return nil, err
		}
		hc.Type = mesospb.HealthCheck_COMMAND.Enum()
		hc.Command = &mesospb.CommandInfo{Value: &cmd, Shell: ptr(true)}
	case hs.HTTPPort != "":
		hc.Type = mesospb.HealthCheck_HTTP.Enum()
		hc.HTTP = &mesospb.HealthCheck_HTTPCheckInfo{Port: uint32(ports[hs.HTTPPort])}
		if hs.HTTPPath != "" {
			hc.HTTP.Path = ptr(hs.HTTPPath)
		}
	default:
		hc.Type = mesospb.HealthCheck_TCP.Enum()
		hc.TCP = &mesospb.HealthCheck_TCPCheckInfo{Port: uint32(ports[hs.TCPPort])}
	}
	return hc, nil
}

func ptr[T any](v T) *T { return &v }
