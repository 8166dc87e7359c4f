package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// printJSON writes messages as the operator API's JSON, indented: one
// object, or an array when list is set.
func (a *app) printJSON(list bool, msgs ...proto.Message) error {
	var raw bytes.Buffer
	if list {
		raw.WriteByte('[')
	}
	for i, m := range msgs {
		if i > 0 {
			raw.WriteByte(',')
		}
		b, err := codec.MarshalJSON(m)
		if err != nil {
			return err
		}
		raw.Write(b)
	}
	if list {
		raw.WriteByte(']')
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := a.stdout.Write(out.Bytes())
	return err
}

// sum is the total of the scalar resources named name.
func sum(rs []mesospb.Resource, name string) float64 {
	var t float64
	for i := range rs {
		if rs[i].Name == name && rs[i].Scalar != nil {
			t += rs[i].Scalar.Value
		}
	}
	return t
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// usedOf is "used/total" of the scalar name.
func usedOf(used, total []mesospb.Resource, name string) string {
	return num(sum(used, name)) + "/" + num(sum(total, name))
}

// scalars formats a map of scalars as Mesos's resource text, sorted.
func scalars(m map[string]mesospb.Value_Scalar) string {
	if len(m) == 0 {
		return "-"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + num(m[n].Value)
	}
	return strings.Join(parts, ";")
}

func (a *app) agents(args []string) error {
	fs := a.flagSet("agents")
	if _, err := a.parse(fs, args, 0, 0, ""); err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_AGENTS)
	if err != nil {
		return err
	}
	agents := r.GetGetAgents().GetAgents()
	sort.Slice(agents, func(i, j int) bool {
		return agents[i].AgentInfo.GetID().GetValue() < agents[j].AgentInfo.GetID().GetValue()
	})
	if a.opts.json {
		msgs := make([]proto.Message, len(agents))
		for i := range agents {
			msgs[i] = &agents[i]
		}
		return a.printJSON(true, msgs...)
	}
	rows := [][]string{{"ID", "HOSTNAME", "STATE", "CPUS", "MEM", "DISK"}}
	for _, ag := range agents {
		rows = append(rows, []string{
			ag.AgentInfo.GetID().GetValue(),
			fmt.Sprintf("%s:%d", ag.AgentInfo.Hostname, ag.AgentInfo.GetPort()),
			agentState(&ag),
			usedOf(ag.AllocatedResources, ag.TotalResources, "cpus"),
			usedOf(ag.AllocatedResources, ag.TotalResources, "mem"),
			usedOf(ag.AllocatedResources, ag.TotalResources, "disk"),
		})
	}
	a.table(rows)
	return nil
}

func agentState(ag *masterpb.Response_GetAgents_Agent) string {
	switch {
	case ag.DrainInfo != nil:
		return strings.ToLower(ag.DrainInfo.State.String())
	case !ag.Active:
		return "disconnected"
	case ag.GetDeactivated():
		return "deactivated"
	}
	return "active"
}

func (a *app) frameworks(args []string) error {
	fs := a.flagSet("frameworks")
	all := fs.Bool("all", false, "also list the frameworks that have ended")
	if _, err := a.parse(fs, args, 0, 0, "[-all]"); err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_FRAMEWORKS)
	if err != nil {
		return err
	}
	fws := r.GetGetFrameworks().GetFrameworks()
	if *all {
		fws = append(fws, r.GetGetFrameworks().GetCompletedFrameworks()...)
	}
	if a.opts.json {
		msgs := make([]proto.Message, len(fws))
		for i := range fws {
			msgs[i] = &fws[i]
		}
		return a.printJSON(true, msgs...)
	}
	rows := [][]string{{"ID", "NAME", "ROLES", "STATE", "CPUS", "MEM"}}
	for _, f := range fws {
		roles := f.FrameworkInfo.Roles
		if len(roles) == 0 && f.FrameworkInfo.Role != nil {
			roles = []string{f.FrameworkInfo.GetRole()}
		}
		state := "active"
		switch {
		case !f.Active && !f.Connected:
			state = "disconnected"
		case !f.Active:
			state = "inactive"
		}
		rows = append(rows, []string{
			f.FrameworkInfo.GetID().GetValue(), f.FrameworkInfo.Name, strings.Join(roles, ","), state,
			num(sum(f.AllocatedResources, "cpus")), num(sum(f.AllocatedResources, "mem")),
		})
	}
	a.table(rows)
	return nil
}

// parseStates reads -state: TASK_RUNNING, running, or several
// comma-separated.
func parseStates(v string) (map[mesospb.TaskState]bool, error) {
	if v == "" {
		return nil, nil
	}
	out := map[mesospb.TaskState]bool{}
	for _, s := range strings.Split(v, ",") {
		s = strings.ToUpper(strings.TrimSpace(s))
		if !strings.HasPrefix(s, "TASK_") {
			s = "TASK_" + s
		}
		n, ok := mesospb.TaskState_value[s]
		if !ok {
			return nil, usagef("-state: unknown task state %q", s)
		}
		out[mesospb.TaskState(n)] = true
	}
	return out, nil
}

func (a *app) tasks(args []string) error {
	fs := a.flagSet("tasks")
	all := fs.Bool("all", false, "also list the tasks that have ended")
	state := fs.String("state", "", "only tasks in these `states` (comma-separated: running, TASK_FINISHED, ...), ended ones included")
	fwID := fs.String("framework", "", "only the tasks of the framework with this `ID`")
	agentID := fs.String("agent", "", "only the tasks on the agent with this `ID`")
	if _, err := a.parse(fs, args, 0, 0, "[-all] [-state S,...] [-framework ID] [-agent ID]"); err != nil {
		return err
	}
	states, err := parseStates(*state)
	if err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_TASKS)
	if err != nil {
		return err
	}
	gt := r.GetGetTasks()
	var list []mesospb.Task
	list = append(list, gt.GetPendingTasks()...)
	list = append(list, gt.GetTasks()...)
	list = append(list, gt.GetUnreachableTasks()...)
	if *all || states != nil {
		list = append(list, gt.GetCompletedTasks()...)
	}
	var keep []mesospb.Task
	for _, t := range list {
		if (states == nil || states[t.GetState()]) &&
			(*fwID == "" || t.FrameworkID.Value == *fwID) &&
			(*agentID == "" || t.AgentID.Value == *agentID) {
			keep = append(keep, t)
		}
	}
	if a.opts.json {
		msgs := make([]proto.Message, len(keep))
		for i := range keep {
			msgs[i] = &keep[i]
		}
		return a.printJSON(true, msgs...)
	}
	rows := [][]string{{"ID", "NAME", "STATE", "FRAMEWORK", "AGENT", "CPUS", "MEM"}}
	for _, t := range keep {
		rows = append(rows, []string{
			t.TaskID.Value, t.Name, t.GetState().String(), t.FrameworkID.Value, t.AgentID.Value,
			num(sum(t.Resources, "cpus")), num(sum(t.Resources, "mem")),
		})
	}
	a.table(rows)
	return nil
}

func (a *app) roles(args []string) error {
	fs := a.flagSet("roles")
	if _, err := a.parse(fs, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	r, err := c.get(ctx, masterpb.Call_GET_ROLES)
	if err != nil {
		return err
	}
	roles := r.GetGetRoles().GetRoles()
	sort.Slice(roles, func(i, j int) bool { return roles[i].Name < roles[j].Name })
	if a.opts.json {
		msgs := make([]proto.Message, len(roles))
		for i := range roles {
			msgs[i] = &roles[i]
		}
		return a.printJSON(true, msgs...)
	}
	q, err := c.get(ctx, masterpb.Call_GET_QUOTA)
	if err != nil {
		return err
	}
	quota := map[string]masterpb.QuotaConfig{}
	for _, qc := range quotaConfigs(q) {
		quota[qc.Role] = qc
	}
	rows := [][]string{{"ROLE", "WEIGHT", "FRAMEWORKS", "CPUS", "MEM", "QUOTA LIMITS"}}
	for _, role := range roles {
		rows = append(rows, []string{
			role.Name, num(role.Weight), strconv.Itoa(len(role.Frameworks)),
			num(sum(role.Resources, "cpus")), num(sum(role.Resources, "mem")), scalars(quota[role.Name].Limits),
		})
	}
	a.table(rows)
	return nil
}

func (a *app) quota(args []string) error {
	if len(args) == 0 {
		return usagef("usage: apron quota get [ROLE] | set [-guarantee RES] [-force] ROLE LIMIT | remove ROLE")
	}
	switch args[0] {
	case "get":
		return a.quotaGet(args[1:])
	case "set":
		return a.quotaSet(args[1:])
	case "remove":
		return a.quotaRemove(args[1:])
	}
	return usagef("quota: unknown subcommand %q (get, set, remove)", args[0])
}

func (a *app) quotaGet(args []string) error {
	pos, err := a.parse(a.flagSet("quota get"), args, 0, 1, "[ROLE]")
	if err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_QUOTA)
	if err != nil {
		return err
	}
	var configs []masterpb.QuotaConfig
	for _, qc := range quotaConfigs(r) {
		if len(pos) == 0 || qc.Role == pos[0] {
			configs = append(configs, qc)
		}
	}
	if len(pos) == 1 && len(configs) == 0 {
		// A role without quota has none: guarantees nothing, limits nothing.
		configs = append(configs, masterpb.QuotaConfig{Role: pos[0]})
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Role < configs[j].Role })
	if a.opts.json {
		msgs := make([]proto.Message, len(configs))
		for i := range configs {
			msgs[i] = &configs[i]
		}
		return a.printJSON(true, msgs...)
	}
	rows := [][]string{{"ROLE", "GUARANTEES", "LIMITS"}}
	for _, qc := range configs {
		rows = append(rows, []string{qc.Role, scalars(qc.Guarantees), scalars(qc.Limits)})
	}
	a.table(rows)
	return nil
}

// scalarMap reads resource text that may hold only unreserved scalars
// (quota's form): cpus:2;mem:1024.
func scalarMap(text, what string) (map[string]mesospb.Value_Scalar, error) {
	rs, err := resources.Parse(text)
	if err != nil {
		return nil, usagef("%s: %v", what, err)
	}
	out := map[string]mesospb.Value_Scalar{}
	for _, r := range rs {
		if r.Type != resources.TypeScalar || r.IsReserved() {
			return nil, usagef("%s: %s: quota takes unreserved scalars only (cpus:2;mem:1024)", what, r)
		}
		v := out[r.Name].Value + r.Scalar.Float64()
		out[r.Name] = mesospb.Value_Scalar{Value: v}
	}
	return out, nil
}

func (a *app) quotaSet(args []string) error {
	fs := a.flagSet("quota set")
	guarantee := fs.String("guarantee", "", "`resources` guaranteed to the role (default: LIMIT, as Mesos's SET_QUOTA guaranteed its limit)")
	force := fs.Bool("force", false, "set it even when the cluster cannot satisfy the guarantee now")
	pos, err := a.parse(fs, args, 2, 2, "[-guarantee RES] [-force] ROLE LIMIT")
	if err != nil {
		return err
	}
	limits, err := scalarMap(pos[1], "LIMIT")
	if err != nil {
		return err
	}
	guarantees := limits
	if *guarantee != "" {
		if guarantees, err = scalarMap(*guarantee, "-guarantee"); err != nil {
			return err
		}
	}
	return a.change(&masterpb.Call{
		Type: masterpb.Call_UPDATE_QUOTA.Enum(),
		UpdateQuota: &masterpb.Call_UpdateQuota{
			Force:        force,
			QuotaConfigs: []masterpb.QuotaConfig{{Role: pos[0], Guarantees: guarantees, Limits: limits}},
		},
	}, fmt.Sprintf("quota of %s: guarantees %s, limits %s", pos[0], scalars(guarantees), scalars(limits)))
}

func (a *app) quotaRemove(args []string) error {
	pos, err := a.parse(a.flagSet("quota remove"), args, 1, 1, "ROLE")
	if err != nil {
		return err
	}
	// An UPDATE_QUOTA with neither guarantees nor limits is the default
	// quota: none.
	return a.change(&masterpb.Call{
		Type:        masterpb.Call_UPDATE_QUOTA.Enum(),
		UpdateQuota: &masterpb.Call_UpdateQuota{QuotaConfigs: []masterpb.QuotaConfig{{Role: pos[0]}}},
	}, "quota of "+pos[0]+" removed")
}

// change makes a call that changes the cluster and says so (nothing with
// -json: the exit status says it).
func (a *app) change(call *masterpb.Call, done string) error {
	if _, err := a.call(call); err != nil {
		return err
	}
	if !a.opts.json {
		fmt.Fprintln(a.stdout, done)
	}
	return nil
}

func (a *app) weights(args []string) error {
	if len(args) > 0 && args[0] == "set" {
		return a.weightsSet(args[1:])
	}
	if _, err := a.parse(a.flagSet("weights"), args, 0, 0, "[set ROLE=W ...]"); err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_WEIGHTS)
	if err != nil {
		return err
	}
	ws := r.GetGetWeights().GetWeightInfos()
	sort.Slice(ws, func(i, j int) bool { return ws[i].GetRole() < ws[j].GetRole() })
	if a.opts.json {
		msgs := make([]proto.Message, len(ws))
		for i := range ws {
			msgs[i] = &ws[i]
		}
		return a.printJSON(true, msgs...)
	}
	rows := [][]string{{"ROLE", "WEIGHT"}}
	for _, w := range ws {
		rows = append(rows, []string{w.GetRole(), num(w.Weight)})
	}
	a.table(rows)
	return nil
}

func (a *app) weightsSet(args []string) error {
	pos, err := a.parse(a.flagSet("weights set"), args, 1, -1, "ROLE=W ...")
	if err != nil {
		return err
	}
	infos := make([]mesospb.WeightInfo, 0, len(pos))
	for _, p := range pos {
		role, w, ok := strings.Cut(p, "=")
		f, err := strconv.ParseFloat(w, 64)
		if !ok || role == "" || err != nil || f <= 0 {
			return usagef("weights set: %q: want ROLE=WEIGHT with a positive weight", p)
		}
		infos = append(infos, mesospb.WeightInfo{Role: &role, Weight: f})
	}
	return a.change(&masterpb.Call{
		Type:          masterpb.Call_UPDATE_WEIGHTS.Enum(),
		UpdateWeights: &masterpb.Call_UpdateWeights{WeightInfos: infos},
	}, "weights set: "+strings.Join(pos, " "))
}

func (a *app) state(args []string) error {
	if _, err := a.parse(a.flagSet("state"), args, 0, 0, ""); err != nil {
		return err
	}
	r, err := a.get(masterpb.Call_GET_STATE)
	if err != nil {
		return err
	}
	return a.printJSON(false, r.GetGetState())
}

func quotaConfigs(r *masterpb.Response) []masterpb.QuotaConfig {
	if q := r.GetGetQuota(); q != nil {
		return q.Status.Configs
	}
	return nil
}
