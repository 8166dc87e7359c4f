package master_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

// IDs Mesos's common::validation::validateID refuses, and some it takes.
var (
	badIDs = []string{
		"", ".", "..", "../etc", "a/b", `a\b`, "a\nb", "a\tb", "a\x00b", "a\x7fb",
		strings.Repeat("x", 256),
	}
	goodIDs = []string{"a b", "...", "x.y-z_1", "ünïcode", strings.Repeat("x", 255)}
)

func subscribeWithID(h *harness, info mesospb.FrameworkInfo, id string) error {
	info.ID = &mesospb.FrameworkID{Value: id}
	_, err := h.sm.SubscribeScheduler(&schedulerpb.Call{
		Type:        schedulerpb.Call_SUBSCRIBE.Enum(),
		FrameworkID: info.ID,
		Subscribe:   &schedulerpb.Call_Subscribe{FrameworkInfo: info},
	})
	h.collect()
	return err
}

func TestSubscribeValidatesFrameworkID(t *testing.T) {
	h := newHarness(t, master.Config{})
	for _, id := range badIDs[1:] { // an empty ID asks for a new one
		err := subscribeWithID(h, frameworkInfo("f"), id)
		assert.ErrorIs(t, err, master.ErrInvalidCall, "%q", id)
	}
	assert.Empty(t, h.sm.State().GetFrameworks.Frameworks, "nothing kept")
	for _, id := range goodIDs {
		assert.NoError(t, subscribeWithID(h, frameworkInfo("f"), id), "%q", id)
	}
}

// Each part of a FrameworkInfo the master keeps is bounded; a SUBSCRIBE
// over a bound is refused whole and leaves nothing behind.
func TestSubscribeBoundsFrameworkInfo(t *testing.T) {
	big := strings.Repeat("n", 7<<20)
	labels := func(n int, v string) *mesospb.Labels {
		ls := &mesospb.Labels{}
		for i := 0; i < n; i++ {
			ls.Labels = append(ls.Labels, mesospb.Label{Key: "k", Value: ptr(v)})
		}
		return ls
	}
	multi := func(roles ...string) mesospb.FrameworkInfo {
		info := frameworkInfo("m")
		info.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}
		info.Roles = roles
		return info
	}
	manyRoles := make([]string, 1025)
	for i := range manyRoles {
		manyRoles[i] = "r" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
	}
	cases := map[string]func(*mesospb.FrameworkInfo){
		"name":         func(i *mesospb.FrameworkInfo) { i.Name = big },
		"user":         func(i *mesospb.FrameworkInfo) { i.User = strings.Repeat("u", 5000) },
		"principal":    func(i *mesospb.FrameworkInfo) { i.Principal = ptr(strings.Repeat("p", 5000)) },
		"hostname":     func(i *mesospb.FrameworkInfo) { i.Hostname = ptr(strings.Repeat("h", 5000)) },
		"webui_url":    func(i *mesospb.FrameworkInfo) { i.WebuiURL = ptr("http://" + strings.Repeat("w", 5000)) },
		"labels":       func(i *mesospb.FrameworkInfo) { i.Labels = labels(257, "v") },
		"label value":  func(i *mesospb.FrameworkInfo) { i.Labels = labels(1, big) },
		"roles":        func(i *mesospb.FrameworkInfo) { *i = multi(manyRoles...) },
		"role":         func(i *mesospb.FrameworkInfo) { *i = multi("ok", strings.Repeat("r", 5000)) },
		"capabilities": func(i *mesospb.FrameworkInfo) { i.Capabilities = make([]mesospb.FrameworkInfo_Capability, 65) },
		"whole":        func(i *mesospb.FrameworkInfo) { i.Labels = labels(200, strings.Repeat("v", 400)) },
		"unknown":      func(i *mesospb.FrameworkInfo) { i.XXX_unrecognized = []byte(big) },
	}
	h := newHarness(t, master.Config{})
	for name, mutate := range cases {
		info := frameworkInfo("f")
		mutate(&info)
		_, err := h.sm.SubscribeScheduler(&schedulerpb.Call{
			Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
			Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: info},
		})
		h.collect()
		require.ErrorIs(t, err, master.ErrInvalidCall, name)
		assert.Less(t, len(err.Error()), 300, "%s: the error does not quote what was sent", name)
	}
	assert.Empty(t, h.sm.State().GetFrameworks.Frameworks, "nothing kept")

	// Within the bounds: accepted.
	info := multi(manyRoles[:1024]...)
	info.Labels = labels(256, strings.Repeat("v", 50))
	h.subscribe(info)

	// UPDATE_FRAMEWORK is bounded the same way, and changes nothing.
	fs, fid := h.subscribe(frameworkInfo("small"))
	up := frameworkInfo(big)
	up.ID = &mesospb.FrameworkID{Value: fid}
	err := h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &schedulerpb.Call_UpdateFramework{FrameworkInfo: up}})
	require.ErrorIs(t, err, master.ErrInvalidCall)
	for _, f := range h.sm.State().GetFrameworks.Frameworks {
		assert.Less(t, len(f.FrameworkInfo.Name), 100)
	}
}

// Over HTTP a SUBSCRIBE with a 7 MB name (under the 8 MB body bound) or
// an ID with "../" is a 400 that says why.
func TestSubscribeBoundsOverHTTP(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	info := frameworkInfo(strings.Repeat("n", 7<<20))
	resp := h.postCall("/api/v1/scheduler", codec.Protobuf, "", subscribeCall(info))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "framework_info.name is 7340032 bytes; at most 4096 are allowed")

	info = frameworkInfo("f")
	info.ID = &mesospb.FrameworkID{Value: "../../etc"}
	resp = h.postCall("/api/v1/scheduler", codec.JSON, "", subscribeCall(info))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "invalid characters")
}

// Task and executor IDs follow Mesos's validateID (a space is allowed,
// as in Mesos); a task's labels and what the master keeps of it are
// bounded; its data is not kept, so it is not bounded but by the body.
func TestLaunchValidatesIDsAndBounds(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:64;mem:65536")
	fs, fid := h.subscribe(frameworkInfo("f"))
	launch := func(ti mesospb.TaskInfo) *mesospb.TaskStatus {
		t.Helper()
		h.advance(40 * time.Millisecond)
		offers := h.offers(fs)
		require.NotEmpty(t, offers)
		ti.AgentID = offers[0].AgentID
		require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), ti)))
		up := h.updates(fs)
		if len(up) == 0 {
			return &mesospb.TaskStatus{State: mesospb.TASK_STAGING.Enum()}
		}
		require.Len(t, up, 1)
		return &up[0]
	}
	for _, id := range badIDs {
		st := launch(commandTask(id, mesospb.Offer{}, "cpus:0.1;mem:1"))
		assert.Equal(t, mesospb.TASK_ERROR, st.GetState(), "task ID %q", id)
		assert.Equal(t, mesospb.TaskStatus_REASON_TASK_INVALID, st.GetReason())
		assert.Less(t, len(st.GetMessage()), 300)
	}
	for _, id := range goodIDs {
		assert.Equal(t, mesospb.TASK_STAGING, launch(commandTask(id, mesospb.Offer{}, "cpus:0.1;mem:1")).GetState(), "task ID %q", id)
	}
	for i, id := range []string{"../x", "a b"} {
		ti := commandTask("e"+string(rune('0'+i)), mesospb.Offer{}, "cpus:0.1;mem:1")
		ti.Command = nil
		ti.Executor = &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: id}, Command: &mesospb.CommandInfo{Value: ptr("x")}}
		want := mesospb.TASK_ERROR
		if id == "a b" {
			want = mesospb.TASK_STAGING
		}
		assert.Equal(t, want, launch(ti).GetState(), "executor ID %q", id)
	}

	ti := commandTask("labelled", mesospb.Offer{}, "cpus:0.1;mem:1")
	ti.Labels = &mesospb.Labels{}
	for i := 0; i < 257; i++ {
		ti.Labels.Labels = append(ti.Labels.Labels, mesospb.Label{Key: "k"})
	}
	assert.Equal(t, mesospb.TASK_ERROR, launch(ti).GetState(), "257 labels")
	ti = commandTask("big", mesospb.Offer{}, "cpus:0.1;mem:1")
	ti.Discovery = &mesospb.DiscoveryInfo{Visibility: mesospb.DiscoveryInfo_FRAMEWORK, Name: ptr(strings.Repeat("d", 70<<10))}
	assert.Equal(t, mesospb.TASK_ERROR, launch(ti).GetState(), "70 KiB kept")

	ti = commandTask("data", mesospb.Offer{}, "cpus:0.1;mem:1")
	ti.Data = []byte(strings.Repeat("d", 1<<20))
	ti.Command.Value = ptr(strings.Repeat("c", 1<<20))
	ti.Command.User = ptr("nobody")
	assert.Equal(t, mesospb.TASK_STAGING, launch(ti).GetState(), "data and command are not kept")
	for _, tk := range h.sm.State().GetTasks.Tasks {
		if tk.TaskID.Value == "data" {
			assert.Equal(t, "nobody", tk.GetUser())
		}
	}
}

// An agent's REREGISTER is checked as Mesos's
// validation::master::message::reregisterSlave checks its IDs.
func TestReregisterValidatesIDs(t *testing.T) {
	h := newHarness(t, master.Config{})
	rereg := func(agentID, taskID string) error {
		_, err := h.sm.ConnectAgent(&internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
			AgentInfo: mesospb.AgentInfo{Hostname: "h", ID: &mesospb.AgentID{Value: agentID}, Resources: mustProto("cpus:1;mem:64")},
			Tasks: []mesospb.Task{{Name: "t", TaskID: mesospb.TaskID{Value: taskID}, FrameworkID: mesospb.FrameworkID{Value: "fw"},
				AgentID: mesospb.AgentID{Value: agentID}, State: mesospb.TASK_RUNNING.Enum()}},
		}})
		h.collect()
		return err
	}
	assert.ErrorIs(t, rereg("../a", "t"), master.ErrInvalidCall)
	assert.ErrorIs(t, rereg("a", "t/../u"), master.ErrInvalidCall)
	assert.Empty(t, h.sm.State().GetAgents.Agents)
	assert.NoError(t, rereg("a", "t"))
}
