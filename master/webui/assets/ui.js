// Small UI pieces with no framework: HTML escaping and formatting, a
// virtualized table that puts only the visible rows in the DOM, and an SVG
// line chart.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
/** esc makes text safe inside HTML, attribute values included. */
export function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]); }

export function num(x, digits = 2) {
  if (!Number.isFinite(x)) return "–";
  return Number.isInteger(x) ? x.toLocaleString("en-US") : x.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** mb formats megabytes the way Mesos's UI does (MB, GB, TB). */
export function mb(x) {
  if (!Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 1024 * 1024) return num(x / 1024 / 1024, 1) + " TB";
  if (Math.abs(x) >= 1024) return num(x / 1024, 1) + " GB";
  return num(x, 0) + " MB";
}

export function bytes(x) {
  if (!Number.isFinite(x)) return "–";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(x) >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return (i ? x.toFixed(1) : x) + " " + u[i];
}

/** fmtRes formats one kind of resource. */
export function fmtRes(kind, x) { return kind === "mem" || kind === "disk" ? mb(x) : num(x); }

/** ago says how long ago a time in seconds since the epoch was. */
export function ago(sec, now = Date.now() / 1000) {
  if (!sec) return "";
  const d = Math.max(0, now - sec);
  if (d < 60) return Math.floor(d) + "s ago";
  if (d < 3600) return Math.floor(d / 60) + "m ago";
  if (d < 86400) return Math.floor(d / 3600) + "h ago";
  return Math.floor(d / 86400) + "d ago";
}

export function when(sec) { return sec ? new Date(sec * 1000).toLocaleString() : ""; }

/** nanos reads a TimeInfo ({nanoseconds}) as seconds. */
export function nanos(ti) { return ti?.nanoseconds ? Number(ti.nanoseconds) / 1e9 : 0; }

export function pct(used, total) { return total > 0 ? Math.min(100, (100 * used) / total) : 0; }

export function bar(used, total) {
  return `<div class="bar" title="${num(pct(used, total), 1)}%"><span style="width:${pct(used, total).toFixed(1)}%"></span></div>`;
}

const STATE_CLASS = {
  TASK_RUNNING: "ok", TASK_FINISHED: "ok", TASK_FAILED: "bad", TASK_ERROR: "bad", TASK_LOST: "bad",
  TASK_DROPPED: "bad", TASK_GONE: "bad", TASK_KILLING: "warn", TASK_UNREACHABLE: "warn", TASK_STAGING: "warn",
  TASK_STARTING: "warn",
};
export function statePill(s) {
  return `<span class="pill ${STATE_CLASS[s] || ""}">${esc(String(s).replace(/^TASK_/, ""))}</span>`;
}

/**
 * VTable shows a list of any length: a header, a scroller holding a spacer
 * as tall as every row, and a window of the visible rows (plus a few)
 * rendered as one HTML string. setItems may be called as often as data
 * changes; rendering happens on the next animation frame, once.
 *
 * columns: [{title, w (grid track), html(item) -> HTML string,
 *            sort(item) -> number|string (optional), wide: true to hide on phones}]
 */
export class VTable {
  constructor(el, { columns, rowHeight = 34, empty = "Nothing to show.", rowAttrs = () => "", sort = null }) {
    this.columns = columns;
    this.rowHeight = rowHeight;
    this.rowAttrs = rowAttrs;
    this.items = [];
    this.sort = sort; // {i, dir}
    el.innerHTML = `<div class="vt"><div class="vt-head"></div><div class="vt-scroll"><div class="vt-space"><div class="vt-win"></div></div></div><div class="vt-foot"></div></div>`;
    this.root = el.firstElementChild;
    this.head = this.root.querySelector(".vt-head");
    this.scroller = this.root.querySelector(".vt-scroll");
    this.space = this.root.querySelector(".vt-space");
    this.win = this.root.querySelector(".vt-win");
    this.foot = this.root.querySelector(".vt-foot");
    this.root.style.setProperty("--cols-wide", columns.map((c) => c.w || "1fr").join(" "));
    this.root.style.setProperty("--cols-narrow", columns.filter((c) => !c.wide).map((c) => c.w || "1fr").join(" "));
    this.root.style.setProperty("--row", rowHeight + "px");
    this.empty = empty;
    this.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.head.addEventListener("click", (e) => {
      const i = e.target.closest("[data-sort]")?.dataset.sort;
      if (i === undefined) return;
      const n = Number(i);
      this.sort = this.sort?.i === n ? { i: n, dir: -this.sort.dir } : { i: n, dir: 1 };
      this.setItems(this.raw);
    });
    this.renderHead();
  }

  renderHead() {
    this.head.innerHTML = this.columns.map((c, i) => {
      const arrow = this.sort?.i === i ? (this.sort.dir > 0 ? " ▲" : " ▼") : "";
      const cls = c.wide ? ' class="narrow-hide"' : "";
      return c.sort ? `<span${cls} data-sort="${i}">${esc(c.title)}${arrow}</span>` : `<span${cls}>${esc(c.title)}</span>`;
    }).join("");
  }

  /** setItems shows items (an array), sorted by the chosen column. */
  setItems(items, note = "") {
    this.raw = items;
    if (this.sort && this.columns[this.sort.i]?.sort) {
      const f = this.columns[this.sort.i].sort;
      const dir = this.sort.dir;
      const keyed = items.map((it) => [f(it), it]);
      keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : 0));
      items = keyed.map((k) => k[1]);
    }
    this.items = items;
    this.note = note;
    this.renderHead();
    this.schedule(true);
  }

  schedule(force) {
    if (force) this.force = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    const n = this.items.length;
    const h = this.rowHeight;
    this.space.style.height = (n ? n * h : 44) + "px"; // room for the "empty" note
    const view = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / h) - 5);
    const last = Math.min(n, Math.ceil((this.scroller.scrollTop + view) / h) + 5);
    if (!this.force && first === this.first && last === this.last) return;
    this.force = false;
    this.first = first;
    this.last = last;
    this.win.style.transform = `translateY(${first * h}px)`;
    let html = "";
    for (let i = first; i < last; i++) {
      const it = this.items[i];
      html += `<div class="vt-row" ${this.rowAttrs(it)}>`;
      for (const c of this.columns) html += c.wide ? `<span class="narrow-hide">${c.html(it)}</span>` : `<span>${c.html(it)}</span>`;
      html += "</div>";
    }
    this.win.innerHTML = n ? html : `<div class="vt-empty">${esc(this.empty)}</div>`;
    this.foot.textContent = `${n.toLocaleString("en-US")} row${n === 1 ? "" : "s"}${this.note ? " · " + this.note : ""}`;
  }
}

/**
 * lineChart draws series of samples ([{t, ...}]) as an SVG string.
 * series: [{key, label, color}]; max: the top of the y axis (auto if 0).
 */
export function lineChart(samples, series, { max = 0, unit = "", span = 600 } = {}) {
  const W = 600, H = 120, P = 4;
  const now = samples.length ? samples[samples.length - 1].t : Date.now() / 1000;
  // A young page plots what it has across the whole width.
  if (samples.length) span = Math.min(span, Math.max(60, now - samples[0].t));
  let top = max;
  if (!top) {
    for (const s of samples) for (const se of series) top = Math.max(top, s[se.key] || 0);
    top = top > 0 ? top * 1.15 : 1;
  }
  const x = (t) => P + ((W - 2 * P) * (t - (now - span))) / span;
  const y = (v) => H - P - ((H - 2 * P) * Math.min(v, top)) / top;
  let paths = "";
  for (const se of series) {
    const pts = samples.filter((s) => s.t >= now - span).map((s) => `${x(s.t).toFixed(1)},${y(s[se.key] || 0).toFixed(1)}`);
    if (pts.length) paths += `<polyline fill="none" stroke="${se.color}" stroke-width="2" vector-effect="non-scaling-stroke" points="${pts.join(" ")}"/>`;
  }
  const grid = [0.25, 0.5, 0.75].map((f) => `<line x1="0" x2="${W}" y1="${y(top * f)}" y2="${y(top * f)}" stroke="currentColor" stroke-opacity=".12" vector-effect="non-scaling-stroke"/>`).join("");
  const legend = series.map((se) => {
    const last = samples.length ? samples[samples.length - 1][se.key] || 0 : 0;
    return `<span><i style="background:${se.color}"></i>${esc(se.label)} <b>${num(last, 1)}${unit}</b></span>`;
  }).join("");
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img">${grid}${paths}</svg>
    <div class="legend">${legend}<span style="margin-left:auto">last ${span >= 90 ? Math.round(span / 60) + " min" : Math.round(span) + " s"}, max ${num(top, 1)}${unit}</span></div>`;
}
