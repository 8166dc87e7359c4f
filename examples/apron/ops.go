package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// findAgent names an agent by its ID, its hostname or hostname:port; an
// agent the master does not know is an error (exit status 1).
func (a *app) findAgent(ctx context.Context, c *client, name string) (*masterpb.Response_GetAgents_Agent, error) {
	r, err := c.get(ctx, masterpb.Call_GET_AGENTS)
	if err != nil {
		return nil, err
	}
	var byHost []*masterpb.Response_GetAgents_Agent
	agents := r.GetGetAgents().GetAgents()
	for i := range agents {
		ag := &agents[i]
		if ag.AgentInfo.GetID().GetValue() == name {
			return ag, nil
		}
		if ag.AgentInfo.Hostname == name || fmt.Sprintf("%s:%d", ag.AgentInfo.Hostname, ag.AgentInfo.GetPort()) == name {
			byHost = append(byHost, ag)
		}
	}
	switch len(byHost) {
	case 0:
		return nil, fmt.Errorf("unknown agent %q (see apron agents)", name)
	case 1:
		return byHost[0], nil
	}
	return nil, fmt.Errorf("%d agents are on %q: name one by its ID", len(byHost), name)
}

// reservationCall is what reserve and unreserve send.
type reservationCall struct {
	agent     mesospb.AgentID
	resources []mesospb.Resource
	text      string // as people write them: cpus(web):1;mem(web):128
}

// reservation reads reserve's and unreserve's command line and finds the
// agent: the resources, dynamically reserved.
func (a *app) reservation(name string, args []string) (*reservationCall, error) {
	fs := a.flagSet(name)
	role := fs.String("role", "", "the `role` to reserve for, for resources that do not name theirs (cpus(role):1)")
	principal := fs.String("principal", "", "the reservation's `principal` (default: the -credential's)")
	pos, err := a.parse(fs, args, 2, 2, "[-role R] [-principal P] AGENT RESOURCES")
	if err != nil {
		return nil, err
	}
	parsed, err := resources.Parse(pos[1])
	if err != nil {
		return nil, usagef("RESOURCES: %v", err)
	}
	c, err := a.master()
	if err != nil {
		return nil, err
	}
	if *principal == "" && c.cred != nil {
		*principal = c.cred.Principal
	}
	out := &reservationCall{}
	var shown resources.Resources
	for _, r := range parsed {
		to := *role
		if r.IsReserved() {
			to = r.Role()
			r.Reservations = nil
		}
		if to == "" {
			return nil, usagef("%s: %s names no role: write %s(ROLE):... or give -role", name, r, r.Name)
		}
		show := r
		show.Reservations = []resources.Reservation{{Type: resources.Static, Role: to}}
		shown = append(shown, show)
		r = r.PushReservation(resources.Reservation{Type: resources.Dynamic, Role: to, Principal: *principal})
		out.resources = append(out.resources, r.ToProto())
	}
	out.text = shown.String()
	ctx, cancel := a.callCtx()
	defer cancel()
	ag, err := a.findAgent(ctx, c, pos[0])
	if err != nil {
		return nil, err
	}
	out.agent = *ag.AgentInfo.ID
	return out, nil
}

func (a *app) reserve(args []string) error   { return a.changeReservation("reserve", args) }
func (a *app) unreserve(args []string) error { return a.changeReservation("unreserve", args) }

// changeReservation makes the RESERVE_RESOURCES or UNRESERVE_RESOURCES
// call that verb ("reserve", "unreserve") asks for.
func (a *app) changeReservation(verb string, args []string) error {
	rc, err := a.reservation(verb, args)
	if err != nil {
		return err
	}
	call := &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
		ReserveResources: &masterpb.Call_ReserveResources{AgentID: rc.agent, Resources: rc.resources}}
	if verb == "unreserve" {
		call = &masterpb.Call{Type: masterpb.Call_UNRESERVE_RESOURCES.Enum(),
			UnreserveResources: &masterpb.Call_UnreserveResources{AgentID: rc.agent, Resources: rc.resources}}
	}
	if _, err := a.call(call); err != nil {
		return err
	}
	if !a.opts.json {
		fmt.Fprintf(a.stdout, "%sd on %s: %s\n", verb, rc.agent.Value, rc.text)
	}
	return nil
}

func (a *app) drain(args []string) error {
	fs := a.flagSet("drain")
	grace := fs.Duration("grace", -1, "the longest `duration` a task may take to end (default: each task's own kill grace period)")
	gone := fs.Bool("mark-gone", false, "mark the agent gone once drained: it may never come back")
	pos, err := a.parse(fs, args, 1, 1, "[-grace D] [-mark-gone] AGENT")
	if err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	ag, err := a.findAgent(ctx, c, pos[0])
	if err != nil {
		return err
	}
	d := &masterpb.Call_DrainAgent{AgentID: *ag.AgentInfo.ID}
	if *gone {
		d.MarkGone = gone
	}
	if *grace >= 0 {
		secs := int64(*grace / time.Second)
		nanos := int32(*grace % time.Second)
		d.MaxGracePeriod = &masterpb.Duration{Seconds: &secs, Nanos: &nanos}
	}
	if _, err := c.call(ctx, &masterpb.Call{Type: masterpb.Call_DRAIN_AGENT.Enum(), DrainAgent: d}); err != nil {
		return err
	}
	if !a.opts.json {
		fmt.Fprintf(a.stdout, "draining %s (%s)\n", d.AgentID.Value, ag.AgentInfo.Hostname)
	}
	return nil
}

// machines reads MACHINE arguments: HOST or HOST/IP.
func machines(args []string) []mesospb.MachineID {
	out := make([]mesospb.MachineID, 0, len(args))
	for _, m := range args {
		host, ip, _ := strings.Cut(m, "/")
		var id mesospb.MachineID
		if host != "" {
			id.Hostname = &host
		}
		if ip != "" {
			id.IP = &ip
		}
		out = append(out, id)
	}
	return out
}

func machineString(m mesospb.MachineID) string {
	s := m.GetHostname()
	if m.IP != nil {
		s += "/" + m.GetIP()
	}
	return s
}

func (a *app) maintenance(args []string) error {
	const use = "usage: apron maintenance schedule [add -start T -duration D MACHINE... | clear] | status | down MACHINE... | up MACHINE..."
	if len(args) == 0 {
		return usagef(use)
	}
	switch args[0] {
	case "schedule":
		if len(args) > 1 && args[1] == "add" {
			return a.scheduleAdd(args[2:])
		}
		if len(args) > 1 && args[1] == "clear" {
			if _, err := a.parse(a.flagSet("maintenance schedule clear"), args[2:], 0, 0, ""); err != nil {
				return err
			}
			return a.change(&masterpb.Call{
				Type:                      masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
				UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: masterpb.Schedule{}},
			}, "maintenance schedule cleared")
		}
		return a.scheduleShow(args[1:])
	case "status":
		return a.maintenanceStatus(args[1:])
	case "down", "up":
		pos, err := a.parse(a.flagSet("maintenance "+args[0]), args[1:], 1, -1, "MACHINE...")
		if err != nil {
			return err
		}
		call := &masterpb.Call{Type: masterpb.Call_START_MAINTENANCE.Enum(), StartMaintenance: &masterpb.Call_StartMaintenance{Machines: machines(pos)}}
		if args[0] == "up" {
			call = &masterpb.Call{Type: masterpb.Call_STOP_MAINTENANCE.Enum(), StopMaintenance: &masterpb.Call_StopMaintenance{Machines: machines(pos)}}
		}
		return a.change(call, fmt.Sprintf("%s: %s", args[0], strings.Join(pos, " ")))
	}
	return usagef(use)
}

func (a *app) schedule(ctx context.Context, c *client) (masterpb.Schedule, error) {
	r, err := c.get(ctx, masterpb.Call_GET_MAINTENANCE_SCHEDULE)
	if err != nil || r.GetMaintenanceSchedule == nil {
		return masterpb.Schedule{}, err
	}
	return r.GetMaintenanceSchedule.Schedule, nil
}

func (a *app) scheduleShow(args []string) error {
	if _, err := a.parse(a.flagSet("maintenance schedule"), args, 0, 0, "[add ... | clear]"); err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	s, err := a.schedule(ctx, c)
	if err != nil {
		return err
	}
	if a.opts.json {
		return a.printJSON(false, &s)
	}
	rows := [][]string{{"START", "DURATION", "MACHINES"}}
	for _, w := range s.Windows {
		dur := "-"
		if d := w.Unavailability.Duration; d != nil {
			dur = time.Duration(d.Nanoseconds).String()
		}
		ms := make([]string, len(w.MachineIDs))
		for i, m := range w.MachineIDs {
			ms[i] = machineString(m)
		}
		rows = append(rows, []string{time.Unix(0, w.Unavailability.Start.Nanoseconds).UTC().Format(time.RFC3339), dur, strings.Join(ms, ",")})
	}
	a.table(rows)
	return nil
}

// parseStart reads -start: now, an RFC 3339 time, or +DURATION from now.
func (a *app) parseStart(v string) (time.Time, error) {
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	switch {
	case v == "" || v == "now":
		return now(), nil
	case strings.HasPrefix(v, "+"):
		d, err := time.ParseDuration(v[1:])
		if err != nil {
			return time.Time{}, usagef("-start %q: %v", v, err)
		}
		return now().Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("-start %q: want now, +DURATION or an RFC 3339 time", v)
	}
	return t, nil
}

func (a *app) scheduleAdd(args []string) error {
	fs := a.flagSet("maintenance schedule add")
	start := fs.String("start", "now", "when the machines go down: now, +DURATION (+2h) or an RFC 3339 `time`")
	dur := fs.Duration("duration", time.Hour, "how long they stay down")
	pos, err := a.parse(fs, args, 1, -1, "[-start T] [-duration D] MACHINE...")
	if err != nil {
		return err
	}
	t, err := a.parseStart(*start)
	if err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	s, err := a.schedule(ctx, c)
	if err != nil {
		return err
	}
	s.Windows = append(s.Windows, masterpb.Window{
		MachineIDs: machines(pos),
		Unavailability: mesospb.Unavailability{
			Start:    mesospb.TimeInfo{Nanoseconds: t.UnixNano()},
			Duration: &mesospb.DurationInfo{Nanoseconds: int64(*dur)},
		},
	})
	if _, err := c.call(ctx, &masterpb.Call{
		Type:                      masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
		UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: s},
	}); err != nil {
		return err
	}
	if !a.opts.json {
		fmt.Fprintf(a.stdout, "maintenance scheduled from %s for %s: %s\n", t.UTC().Format(time.RFC3339), *dur, strings.Join(pos, " "))
	}
	return nil
}

func (a *app) maintenanceStatus(args []string) error {
	if _, err := a.parse(a.flagSet("maintenance status"), args, 0, 0, ""); err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_MAINTENANCE_STATUS)
	if err != nil {
		return err
	}
	var st masterpb.ClusterStatus
	if r.GetMaintenanceStatus != nil {
		st = r.GetMaintenanceStatus.Status
	}
	if a.opts.json {
		return a.printJSON(false, proto.Message(&st))
	}
	rows := [][]string{{"MACHINE", "MODE", "FRAMEWORKS ANSWERED"}}
	for _, d := range st.DrainingMachines {
		answered := make([]string, 0, len(d.Statuses))
		for _, s := range d.Statuses {
			answered = append(answered, s.FrameworkID.Value+"="+strings.ToLower(s.GetStatus().String()))
		}
		rows = append(rows, []string{machineString(d.ID), "draining", strings.Join(answered, ",")})
	}
	for _, m := range st.DownMachines {
		rows = append(rows, []string{machineString(m), "down", ""})
	}
	a.table(rows)
	return nil
}
