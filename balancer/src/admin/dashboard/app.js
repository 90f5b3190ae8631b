// balancer's dashboard: reads /status each second, keeps a short history
// of it in memory for rates, sparklines and health strips, and calls the
// admin API's backend actions. No library; every element is made with the
// DOM API (the Content-Security-Policy allows no inline script or style).
"use strict";

const POLL_MS = 1000;
const HISTORY = 60;
const KEY = "balancer-admin-token";

const state = { token: null, history: [], timer: null, health: new Map() };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(head, rows, label) {
  const t = el("table", { "aria-label": label });
  t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const r of rows) body.append(el("tr", {}, ...r.map((c) => el("td", {}, c))));
  t.append(body);
  return el("div", { class: "scroll" }, t);
}

function empty(text) {
  return el("p", { class: "empty" }, text);
}

// A sparkline of `values` as an SVG polyline.
function spark(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${HISTORY} 20`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${i + HISTORY - values.length},${(20 - (v / max) * 18 - 1).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

// Per-second rates of a counter, from the kept snapshots.
function rates(pick) {
  const out = [];
  for (let i = 1; i < state.history.length; i++) {
    const a = state.history[i - 1], b = state.history[i];
    const dt = (b.written_ms - a.written_ms) / 1000;
    const va = pick(a), vb = pick(b);
    out.push(dt > 0 && va !== undefined && vb !== undefined && vb >= va ? (vb - va) / dt : 0);
  }
  return out;
}

function rateCell(pick, label) {
  const r = rates(pick);
  const now = r.length ? r[r.length - 1] : 0;
  return el("span", { class: "rate" }, spark(r, label), ` ${now.toFixed(1)}/s`);
}

function badge(s) {
  return el("span", { class: `badge ${s}` }, s);
}

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function act(pool, backend, verb) {
  const path = `/backends/${encodeURIComponent(pool)}/${encodeURIComponent(backend)}/${verb}`;
  const r = await fetch(path, { method: "POST", headers: headers() });
  const body = await r.json().catch(() => ({}));
  notice(r.ok ? `${backend} in ${pool}: ${body.state}` : `refused: ${body.error || r.status}`, !r.ok);
  poll();
}

function notice(text, bad) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = bad ? "bad" : "";
  n.hidden = false;
}

function actions(pool, b) {
  const weight = el("input", { type: "number", min: "0", max: "10000", placeholder: "weight", "aria-label": `new weight of ${b.address}`, class: "weight" });
  const go = (verb) => () => act(pool, b.address, verb);
  return el("span", { class: "actions" },
    el("button", { type: "button", onclick: go("drain"), "aria-label": `drain ${b.address}` }, "Drain"),
    el("button", { type: "button", onclick: go("enable"), "aria-label": `enable ${b.address}` }, "Enable"),
    el("button", { type: "button", onclick: go("disable"), "aria-label": `disable ${b.address}` }, "Disable"),
    weight,
    el("button", { type: "button", onclick: () => weight.value !== "" && act(pool, b.address, `weight/${weight.value}`), "aria-label": `set the weight of ${b.address}` }, "Set"));
}

function healthStrip(key) {
  const strip = el("span", { class: "strip", "aria-label": "recent states" });
  for (const s of state.health.get(key) || []) strip.append(el("span", { class: `tick ${s}`, title: s }));
  return strip;
}

function render(s) {
  const age = ((Date.now() - s.written_ms) / 1000).toFixed(1);
  document.getElementById("summary").textContent = `pid ${s.pid} · started: ${s.started || "fresh"} · snapshot ${age} s old`;
  const find = (name) => (x) => x.name === name;

  document.getElementById("listeners").replaceChildren(s.listeners.length ? table(
    ["listener", "address", "protocol", "mode", "plane", "accepted"],
    s.listeners.map((l) => [l.name, l.address, l.protocol, l.mode, badge(l.plane),
      rateCell((x) => (x.listeners.find(find(l.name)) || {}).counters?.accepted, `${l.name} connections per second`)]),
    "listeners") : empty("no listeners"));

  const pools = document.getElementById("pools");
  // Someone typing a weight keeps their field: this tick leaves the pools be.
  if (!pools.contains(document.activeElement) || document.activeElement.tagName !== "INPUT") {
    renderPools(pools, s, find);
  }

  renderRest(s, find);
}

function renderPools(pools, s, find) {
  pools.replaceChildren();
  for (const p of s.pools) {
    pools.append(el("h3", {}, `${p.name} `, el("small", {}, p.algorithm)));
    pools.append(p.backends.length ? table(
      ["backend", "state", "weight", "active", "rate", "last check", "history", "actions"],
      p.backends.map((b) => [
        el("span", {}, b.address, b.origin && b.origin !== "static" ? el("small", {}, ` (${b.origin})`) : null),
        badge(b.state), b.weight, b.active,
        rateCell((x) => (x.pools.find(find(p.name))?.backends.find((y) => y.address === b.address) || {}).total, `${b.address} connections per second`),
        b.last_check_us !== null && b.last_check_us !== undefined ? `ok ${(b.last_check_us / 1000).toFixed(1)} ms` : (b.last_check_error ? `failed: ${b.last_check_error}` : "—"),
        healthStrip(`${p.name}/${b.address}`),
        actions(p.name, b)]),
      `backends of ${p.name}`) : empty("no backends yet"));
  }
}

function renderRest(s, find) {
  const routes = [];
  for (const l of s.listeners) for (const r of l.routes || []) {
    const klass = (x, c) => {
      const rr = (x.listeners.find(find(l.name))?.routes || []).find((y) => y.name === r.name);
      if (!rr) return undefined;
      return Object.entries(rr.codes).filter(([code]) => String(code)[0] === c).reduce((a, [, n]) => a + n, 0);
    };
    routes.push([l.name, r.name, ...["2", "3", "4", "5"].map((c) => rateCell((x) => klass(x, c), `${r.name} ${c}xx per second`))]);
  }
  document.getElementById("routes").replaceChildren(routes.length ? table(["listener", "route", "2xx", "3xx", "4xx", "5xx"], routes, "HTTP routes") : empty("no HTTP routes"));

  const certs = [];
  for (const l of s.listeners) for (const c of l.tls?.certificates || []) {
    const days = c.expires_in_s / 86400;
    certs.push([l.name, c.names.join(", "), c.file, el("span", { class: days < 14 ? "bad" : "" }, `${days.toFixed(1)} days`)]);
  }
  document.getElementById("tls").replaceChildren(certs.length ? table(["listener", "names", "file", "expires in"], certs, "certificates") : empty("no TLS listeners"));

  const xdp = document.getElementById("xdp");
  if (s.xdp) {
    const counters = Object.entries(s.xdp.counters).filter(([, v]) => v > 0)
      .map(([k]) => [k, rateCell((x) => x.xdp?.counters[k], `${k} per second`), s.xdp.counters[k]]);
    const drops = [];
    for (const [listener, by] of Object.entries(s.xdp.guard)) for (const [why, n] of Object.entries(by)) drops.push([listener, why, n]);
    const log = s.xdp.log || { level: "off", lines: {}, suppressed: 0 };
    const written = Object.values(log.lines).reduce((a, n) => a + n, 0);
    xdp.replaceChildren(el("p", {}, `on ${s.xdp.interface} (${s.xdp.attach}); kernel diagnostics ${log.level}, ${written} lines, ${log.suppressed} suppressed`),
      counters.length ? table(["counter", "rate", "total"], counters, "XDP counters") : empty("no packets yet"),
      drops.length ? table(["listener", "guard drop", "packets"], drops, "guard drops") : empty("no guard drops"));
  } else xdp.replaceChildren(empty("the XDP plane is not attached"));

  const vips = s.announce?.vips || [];
  document.getElementById("announce").replaceChildren(vips.length ? table(["VIP", "announced", "why"],
    vips.map((v) => [v.address, badge(v.announced ? "announced" : "withdrawn"), v.reason]), "announced VIPs") : empty("no announcements configured"));

  const sources = s.discovery?.sources || [];
  document.getElementById("discovery").replaceChildren(sources.length ? table(["source", "target", "pools", "backends", "changes", "error"],
    sources.map((d) => [d.source, d.target, d.pools.join(", "), d.backends, d.changes, d.last_error || "—"]), "discovery sources") : empty("no pool discovers backends"));
}

function remember(s) {
  state.history.push(s);
  if (state.history.length > HISTORY + 1) state.history.shift();
  for (const p of s.pools) for (const b of p.backends) {
    const key = `${p.name}/${b.address}`;
    const h = state.health.get(key) || [];
    h.push(b.state);
    if (h.length > 30) h.shift();
    state.health.set(key, h);
  }
}

function askToken(message) {
  document.getElementById("main").hidden = true;
  document.getElementById("token-form").hidden = false;
  document.getElementById("token-error").textContent = message;
  document.getElementById("summary").textContent = "the admin API wants a token";
  document.getElementById("token").focus();
}

async function poll() {
  let r;
  try {
    r = await fetch("/status", { headers: headers(), cache: "no-store" });
  } catch (e) {
    document.getElementById("summary").textContent = `cannot reach the daemon: ${e.message}`;
    return;
  }
  if (r.status === 401) {
    const body = await r.json().catch(() => ({}));
    askToken(body.error || "token refused");
    return;
  }
  if (!r.ok) {
    document.getElementById("summary").textContent = `status: HTTP ${r.status}`;
    return;
  }
  const s = await r.json();
  document.getElementById("token-form").hidden = true;
  document.getElementById("main").hidden = false;
  remember(s);
  render(s);
}

function start() {
  // A token may come in the fragment (never sent to the server), once.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem(KEY);
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = document.getElementById("token").value;
    sessionStorage.setItem(KEY, state.token);
    poll();
  });
  poll();
  state.timer = setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
