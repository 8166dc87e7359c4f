// The Apron web UI: a hash router, the pages, and the glue between the
// operator API's event stream and the Store. Pages re-render on a timer
// after the store changes (debounced: at most a few times a second, less
// often with a big cluster), and only their visible rows.

import { call, getJSON, filesURL, subscribe } from "./api.js";
import { Store, STATES, TERMINAL, KINDS, holds, taskKey } from "./store.js";
import { esc, num, mb, bytes, fmtRes, ago, when, nanos, bar, statePill, VTable, lineChart } from "./ui.js";

const store = new Store();
const main = document.getElementById("main");
const conn = document.getElementById("conn");
const footer = document.getElementById("footer");

// ---- live state ----------------------------------------------------------

/** samples are the overview chart's data: one every SAMPLE_MS, ten minutes' worth. */
const SAMPLE_MS = 2000;
const samples = [];
let lastCounts = null;
function sample() {
  const now = Date.now() / 1000;
  const c = { launched: store.launched, ended: store.ended, failed: store.failed, t: now };
  const dt = lastCounts ? now - lastCounts.t : 0;
  const rate = (k) => (dt > 0 ? Math.max(0, (c[k] - lastCounts[k]) / dt) : 0);
  const share = (k) => (store.total[k] > 0 ? (100 * store.used[k]) / store.total[k] : 0);
  samples.push({ t: now, cpus: share("cpus"), mem: share("mem"), disk: share("disk"),
    launched: rate("launched"), ended: rate("ended"), failed: rate("failed") });
  while (samples.length > 600000 / SAMPLE_MS) samples.shift();
  lastCounts = c;
  if (current?.onSample) current.onSample();
}

let master = null; // GET_MASTER's answer
async function loadMaster() {
  try {
    master = (await call("GET_MASTER")).get_master;
    const mi = master.master_info;
    footer.textContent = `Apron master ${mi.id} · ${mi.address?.hostname || mi.hostname}:${mi.port} · version ${mi.version} · started ${when(master.start_time)}`;
  } catch (e) {
    footer.textContent = String(e.message);
  }
}

function startStream() {
  subscribe({
    onEvent: (ev) => {
      store.apply(ev);
      if (ev.type === "SUBSCRIBED") {
        performance.mark("apron:subscribed-applied");
        loadMaster();
      }
    },
    onStatus: (s, err) => {
      conn.dataset.state = s;
      conn.textContent = s === "live" ? "live" : s;
      conn.title = err ? String(err.message || err) : "Event stream";
    },
  });
}

// ---- rendering -------------------------------------------------------------

let current = null;  // the mounted page: {update(), unmount(), onSample()}
let currentRoute = null;
let pending = 0;

/**
 * schedule re-renders the page soon: changes that come together make one
 * render, and the wait grows with what the last render cost (five times
 * it, from 100 ms to 2 s), so a page over 100,000 tasks spends at most a
 * fifth of the time rendering however fast events come. A hidden tab
 * renders when it is shown again.
 */
let renderCost = 0;
let stale = false;
function schedule() {
  if (pending) return;
  const delay = Math.min(2000, Math.max(100, 5 * renderCost));
  pending = setTimeout(() => {
    pending = 0;
    if (document.hidden) { stale = true; return; }
    render();
  }, delay);
}
function render() {
  const t0 = performance.now();
  if (current?.update) current.update();
  renderCost = performance.now() - t0;
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && stale) { stale = false; render(); }
});
store.onChange(schedule);

/** every runs fn now and every ms while the page that asked is mounted and the tab visible. */
function every(page, ms, fn) {
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (e) { page.error?.(e); }
    }
    if (!stopped) page.timer = setTimeout(run, ms);
  };
  run();
  const prev = page.unmount;
  page.unmount = () => { stopped = true; clearTimeout(page.timer); prev?.(); };
}

function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [p, q] = h.split("?");
  const parts = p.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(q || ""), key: p };
}

function navigate() {
  const r = route();
  const name = r.parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === name);
  document.getElementById("nav").classList.remove("open");
  if (current && currentRoute?.key === r.key && current.setParams) {
    current.setParams(r.params);
    return;
  }
  current?.unmount?.();
  main.innerHTML = "";
  const page = (PAGES[name] || notFound)(main, r.parts.slice(1), r.params);
  current = page;
  currentRoute = r;
  page.update?.();
}

const link = {
  agent: (id, text) => `<a href="#/agents/${encodeURIComponent(id)}">${esc(text ?? id)}</a>`,
  fw: (id, text) => `<a href="#/frameworks/${encodeURIComponent(id)}">${esc(text ?? id)}</a>`,
  task: (t, text) => `<a href="#/tasks/${encodeURIComponent(t.fw)}/${encodeURIComponent(t.id)}">${esc(text ?? t.id)}</a>`,
  sandbox: (t, text = "sandbox") => `<a href="#/sandbox?${new URLSearchParams({ agent: t.agent, path: sandboxPath(t) })}">${esc(text)}</a>`,
};

/** sandboxPath is the virtual path of a task's sandbox: its executor's latest run, as the agent attaches it. */
function sandboxPath(t) {
  return `/frameworks/${t.fw}/executors/${t.executor}/runs/latest`;
}

function agentName(id) {
  const a = store.agents.get(id);
  return a ? `${a.hostname}:${a.raw.agent_info.port ?? ""}` : id;
}
function fwName(id) {
  const f = store.frameworks.get(id) || store.doneFrameworks.get(id);
  return f?.info?.name || id;
}

function errorBox(el) {
  return (e) => { el.innerHTML = `<div class="error">${esc(e.message || e)}</div>`; };
}

function kv(pairs) {
  return `<dl class="kv">${pairs.filter((p) => p[1] !== undefined && p[1] !== "").map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

function resourceTable(rows) {
  // rows: [[label, scalars, total?]]
  return `<table class="plain"><tr><th></th>${KINDS.map((k) => `<th>${k}</th>`).join("")}</tr>${rows.map(([label, r, tot]) =>
    `<tr><td>${esc(label)}</td>${KINDS.map((k) => `<td>${fmtRes(k, r[k] || 0)}${tot ? bar(r[k] || 0, tot[k]) : ""}</td>`).join("")}</tr>`).join("")}</table>`;
}

function sumScalars(resources) {
  const out = { cpus: 0, mem: 0, disk: 0, gpus: 0 };
  for (const r of resources || []) if (r.type === "SCALAR" && r.name in out) out[r.name] += r.scalar?.value || 0;
  return out;
}

function resourceText(resources) {
  const parts = [];
  for (const r of resources || []) {
    let v = "";
    if (r.type === "SCALAR") v = fmtRes(r.name, r.scalar?.value || 0);
    else if (r.type === "RANGES") v = (r.ranges?.range || []).map((x) => `[${x.begin}-${x.end}]`).join(",");
    else if (r.type === "SET") v = "{" + (r.set?.item || []).join(",") + "}";
    const role = reservedRole(r);
    parts.push(`${r.name}${role ? "(" + role + ")" : ""}: ${v}`);
  }
  return parts.join("; ");
}

/** reservedRole is the role a resource is reserved for ("" when unreserved). */
function reservedRole(r) {
  if (r.reservations?.length) return r.reservations[r.reservations.length - 1].role || "";
  return r.role && r.role !== "*" ? r.role : "";
}

function attrText(attrs) {
  return (attrs || []).map((a) => {
    let v = a.text?.value ?? a.scalar?.value ?? "";
    if (a.type === "RANGES") v = (a.ranges?.range || []).map((x) => `[${x.begin}-${x.end}]`).join(",");
    if (a.type === "SET") v = "{" + (a.set?.item || []).join(",") + "}";
    return `${a.name}:${v}`;
  }).join(";");
}

function agentStatus(a) {
  const d = a.raw.drain_info?.state;
  if (d) return `<span class="pill warn">${esc(d.toLowerCase())}</span>`;
  if (a.raw.deactivated) return `<span class="pill warn">deactivated</span>`;
  return a.raw.active === false ? `<span class="pill bad">inactive</span>` : `<span class="pill ok">active</span>`;
}

// ---- pages -------------------------------------------------------------------

function notFound(el) {
  el.innerHTML = `<h1>Not found</h1><p><a href="#/">Back to the overview</a></p>`;
  return {};
}

function overview(el) {
  el.innerHTML = `
    <h1>Cluster <small id="ov-sub"></small></h1>
    <div class="grid stats">
      <div class="card"><h2>Agents</h2><div class="big" id="ov-agents">0</div><div class="muted" id="ov-agents-sub"></div></div>
      <div class="card"><h2>Frameworks</h2><div class="big" id="ov-frameworks">0</div><div class="muted" id="ov-frameworks-sub"></div></div>
      <div class="card"><h2>Active tasks</h2><div class="big" id="ov-active">0</div><div class="muted" id="ov-active-sub"></div></div>
      <div class="card"><h2>Offers outstanding</h2><div class="big" id="ov-offers">–</div><div class="muted">from GET_METRICS</div></div>
    </div>
    <div class="grid">
      <div class="card"><h2>Resources used / total</h2><div id="ov-res"></div></div>
      <div class="card"><h2>Tasks by state</h2><div class="states" id="ov-states"></div></div>
    </div>
    <div class="grid">
      <div class="card chart"><h2>Allocation</h2><div id="ov-alloc"></div></div>
      <div class="card chart"><h2>Task rates (per second)</h2><div id="ov-rates"></div></div>
    </div>`;
  const $ = (id) => el.querySelector("#" + id);
  const page = {
    update() {
      const agents = store.agents.size;
      let inactive = 0, draining = 0;
      for (const a of store.agents.values()) {
        if (a.raw.deactivated || a.raw.active === false) inactive++;
        if (a.raw.drain_info) draining++;
      }
      $("ov-agents").textContent = num(agents);
      $("ov-agents-sub").textContent = `${num(agents - inactive)} active · ${num(inactive)} deactivated · ${num(draining)} draining`;
      let active = 0;
      for (const f of store.frameworks.values()) if (f.raw.active) active++;
      $("ov-frameworks").textContent = num(store.frameworks.size);
      $("ov-frameworks-sub").textContent = `${num(active)} active · ${num(store.doneFrameworks.size)} completed`;
      $("ov-active").textContent = num(store.activeTasks());
      $("ov-active-sub").textContent = `${num(store.tasks.size)} known · ${num(store.launched)} launched since page load`;
      $("ov-res").innerHTML = KINDS.filter((k) => k !== "gpus" || store.total.gpus > 0).map((k) =>
        `<div class="res-row"><span>${k}</span><span>${fmtRes(k, store.used[k])} / ${fmtRes(k, store.total[k])}</span></div>${bar(store.used[k], store.total[k])}`).join("");
      $("ov-states").innerHTML = STATES.filter((s) => store.byState.get(s) || ["TASK_STAGING", "TASK_RUNNING", "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST"].includes(s))
        .map((s) => `<a href="#/tasks?state=${s}">${statePill(s)}</a><a href="#/tasks?state=${s}" data-count-state="${s}">${num(store.byState.get(s) || 0)}</a>`).join("");
      $("ov-sub").textContent = store.synced ? "" : "waiting for the event stream…";
    },
    onSample() {
      $("ov-alloc").innerHTML = lineChart(samples, [
        { key: "cpus", label: "cpus", color: "#3a6ea5" }, { key: "mem", label: "mem", color: "#2f855a" },
        { key: "disk", label: "disk", color: "#b7791f" }], { max: 100, unit: "%" });
      $("ov-rates").innerHTML = lineChart(samples, [
        { key: "launched", label: "launched", color: "#3a6ea5" }, { key: "ended", label: "ended", color: "#2f855a" },
        { key: "failed", label: "failed", color: "#c0392b" }], { unit: "/s" });
    },
  };
  page.onSample();
  let ticks = 0;
  every(page, 5000, async () => {
    const m = await call("GET_METRICS");
    const o = m.get_metrics.metrics.find((x) => x.name === "master/outstanding_offers");
    $("ov-offers").textContent = num(o?.value ?? 0);
    // Deactivation and draining have no event: read them every 30 s, on
    // clusters small enough for GET_AGENTS to be cheap (the maintenance
    // page reads them whatever the size).
    if (ticks++ % 6 === 0 && store.agents.size <= 2000) store.mergeAgents(await call("GET_AGENTS"));
  });
  return page;
}

function agentsPage(el, parts, params) {
  if (parts.length) return agentPage(el, parts[0]);
  el.innerHTML = `<h1>Agents</h1><div class="toolbar"><input type="search" id="agent-q" placeholder="Filter by host, ID or attribute" value="${esc(params.get("q") || "")}"></div><div id="agent-list"></div>`;
  const q = el.querySelector("#agent-q");
  const table = new VTable(el.querySelector("#agent-list"), {
    empty: "No agents.",
    sort: { i: 0, dir: 1 },
    rowAttrs: (a) => `data-agent-id="${esc(a.id)}"`,
    columns: [
      { title: "Host", w: "minmax(120px,1.4fr)", html: (a) => link.agent(a.id, agentName(a.id)), sort: (a) => a.hostname },
      { title: "ID", w: "2fr", wide: true, html: (a) => `<span class="mono">${esc(a.id)}</span>`, sort: (a) => a.id },
      { title: "Tasks", w: "60px", html: (a) => num(a.tasks), sort: (a) => a.tasks },
      { title: "CPUs", w: "110px", html: (a) => `${num(a.used.cpus)} / ${num(a.total.cpus)}`, sort: (a) => a.used.cpus / (a.total.cpus || 1) },
      { title: "Mem", w: "140px", wide: true, html: (a) => `${mb(a.used.mem)} / ${mb(a.total.mem)}`, sort: (a) => a.used.mem / (a.total.mem || 1) },
      { title: "Disk", w: "140px", wide: true, html: (a) => `${mb(a.used.disk)} / ${mb(a.total.disk)}`, sort: (a) => a.used.disk / (a.total.disk || 1) },
      { title: "Status", w: "100px", html: agentStatus },
      { title: "Attributes", w: "1.2fr", wide: true, html: (a) => esc(attrText(a.raw.agent_info.attributes)) },
    ],
  });
  let shown = -1;
  const page = {
    update(force) {
      if (!force && shown === store.version) return;
      shown = store.version;
      const f = q.value.trim().toLowerCase();
      let items = [...store.agents.values()];
      if (f) items = items.filter((a) => a.id.toLowerCase().includes(f) || a.hostname.toLowerCase().includes(f) || attrText(a.raw.agent_info.attributes).toLowerCase().includes(f));
      table.setItems(items);
    },
  };
  q.addEventListener("input", () => page.update(true));
  return page;
}

function agentPage(el, id) {
  el.innerHTML = `<h1>Agent <small class="mono">${esc(id)}</small></h1><div id="agent-body"></div><h2>Tasks</h2><div id="agent-tasks"></div>`;
  const body = el.querySelector("#agent-body");
  const table = taskTable(el.querySelector("#agent-tasks"), { hideAgent: true });
  let details = null; // from GET_AGENTS: allocated, offered and reserved resources
  let shown = -1;
  const page = {
    update(force) {
      if (!force && shown === store.version) return;
      shown = store.version;
      const a = store.agents.get(id);
      if (!a) { body.innerHTML = `<div class="error">No agent ${esc(id)} is registered.</div>`; return; }
      const raw = details || a.raw;
      const info = raw.agent_info;
      const reserved = (raw.total_resources || []).filter((r) => reservedRole(r));
      body.innerHTML = `<div class="grid">
        <div class="card"><h2>Agent</h2>${kv([["Host", esc(`${info.hostname}:${info.port ?? ""}`)], ["Status", agentStatus(a)],
          ["Version", esc(raw.version)], ["PID", `<span class="mono">${esc(raw.pid || "")}</span>`],
          ["Registered", esc(when(nanos(raw.registered_time)))], ["Re-registered", esc(when(nanos(raw.reregistered_time)))],
          ["Draining", raw.drain_info ? esc(`${raw.drain_info.state}${raw.drain_info.config?.mark_gone ? " (mark gone)" : ""}`) : ""],
          ["Attributes", esc(attrText(info.attributes)) || '<span class="muted">none</span>'],
          ["Tasks", `<a href="#/tasks?agent=${encodeURIComponent(id)}">${num(a.tasks)} active</a>`]])}</div>
        <div class="card"><h2>Resources</h2>${resourceTable([["total", a.total], ["used by tasks", a.used, a.total],
          ["allocated", sumScalars(raw.allocated_resources), a.total], ["offered", sumScalars(raw.offered_resources), a.total]])}
          <p class="muted">Total: ${esc(resourceText(raw.total_resources))}</p></div>
        <div class="card"><h2>Reservations</h2>${reserved.length ? `<table class="plain"><tr><th>Role</th><th>Resource</th><th>Type</th><th>Principal</th></tr>${reserved.map((r) => {
          const rv = r.reservations?.[r.reservations.length - 1] || {};
          return `<tr><td>${esc(reservedRole(r))}</td><td>${esc(resourceText([{ ...r, reservations: [], role: "*" }]))}${r.disk?.persistence ? " (volume " + esc(r.disk.persistence.id) + ")" : ""}</td><td>${esc(rv.type || "STATIC")}</td><td>${esc(rv.principal || r.reservation?.principal || "")}</td></tr>`;
        }).join("")}</table>` : '<p class="muted">No reserved resources.</p>'}</div></div>`;
      const tasks = [];
      for (const t of store.tasks.values()) if (t.agent === id) tasks.push(t);
      table.setItems(tasks);
    },
    error: errorBox(body),
  };
  every(page, 15000, async () => {
    const r = await call("GET_AGENTS");
    details = r.get_agents.agents.find((x) => x.agent_info.id.value === id) || null;
    page.update(true);
  });
  return page;
}

/** taskTable is the virtualized task list the tasks, agent and framework pages share. */
function taskTable(el, { hideAgent = false, hideFw = false } = {}) {
  const cols = [
    { title: "ID", w: "minmax(120px,1.6fr)", html: (t) => link.task(t), sort: (t) => t.id },
    { title: "Name", w: "1fr", wide: true, html: (t) => esc(t.name), sort: (t) => t.name },
    { title: "State", w: "100px", html: (t) => statePill(t.state), sort: (t) => t.state },
    !hideFw && { title: "Framework", w: "1fr", wide: true, html: (t) => link.fw(t.fw, fwName(t.fw)), sort: (t) => fwName(t.fw) },
    !hideAgent && { title: "Agent", w: "1fr", wide: true, html: (t) => (t.agent ? link.agent(t.agent, agentName(t.agent)) : ""), sort: (t) => agentName(t.agent) },
    { title: "CPUs", w: "56px", wide: true, html: (t) => num(t.res.cpus), sort: (t) => t.res.cpus },
    { title: "Mem", w: "76px", wide: true, html: (t) => mb(t.res.mem), sort: (t) => t.res.mem },
    { title: "Updated", w: "80px", wide: true, html: (t) => esc(ago(t.updated)), sort: (t) => -t.updated },
    { title: "", w: "64px", html: (t) => (t.agent ? link.sandbox(t) : "") },
  ].filter(Boolean);
  return new VTable(el, { columns: cols, empty: "No tasks.", rowAttrs: (t) => `data-task-id="${esc(t.id)}" data-task-state="${t.state}"`, sort: { i: cols.findIndex((c) => c.title === "Updated"), dir: 1 } });
}

function tasksPage(el, parts, params) {
  if (parts.length >= 2) return taskPage(el, parts[0], parts.slice(1).join("/"));
  el.innerHTML = `<h1>Tasks</h1>
    <div class="toolbar">
      <input type="search" id="task-q" placeholder="Search task ID or name">
      <select id="task-state" aria-label="State"><option value="">all states</option><option value="active">active</option><option value="ended">ended</option>
        ${STATES.map((s) => `<option value="${s}">${s.replace(/^TASK_/, "").toLowerCase()}</option>`).join("")}</select>
      <select id="task-fw" aria-label="Framework"><option value="">all frameworks</option></select>
      <input type="search" id="task-agent" placeholder="Agent ID or host" style="max-width:220px">
    </div><div id="task-list"></div>`;
  const $ = (id) => el.querySelector("#" + id);
  const table = taskTable($("task-list"));
  let shown = -1, fwVersion = "";
  const page = {
    setParams(p) {
      $("task-q").value = p.get("q") || "";
      $("task-state").value = p.get("state") || "";
      $("task-agent").value = p.get("agent") || "";
      this.wantFw = p.get("framework") || "";
      $("task-fw").value = this.wantFw;
      this.update(true);
    },
    update(force) {
      // The framework choices follow the frameworks known.
      const fws = [...store.frameworks.values(), ...store.doneFrameworks.values()];
      const fk = fws.map((f) => f.id).join(",");
      if (fk !== fwVersion) {
        fwVersion = fk;
        const cur = $("task-fw").value || this.wantFw;
        $("task-fw").innerHTML = `<option value="">all frameworks</option>` + fws.map((f) => `<option value="${esc(f.id)}">${esc(f.info?.name || f.id)} (${esc(f.id.slice(-8))})</option>`).join("");
        $("task-fw").value = cur;
      }
      if (!force && shown === store.version) return;
      shown = store.version;
      const q = $("task-q").value.trim().toLowerCase();
      const st = $("task-state").value;
      const fw = $("task-fw").value;
      const ag = $("task-agent").value.trim().toLowerCase();
      const out = [];
      for (const t of store.tasks.values()) {
        if (st === "active" ? !holds(t.state) : st === "ended" ? !TERMINAL.has(t.state) : st && t.state !== st) continue;
        if (fw && t.fw !== fw) continue;
        if (ag && !t.agent.toLowerCase().includes(ag) && !agentName(t.agent).toLowerCase().includes(ag)) continue;
        if (q && !t.text.includes(q)) continue;
        out.push(t);
      }
      table.setItems(out, store.tasks.size !== out.length ? `of ${num(store.tasks.size)}` : "");
    },
  };
  const sync = () => {
    const p = new URLSearchParams();
    for (const [k, id] of [["q", "task-q"], ["state", "task-state"], ["framework", "task-fw"], ["agent", "task-agent"]]) {
      if ($(id).value) p.set(k, $(id).value);
    }
    const s = p.toString();
    history.replaceState(null, "", "#/tasks" + (s ? "?" + s : ""));
    page.update(true);
  };
  for (const id of ["task-q", "task-agent"]) $(id).addEventListener("input", sync);
  for (const id of ["task-state", "task-fw"]) $(id).addEventListener("change", sync);
  page.setParams(params);
  return page;
}

function taskPage(el, fw, id) {
  el.innerHTML = `<h1>Task <small class="mono">${esc(id)}</small></h1><div id="task-body"></div>`;
  const body = el.querySelector("#task-body");
  return {
    update() {
      const t = store.tasks.get(taskKey(fw, id));
      if (!t) { body.innerHTML = `<div class="error">The master knows no task ${esc(id)} of framework ${esc(fw)}${store.synced ? "" : " yet"}.</div>`; return; }
      body.innerHTML = `<div class="grid"><div class="card">${kv([["Name", esc(t.name)], ["State", statePill(t.state)],
        ["Framework", link.fw(t.fw, fwName(t.fw))], ["Agent", t.agent ? link.agent(t.agent, agentName(t.agent)) : ""],
        ["Executor", `<span class="mono">${esc(t.executor)}</span>`], ["Role", esc(t.role)],
        ["Resources", KINDS.filter((k) => t.res[k]).map((k) => `${k} ${fmtRes(k, t.res[k])}`).join(", ")],
        ["Last update", esc(`${when(t.updated)} (${ago(t.updated)})`)], ["Source", esc(t.source)], ["Reason", esc(t.reason)],
        ["Message", esc(t.message)],
        ["Sandbox", t.agent ? `${link.sandbox(t, "browse")} · <a id="task-stdout" href="#/sandbox?${new URLSearchParams({ agent: t.agent, path: sandboxPath(t), file: "stdout" })}">stdout</a> · <a href="#/sandbox?${new URLSearchParams({ agent: t.agent, path: sandboxPath(t), file: "stderr" })}">stderr</a>` : ""]])}</div>
        <div class="card"><h2>Status updates</h2>${statusTable(t.history)}</div></div>`;
    },
  };
}

// statusTable lists a task's latest status updates, newest first.
function statusTable(history) {
  if (!history.length) return '<div class="muted">None yet.</div>';
  return `<table class="plain" id="task-history"><tr><th>Time</th><th>State</th><th>Source</th><th>Reason</th><th>Message</th></tr>${[...history].reverse().map((h) =>
    `<tr data-state="${esc(h.state)}"><td>${esc(when(h.time))}</td><td>${statePill(h.state)}${h.healthy === undefined ? "" : h.healthy ? ' <span class="pill ok">healthy</span>' : ' <span class="pill bad">unhealthy</span>'}</td><td>${esc(h.source)}</td><td>${esc(h.reason)}</td><td>${esc(h.message)}</td></tr>`).join("")}</table>`;
}

function frameworksPage(el, parts) {
  if (parts.length) return frameworkPage(el, parts[0]);
  el.innerHTML = `<h1>Frameworks</h1><div id="fw-list"></div><h2 style="margin-top:16px">Completed</h2><div id="fw-done"></div>`;
  const cols = (done) => [
    { title: "Name", w: "1.2fr", html: (f) => link.fw(f.id, f.info?.name || f.id), sort: (f) => f.info?.name || "" },
    { title: "ID", w: "2fr", wide: true, html: (f) => `<span class="mono">${esc(f.id)}</span>`, sort: (f) => f.id },
    { title: "Roles", w: "1fr", wide: true, html: (f) => esc((f.info?.roles?.length ? f.info.roles : [f.info?.role || "*"]).join(", ")) },
    { title: "Status", w: "100px", html: (f) => (done ? '<span class="pill">removed</span>' : f.raw.active ? '<span class="pill ok">active</span>' : f.raw.connected ? '<span class="pill warn">inactive</span>' : '<span class="pill bad">disconnected</span>') },
    { title: "Tasks", w: "64px", html: (f) => num(f.tasks), sort: (f) => f.tasks },
    { title: "CPUs", w: "70px", wide: true, html: (f) => num(f.used.cpus), sort: (f) => f.used.cpus },
    { title: "Mem", w: "90px", wide: true, html: (f) => mb(f.used.mem), sort: (f) => f.used.mem },
    { title: "Offers", w: "64px", html: (f) => num(f.raw?.offers?.length || 0), sort: (f) => f.raw?.offers?.length || 0 },
  ];
  const table = new VTable(el.querySelector("#fw-list"), { columns: cols(false), empty: "No frameworks.", rowAttrs: (f) => `data-framework-id="${esc(f.id)}"` });
  const done = new VTable(el.querySelector("#fw-done"), { columns: cols(true), empty: "None." });
  let shown = -1;
  const page = {
    update(force) {
      if (!force && shown === store.version) return;
      shown = store.version;
      table.setItems([...store.frameworks.values()]);
      done.setItems([...store.doneFrameworks.values()]);
    },
  };
  every(page, 5000, async () => store.mergeFrameworks(await call("GET_FRAMEWORKS")));
  return page;
}

function frameworkPage(el, id) {
  el.innerHTML = `<h1>Framework <small class="mono">${esc(id)}</small></h1><div id="fw-body"></div><h2>Offers outstanding</h2><div id="fw-offers"></div><h2 style="margin-top:16px">Tasks</h2><div id="fw-tasks"></div>`;
  const body = el.querySelector("#fw-body");
  const tasks = taskTable(el.querySelector("#fw-tasks"), { hideFw: true });
  const offers = new VTable(el.querySelector("#fw-offers"), {
    empty: "No offers outstanding.",
    columns: [
      { title: "Offer", w: "1.5fr", html: (o) => `<span class="mono">${esc(o.id.value)}</span>` },
      { title: "Agent", w: "1fr", html: (o) => link.agent(o.agent_id.value, agentName(o.agent_id.value)) },
      { title: "Resources", w: "2fr", wide: true, html: (o) => esc(resourceText(o.resources)) },
    ],
  });
  let shown = -1;
  const page = {
    update(force) {
      if (!force && shown === store.version) return;
      shown = store.version;
      const f = store.frameworks.get(id) || store.doneFrameworks.get(id);
      if (!f) { body.innerHTML = `<div class="error">No framework ${esc(id)}.</div>`; return; }
      const info = f.info || {};
      const raw = f.raw || {};
      body.innerHTML = `<div class="grid"><div class="card">${kv([["Name", esc(info.name)], ["User", esc(info.user)],
        ["Roles", esc((info.roles?.length ? info.roles : [info.role || "*"]).join(", "))], ["Principal", esc(info.principal || "")],
        ["Status", f.removed ? "removed" : raw.active ? "active" : raw.connected ? "inactive" : "disconnected"],
        ["Hostname", esc(info.hostname || "")], ["Web UI", /^https?:\/\//i.test(info.webui_url || "") ? `<a href="${esc(info.webui_url)}" rel="noopener noreferrer">${esc(info.webui_url)}</a>` : esc(info.webui_url || "")],
        ["Failover timeout", info.failover_timeout ? esc(info.failover_timeout + " s") : ""],
        ["Capabilities", esc((info.capabilities || []).map((c) => c.type).join(", "))],
        ["Registered", esc(when(nanos(raw.registered_time)))], ["Tasks", `<a href="#/tasks?framework=${encodeURIComponent(id)}">${num(f.tasks)} active</a>`]])}</div>
        <div class="card"><h2>Resources</h2>${resourceTable([["used by tasks", f.used], ["allocated", sumScalars(raw.allocated_resources)], ["offered", sumScalars(raw.offered_resources)]])}</div></div>`;
      offers.setItems(raw.offers || []);
      const ts = [];
      for (const t of store.tasks.values()) if (t.fw === id) ts.push(t);
      tasks.setItems(ts);
    },
    error: errorBox(body),
  };
  every(page, 5000, async () => store.mergeFrameworks(await call("GET_FRAMEWORKS")));
  return page;
}

function rolesPage(el) {
  el.innerHTML = `<h1>Roles</h1><div id="roles-body"></div><p class="muted">Quota, consumption and allocation from the master's /roles; guarantees and limits are set with UPDATE_QUOTA, weights with UPDATE_WEIGHTS.</p>`;
  const body = el.querySelector("#roles-body");
  const scal = (m) => Object.entries(m || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${fmtRes(k, v)}`).join(", ") || '<span class="muted">–</span>';
  const table = new VTable(body, {
    empty: "No roles.",
    rowHeight: 40,
    rowAttrs: (r) => `data-role="${esc(r.name)}"`,
    columns: [
      { title: "Role", w: "1fr", html: (r) => esc(r.name), sort: (r) => r.name },
      { title: "Weight", w: "70px", html: (r) => num(r.weight), sort: (r) => r.weight },
      { title: "Frameworks", w: "90px", wide: true, html: (r) => num(r.frameworks?.length || 0), sort: (r) => r.frameworks?.length || 0 },
      { title: "Allocated", w: "1.3fr", html: (r) => scal(r.allocated || r.resources) },
      { title: "Offered", w: "1fr", wide: true, html: (r) => scal(r.offered) },
      { title: "Reserved", w: "1fr", wide: true, html: (r) => scal(r.reserved) },
      { title: "Quota guarantee", w: "1.2fr", wide: true, html: (r) => scal(r.quota?.guarantee) },
      { title: "Quota limit", w: "1.2fr", wide: true, html: (r) => scal(r.quota?.limit) },
      { title: "Consumed", w: "1.2fr", html: (r) => scal(r.quota?.consumed) },
    ],
  });
  const page = { error: errorBox(el.querySelector("p")) };
  every(page, 5000, async () => table.setItems((await getJSON("roles")).roles || []));
  return page;
}

function maintenancePage(el) {
  el.innerHTML = `<h1>Maintenance</h1>
    <div class="grid"><div class="card"><h2>Schedule</h2><div id="mt-schedule"></div></div>
    <div class="card"><h2>Machines</h2><div id="mt-status"></div></div></div>
    <h2>Draining and deactivated agents</h2><div id="mt-agents"></div>`;
  const $ = (id) => el.querySelector("#" + id);
  const machine = (m) => esc(m.hostname || m.ip || "");
  const table = new VTable($("mt-agents"), {
    empty: "No agent is draining or deactivated.",
    columns: [
      { title: "Host", w: "1.2fr", html: (a) => link.agent(a.id, agentName(a.id)) },
      { title: "Status", w: "110px", html: agentStatus },
      { title: "Max grace period", w: "1fr", wide: true, html: (a) => esc(a.raw.drain_info?.config?.max_grace_period?.nanoseconds ? num(Number(a.raw.drain_info.config.max_grace_period.nanoseconds) / 1e9) + " s" : "") },
      { title: "Mark gone", w: "90px", wide: true, html: (a) => (a.raw.drain_info?.config?.mark_gone ? "yes" : "") },
      { title: "Tasks", w: "64px", html: (a) => num(a.tasks) },
    ],
  });
  const page = {
    update() {
      const list = [];
      for (const a of store.agents.values()) if (a.raw.drain_info || a.raw.deactivated) list.push(a);
      table.setItems(list);
    },
    error: errorBox($("mt-status")),
  };
  every(page, 5000, async () => {
    const [sched, status] = await Promise.all([call("GET_MAINTENANCE_SCHEDULE"), call("GET_MAINTENANCE_STATUS")]);
    const windows = sched.get_maintenance_schedule?.schedule?.windows || [];
    $("mt-schedule").innerHTML = windows.length ? `<table class="plain"><tr><th>Machines</th><th>Start</th><th>Duration</th></tr>${windows.map((w) => {
      const u = w.unavailability || {};
      const start = nanos(u.start);
      const dur = u.duration?.nanoseconds ? `${num(Number(u.duration.nanoseconds) / 1e9 / 60, 1)} min` : "open-ended";
      return `<tr><td>${(w.machine_ids || []).map(machine).join(", ")}</td><td>${esc(when(start))}</td><td>${esc(dur)}</td></tr>`;
    }).join("")}</table>` : '<p class="muted">No maintenance scheduled.</p>';
    const st = status.get_maintenance_status?.status || {};
    const draining = st.draining_machines || [];
    const down = st.down_machines || [];
    $("mt-status").innerHTML = draining.length || down.length ? `<table class="plain"><tr><th>Machine</th><th>Mode</th><th>Frameworks' answers</th></tr>${
      draining.map((d) => `<tr><td>${machine(d.id)}</td><td><span class="pill warn">draining</span></td><td>${esc((d.statuses || []).map((s) => `${fwName(s.framework_id?.value)}: ${s.status}`).join(", "))}</td></tr>`).join("")}${
      down.map((m) => `<tr><td>${machine(m)}</td><td><span class="pill bad">down</span></td><td></td></tr>`).join("")}</table>` : '<p class="muted">Every machine is up.</p>';
    store.mergeAgents(await call("GET_AGENTS"));
  });
  // GET_AGENTS is the only source of drain states (there is no event for them): poll it less often.
  return page;
}

/** The sandbox browser: a directory listing from /files/browse and a viewer that tails a file with /files/read. */
function sandboxPage(el, parts, params) {
  el.innerHTML = `<h1>Sandbox</h1><div class="crumbs" id="sb-crumbs"></div><div id="sb-err"></div><div id="sb-list"></div><div id="sb-view"></div>`;
  const $ = (id) => el.querySelector("#" + id);
  let tail = null;
  const page = {
    setParams(p) { show(p); },
    unmount() { tail?.stop(); },
  };
  const show = async (p) => {
    tail?.stop();
    tail = null;
    const agent = p.get("agent") || "";
    const path = p.get("path") || "";
    const file = p.get("file") || "";
    const here = (extra) => "#/sandbox?" + new URLSearchParams({ agent, path, ...extra });
    // Crumbs: each directory from the sandbox down.
    // Only the sandbox (".../runs/<run>") and below can be listed.
    const segs = path.split("/").filter(Boolean);
    const runs = segs.lastIndexOf("runs");
    const root = runs >= 0 && runs + 1 < segs.length ? runs + 1 : 0;
    $("sb-crumbs").innerHTML = `${link.agent(agent, agentName(agent))} : /` + segs.map((s, i) => i < root ? esc(s) :
      `<a href="#/sandbox?${new URLSearchParams({ agent, path: "/" + segs.slice(0, i + 1).join("/") })}">${esc(s)}</a>`).join("/") + (file ? " / " + esc(file) : "");
    $("sb-err").innerHTML = "";
    if (file) {
      $("sb-list").innerHTML = "";
      const full = path.replace(/\/$/, "") + "/" + file;
      const siblings = ["stdout", "stderr"].map((f) => `<a class="${f === file ? "active" : ""}" href="${here({ file: f })}">${f}</a>`).join("");
      $("sb-view").innerHTML = `<div class="tabs">${siblings}<a href="${here({})}">files</a>
        <label class="muted" style="margin-left:auto"><input type="checkbox" id="sb-follow" checked> follow</label>
        <a href="${esc(filesURL("download", agent, full))}" download>download</a></div><pre class="log" id="sb-log"></pre>`;
      tail = tailFile($("sb-log"), agent, full, $("sb-follow"), (e) => { $("sb-err").innerHTML = `<div class="error">${esc(e.message)}</div>`; });
      return;
    }
    $("sb-view").innerHTML = "";
    try {
      const r = await fetch(filesURL("browse", agent, path), { credentials: "same-origin" });
      if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).slice(0, 300)}`);
      const entries = await r.json();
      entries.sort((a, b) => (b.mode[0] === "d") - (a.mode[0] === "d") || a.path.localeCompare(b.path));
      const t = new VTable($("sb-list"), {
        empty: "Empty directory.",
        rowAttrs: (e) => `data-file="${esc(e.path.split("/").pop())}"`,
        columns: [
          { title: "Name", w: "2fr", html: (e) => {
            const name = e.path.split("/").pop();
            return e.mode[0] === "d" ? `<a href="#/sandbox?${new URLSearchParams({ agent, path: e.path })}">${esc(name)}/</a>` : `<a href="${here({ file: name })}">${esc(name)}</a>`;
          } },
          { title: "Size", w: "90px", html: (e) => bytes(e.size) },
          { title: "Modified", w: "1fr", wide: true, html: (e) => esc(when(e.mtime)) },
          { title: "Mode", w: "100px", wide: true, html: (e) => `<span class="mono">${esc(e.mode)}</span>` },
          { title: "", w: "80px", html: (e) => (e.mode[0] === "d" ? "" : `<a href="${esc(filesURL("download", agent, e.path))}" download>download</a>`) },
        ],
      });
      t.setItems(entries);
    } catch (e) {
      $("sb-err").innerHTML = `<div class="error">Cannot list ${esc(path)}: ${esc(e.message)}</div>`;
    }
  };
  show(params);
  return page;
}

/**
 * tailFile shows the end of a file and follows it, as Mesos's pailer does:
 * ask the size (offset -1), read the last PAGE bytes, then read from the
 * offset reached every second while "follow" is on. The view keeps the
 * last MAX characters.
 */
function tailFile(pre, agent, path, follow, onError) {
  const PAGE = 64 * 1024, MAX = 2 * 1024 * 1024;
  let stopped = false, offset = 0, timer = 0;
  const read = async (off, length) => {
    const r = await fetch(filesURL("read", agent, path, { offset: String(off), length: String(length) }), { credentials: "same-origin" });
    if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).slice(0, 300)}`);
    return r.json();
  };
  const append = (text) => {
    if (!text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(text);
    if (pre.textContent.length > MAX) pre.textContent = pre.textContent.slice(-MAX);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const poll = async () => {
    if (stopped) return;
    try {
      for (;;) {
        const r = await read(offset, PAGE);
        if (stopped) return;
        if (r.offset < offset) { pre.textContent = ""; } // truncated and rewritten
        const n = new TextEncoder().encode(r.data).length;
        append(r.data);
        offset = r.offset + n;
        if (n < PAGE) break;
      }
    } catch (e) {
      onError(e);
    }
    if (!stopped && follow.checked) timer = setTimeout(poll, 1000);
  };
  follow.addEventListener("change", () => { if (follow.checked && !stopped) { clearTimeout(timer); poll(); } });
  (async () => {
    try {
      const size = (await read(-1, 0)).offset;
      offset = Math.max(0, size - PAGE);
      if (offset > 0) append(`[… ${bytes(offset)} earlier not shown; download the file for all of it]\n`);
      pre.scrollTop = pre.scrollHeight;
      await poll();
    } catch (e) {
      onError(e);
    }
  })();
  return { stop() { stopped = true; clearTimeout(timer); } };
}

const PAGES = {
  overview, agents: agentsPage, frameworks: frameworksPage, tasks: tasksPage, roles: rolesPage,
  maintenance: maintenancePage, sandbox: sandboxPage,
};

// ---- start -----------------------------------------------------------------

document.getElementById("menu").addEventListener("click", (e) => {
  const open = document.getElementById("nav").classList.toggle("open");
  e.currentTarget.setAttribute("aria-expanded", String(open));
});
window.addEventListener("hashchange", navigate);
navigate();
startStream();
sample();
setInterval(sample, SAMPLE_MS);

// For tests and measurements: the store, read-only by convention.
window.apron = { store, samples };
