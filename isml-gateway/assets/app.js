// The isml gateway's dashboard: a fleet view (sessions, the cluster link,
// channels with rate charts and live values) and a device view (retained
// values, a form per method). It reads the REST API and keeps one WebSocket
// to /api/ws.
"use strict";

const state = {
  token: localStorage.getItem("isml-token") || "",
  schema: null,
  sessions: [],
  channels: [],
  cluster: null,          // /api/status's cluster, null until read
  latest: new Map(),      // channel -> last publication seen live
  byDevice: new Map(),    // device -> Map("channel|key" -> publication)
  ws: null,
  wsReady: false,
  subscribed: new Set(),
  timers: [],
  streams: [],
};

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
};

function headers(extra = {}) {
  const h = { ...extra };
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

function banner(text) {
  const b = $("#banner");
  b.hidden = !text;
  b.textContent = text || "";
}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: headers(opts.headers || {}) });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (r.status === 401) banner("The gateway asks for credentials: enter an access token above.");
  return { status: r.status, ok: r.ok, body };
}

// ---------------------------------------------------------------- formatting

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n, i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return v.toFixed(v < 10 ? 1 : 0) + " " + units[i];
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 2) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function since(ms) {
  const d = new Date(ms);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : d.toLocaleDateString() + " " + time;
}

function compact(v) {
  const s = JSON.stringify(v);
  return s.length > 220 ? s.slice(0, 217) + "…" : s;
}

// ---------------------------------------------------------------- WebSocket

function connectWs() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams({ events: "sessions" });
  if (state.token) q.set("access_token", state.token);
  const ws = new WebSocket(`${proto}//${location.host}/api/ws?${q}`);
  state.ws = ws;
  const live = $("#live");
  ws.onopen = () => {
    state.wsReady = true;
    live.className = "live on";
    $("#live-text").textContent = "live";
    state.subscribed.clear();
    ensureSubscriptions();
  };
  ws.onmessage = (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "publication") onPublication(msg);
    else if (msg.type === "session") onSessionEvent(msg);
  };
  ws.onclose = () => {
    state.wsReady = false;
    state.subscribed.clear();
    live.className = "live off";
    $("#live-text").textContent = "offline";
    setTimeout(connectWs, 2000);
  };
}

// Every channel, once the socket is open and the channels are known
// (whichever comes last).
function ensureSubscriptions() {
  if (!state.wsReady) return;
  for (const c of state.channels) {
    if (state.subscribed.has(c.name)) continue;
    state.subscribed.add(c.name);
    state.ws.send(JSON.stringify({ op: "subscribe", channel: c.name }));
  }
}

function onPublication(p) {
  state.latest.set(p.channel, p);
  if (p.publisher) {
    if (!state.byDevice.has(p.publisher)) state.byDevice.set(p.publisher, new Map());
    state.byDevice.get(p.publisher).set(p.channel + "|" + (p.key ?? ""), p);
  }
  const latest = document.querySelector(`[data-latest="${CSS.escape(p.channel)}"]`);
  if (latest) latest.textContent = (p.publisher ? p.publisher + ": " : "") + compact(p.value);
  if (route().device && route().device === p.publisher) renderRetainedValue(p);
}

function onSessionEvent(e) {
  // A connect or disconnect: refresh now rather than at the next poll.
  if (route().device === e.device_id && e.event === "disconnected") {
    const b = $("#device-status");
    if (b) { b.textContent = "disconnected"; b.className = "badge gone"; }
  }
  refreshSessions();
}

// ---------------------------------------------------------------- routing

function route() {
  const h = location.hash.replace(/^#/, "");
  const m = h.match(/^\/device\/(.+)$/);
  return m ? { device: decodeURIComponent(m[1]) } : { device: null };
}

function clearTimers() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  for (const s of state.streams) s.abort();
  state.streams = [];
}

async function render() {
  clearTimers();
  const view = $("#view");
  view.replaceChildren();
  const r = route();
  if (r.device) {
    view.append($("#device-template").content.cloneNode(true));
    refreshStatus();
    await renderDevice(r.device);
  } else {
    view.append($("#fleet-template").content.cloneNode(true));
    $("#filter").addEventListener("input", drawSessions);
    drawCluster();
    await Promise.all([refreshSessions(), refreshChannels(), refreshStatus()]);
    state.timers.push(setInterval(refreshSessions, 2000));
    state.timers.push(setInterval(refreshChannels, 2000));
    state.timers.push(setInterval(drawSessions, 1000));
  }
}

// ---------------------------------------------------------------- fleet view

async function refreshSessions() {
  const r = await api("/api/sessions");
  if (!r.ok) return;
  state.sessions = r.body.sessions;
  drawSessions();
  if (route().device) drawDeviceFacts();
}

function drawSessions() {
  const body = $("#sessions tbody");
  if (!body) return;
  const filter = ($("#filter")?.value || "").toLowerCase();
  const rows = state.sessions
    .filter((s) => !filter || s.device_id.toLowerCase().includes(filter))
    .map((s) => {
      const idle = Date.now() - s.last_activity_ms > 30000;
      const status = s.status === "connected" ? (idle ? "idle" : "connected") : s.status;
      const tr = el("tr", { class: "session-row", "data-device": s.device_id, onclick: () => (location.hash = "#/device/" + encodeURIComponent(s.device_id)) },
        el("td", {}, el("span", { class: "status " + status, text: status })),
        el("td", {}, el("a", { class: "device-link", href: "#/device/" + encodeURIComponent(s.device_id), text: s.device_id })),
        el("td", { text: s.transport }),
        el("td", { class: "wide muted", text: s.peer }),
        el("td", { class: "wide", text: since(s.connected_since_ms), title: s.connected_since }),
        el("td", { class: "last-seen", text: ago(s.last_activity_ms), title: s.last_activity }),
        el("td", { class: "num", text: `${bytes(s.bytes_in)} ↓ ${bytes(s.bytes_out)} ↑`, title: `${s.frames_in} frames in, ${s.frames_out} out` }));
      return tr;
    });
  body.replaceChildren(...rows);
  $("#sessions-empty").hidden = state.sessions.length > 0;
  const tin = state.sessions.reduce((a, s) => a + s.bytes_in, 0);
  const tout = state.sessions.reduce((a, s) => a + s.bytes_out, 0);
  $("#stat-sessions").textContent = state.sessions.length;
  $("#stat-traffic").textContent = `${bytes(tin)} / ${bytes(tout)}`;
}

async function refreshChannels() {
  const r = await api("/api/channels");
  if (!r.ok) return;
  state.channels = r.body.channels;
  ensureSubscriptions();
  drawChannels();
}

function sparkline(values) {
  const w = 300, h = 40, n = Math.max(values.length, 2);
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i / (n - 1)) * w},${h - 2 - (v / max) * (h - 6)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "publications per second, last minute");
  const base = document.createElementNS(svg.namespaceURI, "line");
  Object.entries({ x1: 0, y1: h - 1, x2: w, y2: h - 1, stroke: "#e3e7ee" }).forEach(([k, v]) => base.setAttribute(k, v));
  svg.append(base);
  if (values.length > 1) {
    const area = document.createElementNS(svg.namespaceURI, "polygon");
    area.setAttribute("points", `0,${h - 1} ${pts} ${((values.length - 1) / (n - 1)) * w},${h - 1}`);
    area.setAttribute("fill", "rgba(37,99,235,.12)");
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("points", pts);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#2563eb");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(area, line);
  }
  return svg;
}

function drawChannels() {
  const box = $("#channels");
  if (!box) return;
  const total = state.channels.reduce((a, c) => a + c.rate_per_s, 0);
  $("#stat-rate").textContent = total.toFixed(total < 10 ? 1 : 0);
  $("#stat-channels").textContent = state.channels.length;
  box.replaceChildren(...state.channels.map((c) => {
    const p = state.latest.get(c.name);
    const flags = [c.retain ? "retained" : null, c.keyed ? "keyed" : null].filter(Boolean).join(", ");
    return el("div", { class: "channel", "data-channel": c.name },
      el("span", { class: "rate", text: c.rate_per_s.toFixed(1) + "/s" }),
      el("div", { class: "name", text: c.name }),
      el("div", { class: "meta", text: `${c.type} · ${c.subscribers} subscriber${c.subscribers === 1 ? "" : "s"} · ${c.published} published${flags ? " · " + flags : ""}` }),
      sparkline(c.history),
      el("div", { class: "latest", "data-latest": c.name, text: p ? (p.publisher ? p.publisher + ": " : "") + compact(p.value) : "no publication seen yet" }));
  }));
}

// ---------------------------------------------------------------- cluster

async function refreshStatus() {
  const r = await api("/api/status");
  if (!r.ok) return;
  state.cluster = r.body.cluster;
  drawCluster();
}

// The header's pill on every view, and the fleet view's card; nothing for
// a server alone.
function drawCluster() {
  const c = state.cluster;
  const clustered = c && c.mode !== "single";
  const pill = $("#cluster");
  pill.hidden = !clustered;
  const card = $("#cluster-card");
  if (card) card.hidden = !clustered;
  if (!clustered) return;
  const degraded = c.mode === "degraded";
  pill.className = "cluster " + c.mode;
  pill.title = degraded ? "cluster: degraded (unreachable; local traffic only)" : "cluster: connected";
  $("#cluster-text").textContent = `node ${c.node_id} · ${c.mode}`;
  if (!card) return;
  const badge = $("#cluster-mode");
  badge.textContent = c.mode;
  badge.className = "badge " + c.mode;
  $("#cluster-warning").hidden = !degraded;
  const items = [
    ["Node", c.node_id],
    ["Publications out / in", `${c.publications_out} / ${c.publications_in}`],
    ["Retained out / in", `${c.retained_out} / ${c.retained_in}`],
    ["Calls out / in", `${c.calls_out} / ${c.calls_in}`],
    ["Messages sent", String(c.messages_sent)],
    ["Publications not sent", String(c.publications_dropped)],
    ["Link lost / resynchronised", `${c.disconnects} / ${c.resyncs}`],
    ["Sessions replaced", String(c.sessions_replaced)],
  ];
  $("#cluster-facts").replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

// ---------------------------------------------------------------- device view

async function loadSchema() {
  if (state.schema) return state.schema;
  const r = await api("/api/schema");
  if (r.ok) state.schema = r.body;
  return state.schema;
}

function drawDeviceFacts() {
  const device = route().device;
  const s = state.sessions.find((x) => x.device_id === device);
  const facts = $("#device-facts");
  if (!facts) return;
  const badge = $("#device-status");
  if (!s) {
    badge.textContent = "disconnected";
    badge.className = "badge gone";
    return;
  }
  badge.textContent = "connected";
  badge.className = "badge";
  const items = [
    ["Transport", s.transport], ["Peer", s.peer],
    ["Connected", since(s.connected_since_ms)], ["Last seen", ago(s.last_activity_ms)],
    ["Bytes in / out", `${bytes(s.bytes_in)} / ${bytes(s.bytes_out)}`],
    ["Frames in / out", `${s.frames_in} / ${s.frames_out}`],
    ["Principal", s.properties?.principal ?? "–"], ["Refused types", s.refused_types.length ? s.refused_types.map((t) => t.name).join(", ") : "none"],
  ];
  facts.replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function retainedId(channel, key) {
  return "retained-" + (channel + (key ? "-" + key : "")).replace(/[^A-Za-z0-9_-]/g, "_");
}

function renderRetainedValue(p) {
  const box = $("#retained");
  if (!box) return;
  $("#retained-empty").hidden = true;
  const id = retainedId(p.channel, p.key);
  let item = document.getElementById(id);
  const pre = el("pre", { class: "json", text: JSON.stringify(p.value, null, 2) });
  const head = el("div", { class: "head" },
    el("span", {}, el("b", { text: p.channel }), p.key ? " · key " + p.key : ""),
    el("span", { text: new Date(p.timestamp_ms).toLocaleTimeString() }));
  if (item) {
    const before = item.querySelector("pre").textContent;
    item.replaceChildren(head, pre);
    if (before !== pre.textContent) {
      item.classList.remove("flash");
      void item.offsetWidth;
      item.classList.add("flash");
    }
  } else {
    item = el("div", { class: "value", id, "data-channel": p.channel, "data-key": p.key ?? "" }, head, pre);
    box.append(item);
  }
}

async function renderDevice(device) {
  $("#device-name").textContent = device;
  $("#device-title").textContent = device;
  const [schema, detail] = await Promise.all([loadSchema(), api("/api/sessions/" + encodeURIComponent(device)), refreshSessions(), refreshChannels()]);
  drawDeviceFacts();
  state.timers.push(setInterval(refreshSessions, 2000));
  // Retained values this device published, then live ones.
  if (schema) {
    for (const c of schema.channels.filter((c) => c.retain)) {
      const r = await api(`/api/channels/${encodeURIComponent(c.name)}/retained`);
      if (!r.ok) continue;
      for (const v of r.body.values) {
        if (v.publisher === device) {
          renderRetainedValue(v);
          if (!state.byDevice.has(device)) state.byDevice.set(device, new Map());
          state.byDevice.get(device).set(v.channel + "|" + (v.key ?? ""), v);
        }
      }
    }
  }
  for (const p of state.byDevice.get(device)?.values() || []) renderRetainedValue(p);
  const methods = $("#methods");
  if (!detail.ok || !schema) {
    $("#methods-empty").hidden = false;
    $("#methods-empty").textContent = detail.body?.error?.message || "The device is not connected.";
    return;
  }
  const served = (detail.body.services || []).filter((s) => s.known);
  $("#methods-empty").hidden = served.length > 0;
  for (const svc of served) {
    const def = schema.services.find((s) => s.name === svc.name);
    if (!def) continue;
    for (const m of def.methods) {
      const peer = svc.methods.find((x) => x.id === m.id);
      if (!peer) continue;
      methods.append(methodForm(device, def, m, peer.compatible));
    }
  }
}

function methodForm(device, svc, m, compatible) {
  const result = el("div", { class: "result", id: "result-" + m.name, "aria-live": "polite" });
  const text = el("textarea", { id: "req-" + m.name, spellcheck: "false", "aria-label": m.name + " request (JSON)" });
  text.value = JSON.stringify(m.example, null, 2);
  text.rows = Math.min(14, text.value.split("\n").length + 1);
  const streaming = m.kind === "server_streaming";
  const unsupported = m.kind === "client_streaming" || m.kind === "bidirectional";
  const button = el("button", { type: "submit", id: "call-" + m.name, text: streaming ? "Start stream" : "Call" });
  const stop = el("button", { type: "button", class: "secondary", text: "Stop", hidden: "" });
  if (unsupported || !compatible) button.disabled = true;
  const form = el("form", { class: "method", id: `form-${svc.name}-${m.name}`.replace(/[^A-Za-z0-9_-]/g, "_") },
    el("header", {}, el("b", { text: m.name }), el("span", { class: "kind", text: m.kind.replace("_", " ") }),
      el("span", { class: "muted", text: `${m.request} → ${m.response ?? "(no reply)"}` }),
      m.docs ? el("span", { class: "doc", text: m.docs }) : null,
      !compatible ? el("span", { class: "doc", text: "The device defines this method differently." }) : null),
    text,
    el("div", { class: "actions" }, button, stop),
    result);
  const url = `/api/devices/${encodeURIComponent(device)}/rpc/${encodeURIComponent(svc.name)}/${encodeURIComponent(m.name)}`;
  const show = (ok, code, body) => {
    result.className = "result " + (ok ? "ok" : "err");
    result.replaceChildren(el("div", { class: "code", text: code }), el("pre", { text: typeof body === "string" ? body : JSON.stringify(body, null, 2) }));
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let body;
    try { body = JSON.stringify(JSON.parse(text.value || "{}")); } catch (e) { show(false, "invalid JSON", String(e.message)); return; }
    button.disabled = true;
    try {
      if (streaming) await runStream(url, body, show, stop);
      else {
        const t0 = performance.now();
        const r = await api(url, { method: "POST", body, headers: { "Content-Type": "application/json" } });
        const ms = Math.round(performance.now() - t0);
        show(r.ok, `${r.status} ${r.ok ? "OK" : (r.body?.error?.code || "")} · ${ms} ms`, r.body);
      }
    } catch (e) {
      show(false, "failed", String(e));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function runStream(url, body, show, stop) {
  const ctl = new AbortController();
  state.streams.push(ctl);
  stop.hidden = false;
  stop.onclick = () => ctl.abort();
  const items = [];
  try {
    const r = await fetch(url, { method: "POST", body, signal: ctl.signal, headers: headers({ "Content-Type": "application/json", Accept: "application/x-ndjson" }) });
    if (!r.ok) { show(false, String(r.status), await r.json().catch(() => "")); return; }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const item = JSON.parse(line);
        if (item.error) { show(false, `${item.error.status} ${item.error.code}`, item); return; }
        items.unshift(item);
        if (items.length > 5) items.pop();
        show(true, `streaming · ${items.length} latest item(s)`, items);
      }
    }
    show(true, "stream ended", items);
  } catch (e) {
    if (e.name === "AbortError") show(true, "stopped", items);
    else throw e;
  } finally {
    stop.hidden = true;
  }
}

// ---------------------------------------------------------------- start

$("#token").value = state.token;
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  localStorage.setItem("isml-token", state.token);
  banner("");
  state.schema = null;
  if (state.ws) state.ws.close();
  render();
});
window.addEventListener("hashchange", render);
connectWs();
render();
setInterval(refreshStatus, 2000);
