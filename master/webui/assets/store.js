// The cluster as the UI knows it: agents, frameworks and tasks in Maps
// keyed by ID, built from the operator API's SUBSCRIBED event and kept up
// to date by the events that follow, one at a time, with every aggregate
// (tasks by state, resources used per agent, per framework and in all)
// updated incrementally, so an event costs the same at 100,000 tasks as
// at ten.

/** Every task state, in the order the UI lists them. */
export const STATES = [
  "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED", "TASK_FAILED",
  "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
  "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
];

/** The states a task never leaves (Mesos's protobuf::isTerminalState). */
/** HISTORY is how many of a task's latest status updates the store keeps. */
export const HISTORY = 16;

/** statusEntry is what the task page shows of one status update. */
function statusEntry(st) {
  return { state: st.state, time: st.timestamp || 0, source: st.source || "", reason: st.reason || "", message: st.message || "", healthy: st.healthy };
}

export const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);

/** The resources the UI adds up. */
export const KINDS = ["cpus", "mem", "disk", "gpus"];

/** holds says whether a task in state holds its resources on its agent. */
export function holds(state) {
  return !TERMINAL.has(state) && state !== "TASK_UNREACHABLE" && state !== "TASK_UNKNOWN";
}

/** scalars sums a resource list's scalar resources by name (only KINDS). */
export function scalars(resources) {
  const out = { cpus: 0, mem: 0, disk: 0, gpus: 0 };
  for (const r of resources || []) {
    if (r.type === "SCALAR" && r.name in out) out[r.name] += r.scalar?.value || 0;
  }
  return out;
}

function zero() { return { cpus: 0, mem: 0, disk: 0, gpus: 0 }; }

function addTo(acc, res, sign) {
  for (const k of KINDS) acc[k] += sign * res[k];
}

/** taskKey identifies a task: task IDs are unique within a framework only. */
export function taskKey(fw, id) { return fw + "\u0000" + id; }

/** Store is the cluster's state; see the file's comment. */
export class Store {
  /** maxDone bounds how many ended tasks are kept (the oldest go first). */
  constructor({ maxDone = 50000 } = {}) {
    this.maxDone = maxDone;
    this.listeners = new Set();
    this.reset();
  }

  reset() {
    this.agents = new Map();      // agent ID -> {id, raw, total, used, tasks}
    this.frameworks = new Map();  // framework ID -> {id, raw, info, used, tasks, active}
    this.doneFrameworks = new Map();
    this.tasks = new Map();       // taskKey -> task record (see taskRecord)
    this.done = new Set();        // keys of ended tasks, oldest first
    this.byState = new Map(STATES.map((s) => [s, 0]));
    this.total = zero();          // all agents' scalars
    this.used = zero();           // what tasks hold
    this.launched = 0;            // tasks added since the page loaded
    this.ended = 0;               // tasks that reached a terminal state
    this.failed = 0;              // ... of which FAILED, ERROR, LOST, DROPPED
    this.version = 0;
    this.synced = false;
  }

  onChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  changed() {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  /** apply takes one operator API event. */
  apply(ev) {
    switch (ev.type) {
      case "SUBSCRIBED": this.load(ev.subscribed?.get_state || {}); break;
      case "TASK_ADDED": this.putTask(ev.task_added.task, true); break;
      case "TASK_UPDATED": this.updateTask(ev.task_updated); break;
      case "AGENT_ADDED": this.putAgent(ev.agent_added.agent); break;
      case "AGENT_REMOVED": this.removeAgent(ev.agent_removed.agent_id.value); break;
      case "FRAMEWORK_ADDED":
      case "FRAMEWORK_UPDATED": this.putFramework((ev.framework_added || ev.framework_updated).framework); break;
      case "FRAMEWORK_REMOVED": this.removeFramework(ev.framework_removed.framework_info); break;
      default: return;
    }
    this.changed();
  }

  /** load replaces everything with a GET_STATE answer. */
  load(st) {
    const { launched, ended, failed } = this;
    this.reset();
    Object.assign(this, { launched, ended, failed });
    for (const a of st.get_agents?.agents || []) this.putAgent(a);
    for (const f of st.get_frameworks?.frameworks || []) this.putFramework(f);
    for (const f of st.get_frameworks?.completed_frameworks || []) {
      this.doneFrameworks.set(f.framework_info.id.value, { id: f.framework_info.id.value, raw: f, info: f.framework_info });
    }
    const t = st.get_tasks || {};
    for (const list of [t.completed_tasks, t.unreachable_tasks, t.orphan_tasks, t.pending_tasks, t.tasks]) {
      for (const task of list || []) this.putTask(task, false);
    }
    this.synced = true;
  }

  putAgent(raw) {
    const id = raw.agent_info.id.value;
    let a = this.agents.get(id);
    if (a) addTo(this.total, a.total, -1);
    else {
      a = { id, used: zero(), tasks: 0 };
      this.agents.set(id, a);
    }
    a.raw = raw;
    a.hostname = raw.agent_info.hostname;
    a.total = scalars(raw.total_resources || raw.agent_info.resources);
    addTo(this.total, a.total, 1);
  }

  removeAgent(id) {
    const a = this.agents.get(id);
    if (!a) return;
    addTo(this.total, a.total, -1);
    this.agents.delete(id);
  }

  /** mergeAgents takes a GET_AGENTS answer: what changes without an event (reservations, draining). */
  mergeAgents(resp) {
    for (const raw of resp?.get_agents?.agents || []) {
      const a = this.agents.get(raw.agent_info.id.value);
      if (a) a.raw = raw;
    }
    this.changed();
  }

  putFramework(raw) {
    const id = raw.framework_info.id.value;
    let f = this.frameworks.get(id);
    if (!f) {
      f = { id, used: zero(), tasks: 0 };
      this.frameworks.set(id, f);
    }
    f.raw = raw;
    f.info = raw.framework_info;
  }

  removeFramework(info) {
    const id = info.id.value;
    const f = this.frameworks.get(id) || { id, used: zero(), tasks: 0 };
    this.frameworks.delete(id);
    f.info = info;
    f.removed = true;
    this.doneFrameworks.set(id, f);
  }

  /** mergeFrameworks takes a GET_FRAMEWORKS answer: offers have no event. */
  mergeFrameworks(resp) {
    for (const raw of resp?.get_frameworks?.frameworks || []) {
      const f = this.frameworks.get(raw.framework_info.id.value);
      if (f) f.raw = raw;
    }
    this.changed();
  }

  putTask(raw, isNew) {
    const fw = raw.framework_id.value;
    const key = taskKey(fw, raw.task_id.value);
    const last = raw.statuses?.length ? raw.statuses[raw.statuses.length - 1] : null;
    const res = scalars(raw.resources);
    const old = this.tasks.get(key);
    if (old) this.account(old, -1);
    const t = {
      key, fw, id: raw.task_id.value, name: raw.name || "",
      text: (raw.task_id.value + "\u0000" + (raw.name || "")).toLowerCase(), // what a search matches
      agent: raw.agent_id?.value || "",
      executor: raw.executor_id?.value || raw.task_id.value,
      state: raw.state || "TASK_STAGING",
      role: raw.resources?.find((r) => r.allocation_info?.role)?.allocation_info.role || raw.role || "",
      res,
      updated: last?.timestamp || 0,
      message: last?.message || "", reason: last?.reason || "", source: last?.source || "",
      history: (raw.statuses || []).slice(-HISTORY).map(statusEntry),
    };
    this.tasks.set(key, t);
    this.account(t, 1);
    if (isNew && !old) this.launched++;
    return t;
  }

  updateTask(u) {
    const fw = u.framework_id.value;
    const st = u.status;
    const key = taskKey(fw, st.task_id.value);
    let t = this.tasks.get(key);
    if (!t) {
      t = this.putTask({ framework_id: u.framework_id, task_id: st.task_id, agent_id: st.agent_id, state: "TASK_STAGING" }, true);
    }
    const state = u.state || st.state;
    const wasTerminal = TERMINAL.has(t.state);
    this.account(t, -1);
    t.state = state;
    t.updated = st.timestamp || t.updated;
    t.message = st.message || "";
    t.reason = st.reason || "";
    t.source = st.source || "";
    if (st.agent_id?.value) t.agent = st.agent_id.value;
    t.history.push(statusEntry({ ...st, state }));
    if (t.history.length > HISTORY) t.history.shift();
    this.account(t, 1);
    if (!wasTerminal && TERMINAL.has(state)) {
      this.ended++;
      if (state !== "TASK_FINISHED" && state !== "TASK_KILLED") this.failed++;
    }
  }

  /** account adds (sign 1) or removes (-1) a task from every aggregate. */
  account(t, sign) {
    this.byState.set(t.state, (this.byState.get(t.state) || 0) + sign);
    const a = this.agents.get(t.agent);
    const f = this.frameworks.get(t.fw);
    if (holds(t.state)) {
      addTo(this.used, t.res, sign);
      if (a) { addTo(a.used, t.res, sign); a.tasks += sign; }
      if (f) { addTo(f.used, t.res, sign); f.tasks += sign; }
    }
    if (TERMINAL.has(t.state)) {
      if (sign > 0) {
        this.done.add(t.key);
        this.trim();
      } else this.done.delete(t.key);
    }
  }

  /** trim forgets the oldest ended tasks beyond maxDone. */
  trim() {
    while (this.done.size > this.maxDone) {
      const key = this.done.values().next().value;
      this.done.delete(key);
      const t = this.tasks.get(key);
      if (t) {
        this.byState.set(t.state, this.byState.get(t.state) - 1);
        this.tasks.delete(key);
      }
    }
  }

  /** activeTasks counts the tasks that hold resources. */
  activeTasks() {
    let n = 0;
    for (const [s, c] of this.byState) if (holds(s)) n += c;
    return n;
  }
}
