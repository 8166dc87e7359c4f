// The master's HTTP APIs as the UI uses them. Every URL is relative to the
// page, so the UI works behind a proxy that mounts the master under a
// prefix, and every request is same-origin, so the browser sends the
// credential it was asked for (HTTP Basic) with each.

/** An answer other than 2xx. */
export class HTTPError extends Error {
  constructor(status, text) {
    super(`HTTP ${status}${text ? ": " + text.trim().slice(0, 300) : ""}`);
    this.status = status;
  }
}

/** call makes one operator API call, {"type": type, ...body}, and returns the JSON answer (null when empty). */
export async function call(type, body = {}, signal) {
  const r = await fetch("api/v1", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify({ type, ...body }),
    credentials: "same-origin",
    signal,
  });
  const text = await r.text();
  if (!r.ok) throw new HTTPError(r.status, text);
  return text ? JSON.parse(text) : null;
}

/** getJSON reads a GET endpoint that answers JSON. */
export async function getJSON(path, signal) {
  const r = await fetch(path, { headers: { "Accept": "application/json" }, credentials: "same-origin", signal });
  const text = await r.text();
  if (!r.ok) throw new HTTPError(r.status, text);
  return JSON.parse(text);
}

/** filesURL is a files API URL ("browse", "read", "download") for path on agent. */
export function filesURL(endpoint, agent, path, extra = {}) {
  const q = new URLSearchParams({ path, ...extra });
  if (agent) q.set("agent_id", agent);
  return `files/${endpoint}?${q}`;
}

/**
 * RecordIO splits a byte stream into records: "<decimal length>\n<bytes>",
 * as every Mesos v1 streaming endpoint frames them. push takes the next
 * chunk and returns the complete records it finished, decoded as UTF-8.
 * Chunks are kept as they come and joined once a record is whole, so a
 * record of many megabytes (a SUBSCRIBED with the whole cluster) costs
 * one copy, not one per chunk.
 */
export class RecordIO {
  constructor() {
    this.chunks = [];
    this.size = 0;   // bytes in chunks
    this.need = -1;  // the current record's length, once its header is read
    this.decoder = new TextDecoder();
  }
  /** take removes and returns the first n bytes of the chunks, joined. */
  take(n) {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.size -= n;
    return out;
  }
  push(chunk) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const out = [];
    for (;;) {
      if (this.need < 0) {
        // The header is short: look for its newline in the first chunks.
        let nl = -1, seen = 0;
        for (const c of this.chunks) {
          const i = c.indexOf(10);
          if (i >= 0) { nl = seen + i; break; }
          seen += c.length;
          if (seen > 20) break;
        }
        if (nl < 0) {
          if (this.size > 20) throw new Error("malformed RecordIO header");
          break;
        }
        const len = Number(this.decoder.decode(this.take(nl + 1)).trim());
        if (!Number.isInteger(len) || len < 0) throw new Error("malformed RecordIO length");
        this.need = len;
      }
      if (this.size < this.need) break;
      out.push(this.decoder.decode(this.take(this.need)));
      this.need = -1;
    }
    return out;
  }
}

/**
 * subscribe keeps an operator API event stream open (SUBSCRIBE, JSON
 * events in RecordIO frames) and hands each event to onEvent; a SUBSCRIBED
 * event starts every connection, with the whole state. A stream that ends,
 * fails or stays silent for three heartbeat intervals is opened again
 * after a jittered, doubling backoff (0.5 s to 30 s). onStatus hears
 * "connecting", "live", "reconnecting" and "error" (with the error).
 * After failures, a page opened on a master that no longer leads is
 * reloaded, so that the master's redirect takes it to the leader.
 * Returns a function that stops it.
 */
export function subscribe({ onEvent, onStatus, random = Math.random }) {
  let stopped = false;
  let controller = null;
  let failures = 0;
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

  async function once() {
    controller = new AbortController();
    const ctl = controller;
    let heartbeat = 15;
    let last = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - last > 3 * heartbeat * 1000) ctl.abort(new Error("no heartbeat"));
    }, 1000);
    try {
      const r = await fetch("api/v1", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ type: "SUBSCRIBE" }),
        credentials: "same-origin",
        signal: ctl.signal,
      });
      if (!r.ok) throw new HTTPError(r.status, await r.text());
      performance.mark("apron:subscribe-answered");
      const reader = r.body.getReader();
      const rio = new RecordIO();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        last = Date.now();
        for (const rec of rio.push(value)) {
          const ev = JSON.parse(rec);
          if (ev.type === "SUBSCRIBED") performance.mark("apron:subscribed-parsed");
          if (ev.type === "SUBSCRIBED") {
            heartbeat = ev.subscribed?.heartbeat_interval_seconds || 15;
            failures = 0;
            onStatus("live");
          }
          onEvent(ev);
        }
      }
      throw new Error("the event stream ended");
    } finally {
      clearInterval(watchdog);
    }
  }

  (async () => {
    onStatus("connecting");
    while (!stopped) {
      try {
        await once();
      } catch (err) {
        if (stopped) return;
        failures++;
        onStatus(failures > 2 ? "error" : "reconnecting", err);
        if (failures >= 3 && (await redirected())) {
          location.reload();
          return;
        }
      }
      const backoff = Math.min(30000, 500 * 2 ** Math.min(failures, 6));
      await sleep(backoff / 2 + random() * backoff / 2);
    }
  })();

  return () => { stopped = true; controller?.abort(); };
}

/** redirected says whether this master now redirects its UI elsewhere (it is a standby). */
async function redirected() {
  try {
    const r = await fetch("./", { method: "HEAD", redirect: "manual", credentials: "same-origin" });
    return r.type === "opaqueredirect";
  } catch {
    return false;
  }
}
