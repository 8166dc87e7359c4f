package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/httpapi"
)

// operatorCall answers one call of the agent operator API.
func (a *Agent) operatorCall(ctx context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	switch call.GetType() {
	case agentpb.Call_GET_HEALTH:
		if _, err := request(a, ctx, func() bool { return true }); err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_HEALTH.Enum(), GetHealth: &agentpb.Response_GetHealth{Healthy: true}}, nil
	case agentpb.Call_GET_FLAGS:
		return &agentpb.Response{Type: agentpb.Response_GET_FLAGS.Enum(), GetFlags: &agentpb.Response_GetFlags{Flags: a.flags()}}, nil
	case agentpb.Call_GET_VERSION:
		return &agentpb.Response{Type: agentpb.Response_GET_VERSION.Enum(),
			GetVersion: &agentpb.Response_GetVersion{VersionInfo: mesospb.VersionInfo{Version: a.cfg.Version}}}, nil
	case agentpb.Call_GET_METRICS:
		m, err := a.metrics(ctx)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_METRICS.Enum(), GetMetrics: &agentpb.Response_GetMetrics{Metrics: m.mesos()}}, nil
	case agentpb.Call_GET_STATE:
		s, err := request(a, ctx, a.getState)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_STATE.Enum(), GetState: s}, nil
	case agentpb.Call_GET_CONTAINERS:
		cs, err := a.getContainers(ctx, call.GetGetContainers())
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_CONTAINERS.Enum(), GetContainers: cs}, nil
	case agentpb.Call_GET_FRAMEWORKS:
		s, err := request(a, ctx, a.getFrameworks)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_FRAMEWORKS.Enum(), GetFrameworks: s}, nil
	case agentpb.Call_GET_EXECUTORS:
		s, err := request(a, ctx, a.getExecutors)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_EXECUTORS.Enum(), GetExecutors: s}, nil
	case agentpb.Call_GET_TASKS:
		s, err := request(a, ctx, a.getTasks)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_TASKS.Enum(), GetTasks: s}, nil
	case agentpb.Call_LIST_FILES:
		return a.listFiles(ctx, call) // files.go
	case agentpb.Call_READ_FILE:
		return a.readFile(ctx, call)
	case agentpb.Call_GET_AGENT:
		info, err := request(a, ctx, a.agentInfo)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{Type: agentpb.Response_GET_AGENT.Enum(), GetAgent: &agentpb.Response_GetAgent{AgentInfo: &info}}, nil
	}
	if resp, ok, err := a.moreOperatorCalls(ctx, call); ok {
		return resp, err
	}
	if _, known := agentpb.Call_Type_name[int32(call.GetType())]; !known || call.GetType() == agentpb.Call_UNKNOWN {
		return nil, httpapi.Errorf(http.StatusBadRequest, "expecting 'type' to be present and known, got %s", call.GetType())
	}
	return nil, httpapi.Errorf(http.StatusNotImplemented, "%s is not implemented by this agent", call.GetType())
}

// flags are the agent's configuration under the names of the Mesos agent's
// flags, where it has them.
func (a *Agent) flags() []mesospb.Flag {
	c := &a.cfg
	kv := [][2]string{
		{"work_dir", c.WorkDir},
		{"resources", c.Resources},
		{"attributes", c.Attributes},
		{"hostname", c.Hostname},
		{"advertise_endpoint", c.Endpoint},
		{"executor_shutdown_grace_period", mesosDuration(c.ExecutorShutdownGracePeriod)},
		{"executor_registration_timeout", mesosDuration(c.ExecutorRegistrationTimeout)},
		{"executor_reregistration_timeout", mesosDuration(c.ExecutorReregistrationTimeout)},
		{"executor_reregistration_retry_interval", mesosDuration(c.ExecutorSubscriptionBackoffMax)},
		{"executor_heartbeat_interval", mesosDuration(c.ExecutorHeartbeatInterval)},
		{"registration_backoff_factor", mesosDuration(c.RegistrationBackoff)},
		{"registration_backoff_max", mesosDuration(c.RegistrationBackoffMax)},
		{"status_update_retry_interval_min", mesosDuration(c.StatusUpdateRetry)},
		{"status_update_retry_interval_max", mesosDuration(c.StatusUpdateRetryMax)},
		{"recovery_timeout", mesosDuration(c.ExecutorRecoveryTimeout)},
		{"default_kill_grace_period", mesosDuration(c.DefaultKillGracePeriod)},
		{"max_completed_tasks", strconv.Itoa(c.MaxCompletedTasks)},
		{"max_completed_executors_per_framework", strconv.Itoa(c.MaxCompletedExecutorsPerFramework)},
		{"max_completed_frameworks", strconv.Itoa(c.MaxCompletedFrameworks)},
		{"executor_stream_buffer", strconv.Itoa(c.ExecutorStreamBuffer)},
		{"gc_delay", mesosDuration(c.GCDelay)},
		{"gc_disk_headroom", strconv.FormatFloat(c.GCDiskHeadroom, 'g', -1, 64)},
		{"disk_watch_interval", mesosDuration(c.DiskWatchInterval)},
		{"command_executor_mode", c.CommandExecutorMode.String()},
		{"command_executor_path", c.CommandExecutorPath},
		{"in_process_executors", strings.Join(sortedKeys(c.Executors), ",")},
		{"checkpoint", "true"},
		{"authenticate_http_readonly", strconv.FormatBool(c.AuthenticateHTTPReadOnly)},
		{"authenticate_http_readwrite", strconv.FormatBool(c.AuthenticateHTTPReadWrite)},
		{"authenticate_http_executors", strconv.FormatBool(c.AuthenticateHTTPExecutors)},
	}
	out := make([]mesospb.Flag, 0, len(kv))
	for _, f := range kv {
		out = append(out, mesospb.Flag{Name: f[0], Value: ptr(f[1])})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// getState is GET_STATE; it runs on the loop.
func (a *Agent) getState() *agentpb.Response_GetState {
	return &agentpb.Response_GetState{GetTasks: a.getTasks(), GetExecutors: a.getExecutors(), GetFrameworks: a.getFrameworks()}
}

// getFrameworks lists the frameworks with executors or tasks here; the
// agent keeps no completed frameworks.
func (a *Agent) getFrameworks() *agentpb.Response_GetFrameworks {
	out := &agentpb.Response_GetFrameworks{}
	for _, fw := range a.tables.Frameworks() {
		out.Frameworks = append(out.Frameworks, agentpb.Response_GetFrameworks_Framework{FrameworkInfo: *fw.Info()})
	}
	for _, c := range a.tables.CompletedFrameworks() {
		out.CompletedFrameworks = append(out.CompletedFrameworks, agentpb.Response_GetFrameworks_Framework{FrameworkInfo: c.Info})
	}
	return out
}

// getExecutors lists the executors; those terminated, kept while their
// tasks' last updates wait for acknowledgement, are the completed ones,
// with the runs the agent has forgotten (its history).
func (a *Agent) getExecutors() *agentpb.Response_GetExecutors {
	out := &agentpb.Response_GetExecutors{}
	completed := func(execs []completedExecutor) {
		for _, c := range execs {
			out.CompletedExecutors = append(out.CompletedExecutors, agentpb.Response_GetExecutors_Executor{ExecutorInfo: c.Info})
		}
	}
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			x := agentpb.Response_GetExecutors_Executor{ExecutorInfo: *e.Info()}
			if e.State() == execTerminated {
				out.CompletedExecutors = append(out.CompletedExecutors, x)
			} else {
				out.Executors = append(out.Executors, x)
			}
		}
		completed(a.tables.CompletedRuns(fw.ID()))
	}
	for _, c := range a.tables.CompletedFrameworks() {
		completed(c.Runs)
	}
	return out
}

// getTasks sorts the tasks as Mesos does: queued for an executor that has
// not subscribed, launched, terminal with an update unacknowledged, and
// completed.
func (a *Agent) getTasks() *agentpb.Response_GetTasks {
	out := &agentpb.Response_GetTasks{}
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			for _, t := range e.Tasks() {
				switch {
				case terminal(t.State()):
					out.TerminatedTasks = append(out.TerminatedTasks, t.Proto())
				case t.Queued():
					out.QueuedTasks = append(out.QueuedTasks, t.Proto())
				default:
					out.LaunchedTasks = append(out.LaunchedTasks, t.Proto())
				}
			}
		}
	}
	out.CompletedTasks = append([]mesospb.Task(nil), a.tables.CompletedTasks()...)
	return out
}

// runRef is an executor run as GET_CONTAINERS shows it.
type runRef struct {
	fw, exec, name, run string
}

// getContainers is GET_CONTAINERS: one entry per executor run with
// containers (its own, for an executor process, and its tasks'), with the
// resources they use together; with show_nested, the task containers too,
// nested under their run; with show_standalone, containers of no executor
// run. The containerizer's work is done off the loop.
func (a *Agent) getContainers(ctx context.Context, opts *agentpb.Call_GetContainers) (*agentpb.Response_GetContainers, error) {
	type snapshot struct {
		cont containerizer.Containerizer
		runs []runRef
	}
	snap, err := request(a, ctx, func() snapshot {
		s := snapshot{cont: a.cont}
		for _, fw := range a.tables.Frameworks() {
			for _, e := range fw.Runs() {
				if e.State() != execTerminated {
					s.runs = append(s.runs, runRef{fw: fw.ID(), exec: e.ID(), name: e.Info().GetName(), run: e.ContainerID()})
				}
			}
		}
		return s
	})
	if err != nil {
		return nil, err
	}
	ids, err := snap.cont.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	byRun := map[string][]string{}
	var standalone []string
	for _, id := range ids {
		run, _, _ := strings.Cut(id, ".")
		byRun[run] = append(byRun[run], id)
	}
	known := map[string]bool{}
	out := &agentpb.Response_GetContainers{}
	for _, r := range snap.runs {
		members := byRun[r.run]
		known[r.run] = true
		if len(members) == 0 {
			continue
		}
		var total *mesospb.ResourceStatistics
		var nested []agentpb.Response_GetContainers_Container
		for _, id := range members {
			stats := containerStats(ctx, snap.cont, id)
			total = addStats(total, stats)
			if id != r.run && opts.GetShowNested() {
				cid := mesospb.ContainerID{Value: strings.TrimPrefix(id, r.run+"."), Parent: &mesospb.ContainerID{Value: r.run}}
				nested = append(nested, agentpb.Response_GetContainers_Container{
					ContainerID:        cid,
					ContainerStatus:    &mesospb.ContainerStatus{ContainerID: &cid},
					ResourceStatistics: stats,
				})
			}
		}
		cid := mesospb.ContainerID{Value: r.run}
		c := agentpb.Response_GetContainers_Container{
			FrameworkID:        &mesospb.FrameworkID{Value: r.fw},
			ExecutorID:         &mesospb.ExecutorID{Value: r.exec},
			ContainerID:        cid,
			ContainerStatus:    &mesospb.ContainerStatus{ContainerID: &cid},
			ResourceStatistics: total,
		}
		if r.name != "" {
			c.ExecutorName = ptr(r.name)
		}
		out.Containers = append(out.Containers, c)
		out.Containers = append(out.Containers, nested...)
	}
	if opts.GetShowStandalone() {
		for _, id := range ids {
			if run, _, _ := strings.Cut(id, "."); !known[run] {
				standalone = append(standalone, id)
			}
		}
		for _, id := range standalone {
			cid := mesospb.ContainerID{Value: id}
			out.Containers = append(out.Containers, agentpb.Response_GetContainers_Container{
				ContainerID:        cid,
				ContainerStatus:    &mesospb.ContainerStatus{ContainerID: &cid},
				ResourceStatistics: containerStats(ctx, snap.cont, id),
			})
		}
	}
	return out, nil
}

// containerStats samples a container's usage; nil when it cannot (it
// ended meanwhile).
func containerStats(ctx context.Context, cont containerizer.Containerizer, id string) *mesospb.ResourceStatistics {
	u, err := cont.Usage(ctx, id)
	if err != nil {
		return nil
	}
	s := &mesospb.ResourceStatistics{
		Timestamp:          float64(u.Timestamp.UnixNano()) / 1e9,
		Processes:          ptr(uint32(u.Processes)),
		Threads:            ptr(uint32(u.Threads)),
		CpusUserTimeSecs:   ptr(u.CPUUserSeconds),
		CpusSystemTimeSecs: ptr(u.CPUSystemSeconds),
		MemRssBytes:        ptr(u.RSSBytes),
	}
	if u.Limits.CPUs > 0 {
		s.CpusLimit = ptr(u.Limits.CPUs)
	}
	if u.Limits.MemoryBytes > 0 {
		s.MemLimitBytes = ptr(u.Limits.MemoryBytes)
	}
	if u.Limits.DiskBytes > 0 { // measured by containerizer.Disk (disk/du)
		s.DiskLimitBytes, s.DiskUsedBytes = ptr(u.Limits.DiskBytes), ptr(u.DiskUsedBytes)
	}
	// A containerizer with cgroups (the Linux one) knows more: CFS
	// periods and throttling, the memory breakdown, as Mesos reports them.
	if cs, ok := cont.(cgroupStats); ok {
		if st, err := cs.Stats(ctx, id); err == nil {
			st.Fill(s)
		}
	}
	return s
}

// cgroupStats is a containerizer that samples its containers' cgroups.
type cgroupStats interface {
	Stats(ctx context.Context, id string) (cgroups.Stats, error)
}

// addStats sums two samples (either may be nil).
func addStats(a, b *mesospb.ResourceStatistics) *mesospb.ResourceStatistics {
	switch {
	case b == nil:
		return a
	case a == nil:
		c := *b
		return &c
	}
	sumF := func(x, y *float64) *float64 {
		if x == nil && y == nil {
			return nil
		}
		var v float64
		if x != nil {
			v += *x
		}
		if y != nil {
			v += *y
		}
		return &v
	}
	sumU := func(x, y *uint64) *uint64 {
		if x == nil && y == nil {
			return nil
		}
		var v uint64
		if x != nil {
			v += *x
		}
		if y != nil {
			v += *y
		}
		return &v
	}
	sum32 := func(x, y *uint32) *uint32 {
		if x == nil && y == nil {
			return nil
		}
		var v uint32
		if x != nil {
			v += *x
		}
		if y != nil {
			v += *y
		}
		return &v
	}
	return &mesospb.ResourceStatistics{
		Timestamp:          max(a.Timestamp, b.Timestamp),
		Processes:          sum32(a.Processes, b.Processes),
		Threads:            sum32(a.Threads, b.Threads),
		CpusUserTimeSecs:   sumF(a.CpusUserTimeSecs, b.CpusUserTimeSecs),
		CpusSystemTimeSecs: sumF(a.CpusSystemTimeSecs, b.CpusSystemTimeSecs),
		CpusLimit:          sumF(a.CpusLimit, b.CpusLimit),
		MemRssBytes:        sumU(a.MemRssBytes, b.MemRssBytes),
		MemLimitBytes:      sumU(a.MemLimitBytes, b.MemLimitBytes),
	}
}

// agentMetrics are the counters of the agent since Run started; the loop
// owns them.
type agentMetrics struct {
	startedAt time.Time
	// terminal counts the tasks that reached each terminal state.
	terminal        map[mesospb.TaskState]uint64
	validUpdates    uint64 // executor status updates taken
	invalidUpdates  uint64 // executor status updates refused
	validMessages   uint64 // framework messages delivered to executors
	invalidMessages uint64 // framework messages dropped
	// executorsTerminated counts the executor runs that terminated
	// (slave/executors_terminated); see runTerminated.
	executorsTerminated uint64
}

// metricsSnapshot is what GET_METRICS and /metrics report.
type metricsSnapshot struct {
	registered     bool
	uptime         time.Duration
	frameworks     int
	tasks          map[mesospb.TaskState]int // tasks the agent knows now, by state
	terminal       map[mesospb.TaskState]uint64
	executors      map[string]int // by state
	containers     int
	pendingUpdates int
	counters       agentMetrics
	total, used    map[string]float64 // cpus, mem, disk
	gc             gcMetrics          // the sandbox garbage collector's counters
	gcPending      int                // paths scheduled for garbage collection
	// dirMaxAge is how long sandboxes may be kept at the disk's usage now
	// (Mesos's executor_directory_max_allowed_age_secs); nil when the
	// usage cannot be measured.
	dirMaxAge *time.Duration
}

// metrics takes a snapshot: the loop's state, then the containerizer's.
func (a *Agent) metrics(ctx context.Context) (*metricsSnapshot, error) {
	type loopPart struct {
		m    *metricsSnapshot
		cont containerizer.Containerizer
	}
	p, err := request(a, ctx, func() loopPart {
		m := &metricsSnapshot{
			registered: a.isRegistered(),
			uptime:     a.clk.Now().Sub(a.met.startedAt),
			frameworks: a.tables.Len(),
			tasks:      map[mesospb.TaskState]int{},
			terminal:   map[mesospb.TaskState]uint64{},
			executors:  map[string]int{},
			counters:   a.met,
			total:      map[string]float64{},
			used:       map[string]float64{},
		}
		for k, v := range a.met.terminal {
			m.terminal[k] = v
		}
		addScalars(m.total, a.resources.ToProto())
		a.tables.EachRun(func(e *agentcore.Run) {
			m.executors[e.State().String()]++
			if e.State() != execTerminated {
				// As Mesos's Executor::allocatedResources: the
				// executor's own and its live tasks'.
				addScalars(m.used, e.Info().Resources)
			}
			e.EachTask(func(t *taskRec) {
				m.tasks[t.State()]++
				if !terminal(t.State()) {
					addScalars(m.used, t.Info().Resources)
				}
			})
		})
		m.pendingUpdates = a.updates.Pending()
		m.gc, m.gcPending = a.gc.met, a.gc.q.len()
		if usage, err := a.cfg.DiskUsage(a.cfg.WorkDir); err == nil {
			m.dirMaxAge = ptr(a.gc.q.maxAge(usage))
		}
		return loopPart{m, a.cont}
	})
	if err != nil {
		return nil, err
	}
	if ids, err := p.cont.Containers(ctx); err == nil {
		p.m.containers = len(ids)
	} else if !errors.Is(err, containerizer.ErrClosed) {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	return p.m, nil
}

// addScalars adds the scalar resources of rs to sums by name, the
// revocable ones under <name>_revocable as Mesos's metrics name them.
func addScalars(sums map[string]float64, rs []mesospb.Resource) {
	for _, r := range rs {
		if r.Scalar == nil {
			continue
		}
		name := r.Name
		if r.Revocable != nil {
			name += "_revocable"
		}
		sums[name] += r.Scalar.Value
	}
}

// taskStates are the states reported, in Mesos's order.
var taskStates = []mesospb.TaskState{
	mesospb.TASK_STAGING, mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_KILLING,
	mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR,
	mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR,
}

var executorStates = []string{"REGISTERING", "RUNNING", "TERMINATING", "TERMINATED"}

// mesos is the snapshot under the Mesos agent's metric names (tasks_* of
// a terminal state count the tasks that reached it since the agent
// started, the others are the tasks in that state now), with Apron's own
// under slave/ too.
func (m *metricsSnapshot) mesos() []mesospb.Metric {
	var out []mesospb.Metric
	add := func(name string, v float64) { out = append(out, mesospb.Metric{Name: name, Value: ptr(v)}) }
	b := 0.0
	if m.registered {
		b = 1
	}
	add("slave/registered", b)
	add("slave/uptime_secs", m.uptime.Seconds())
	add("slave/frameworks_active", float64(m.frameworks))
	for _, s := range taskStates {
		name := "slave/tasks_" + strings.ToLower(strings.TrimPrefix(s.String(), "TASK_"))
		if terminal(s) {
			add(name, float64(m.terminal[s]))
		} else {
			add(name, float64(m.tasks[s]))
		}
	}
	for _, s := range executorStates[:3] {
		add("slave/executors_"+strings.ToLower(s), float64(m.executors[s]))
	}
	// Mesos's executors_terminated counts the runs that terminated since
	// the agent started; Apron preempts no executor.
	add("slave/executors_terminated", float64(m.counters.executorsTerminated))
	add("slave/executors_preempted", 0)
	add("slave/containers", float64(m.containers))
	add("slave/status_updates_pending", float64(m.pendingUpdates))
	add("slave/valid_status_updates", float64(m.counters.validUpdates))
	add("slave/invalid_status_updates", float64(m.counters.invalidUpdates))
	add("slave/valid_framework_messages", float64(m.counters.validMessages))
	add("slave/invalid_framework_messages", float64(m.counters.invalidMessages))
	// As Mesos (src/slave/metrics.cpp): total, used and their ratio (0
	// when there is none) of cpus, gpus, mem and disk, and of their
	// revocable kinds.
	for _, r := range []string{"cpus", "gpus", "mem", "disk", "cpus_revocable", "gpus_revocable", "mem_revocable", "disk_revocable"} {
		add("slave/"+r+"_total", m.total[r])
		add("slave/"+r+"_used", m.used[r])
		pct := 0.0
		if m.total[r] > 0 {
			pct = m.used[r] / m.total[r]
		}
		add("slave/"+r+"_percent", pct)
	}
	if m.dirMaxAge != nil {
		add("slave/executor_directory_max_allowed_age_secs", m.dirMaxAge.Seconds())
	}
	add("gc/path_removals_pending", float64(m.gcPending))
	add("gc/path_removals_succeeded", float64(m.gc.removed))
	add("gc/path_removals_failed", float64(m.gc.failed))
	return out
}
