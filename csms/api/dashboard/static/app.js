// The operator dashboard: plain JavaScript over the REST API (/api/v1) and its live events stream.
// No build step and no framework; charts are SVG drawn here. Server times are the CSMS clock (a simulated
// one in a scenario run), so "now" is the time the server states, never the browser's.
"use strict";

const API = "/api/v1";
const RANK = { driver: 0, viewer: 1, operator: 2, admin: 3 };
const CHART_PAST_H = 3;       // measured load shown before now
const CHART_AHEAD_H = 9;      // forecast shown after now
const BOOKING_WINDOW_H = 24;  // the bookings timeline
// one colour per circuit, the same for its limit, its measured load and its planned load
const CIRCUIT_COLOURS = ["#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#283593", "#ef6c00"];

const state = {
  key: sessionStorage.getItem("csms-key") || "",
  me: null, siteId: null, sites: [], stations: [], plan: null, tariffs: null, now: null,
  history: {},               // site id -> [{t: ms, load_w, limit_w, circuits: {name: load_w}}] seen since the page opened
  served: {},                // site id -> [{a: ms, b: ms, load_w, limit_w}] metered before (GET /sites/{id}/load-history)
  live: null, refreshTimer: null, dirty: new Set(),
};

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
};
const kw = (w) => (w === null || w === undefined ? "–" : (w / 1000).toFixed(1) + " kW");
const kwh = (wh) => (wh === null || wh === undefined ? "–" : (wh / 1000).toFixed(2) + " kWh");
const time = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "–");
const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const may = (role) => state.me && RANK[state.me.role] >= RANK[role] && state.me.role !== "driver";

// ------------------------------------------------------------------------------------------ API calls
async function api(path, opts = {}) {
  const headers = { Accept: "application/json", ...(opts.body ? { "Content-Type": "application/json" } : {}) };
  if (state.key) headers["X-API-Key"] = state.key;
  const r = await fetch(API + path, { ...opts, headers, body: opts.body ? JSON.stringify(opts.body) : undefined });
  if (r.status === 204) return null;
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = body?.error?.message || String(body);
    const err = new Error(`${opts.method || "GET"} ${path}: ${r.status} ${msg}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

async function allPages(path) {
  const sep = path.endsWith("?") ? "" : path.includes("?") ? "&" : "?";
  let offset = 0, items = [];
  for (;;) {
    const page = await api(`${path}${sep}offset=${offset}&limit=500`);
    items = items.concat(page.items);
    if (page.next_offset === null) return items;
    offset = page.next_offset;
  }
}

function showError(e) {
  const p = $("#error");
  p.textContent = e.message || String(e);
  p.hidden = false;
  clearTimeout(showError.t);
  showError.t = setTimeout(() => (p.hidden = true), 8000);
}

async function act(label, fn) {
  try {
    const r = await fn();
    if (r && r.status && !["Accepted", "Unlocked", "Scheduled"].includes(r.status) && r.data !== undefined) {
      showError(new Error(`${label}: the charger answered ${r.status}${r.detail ? " (" + r.detail + ")" : ""}`));
    }
    schedule(["all"]);
    return r;
  } catch (e) { showError(e); return null; }
}

// -------------------------------------------------------------------------------------------- login
async function login() {
  try {
    state.me = await api("/me");
  } catch (e) {
    state.me = null;
    $("#app").hidden = true;
    $("#login").hidden = false;
    $("#logout").hidden = true;
    $("#who").textContent = "";
    if (e.status === 401) { if (state.key) showError(new Error("that API key is not known")); }
    else showError(e);
    return;
  }
  if (state.me.role === "driver") {
    showError(new Error("a driver's key sees only its own sessions and bookings: use the API (/docs)"));
    return;
  }
  $("#who").textContent = `${state.me.name} · ${state.me.role}`;
  $("#who").dataset.role = state.me.role;
  $("#login").hidden = true;
  $("#logout").hidden = state.me.name === "anonymous";  // an API without keys: everyone is admin
  document.body.classList.toggle("viewer", !may("operator"));
  applyRole(document);
  $("#app").hidden = false;
  await loadSites();
  connectLive();
}

// Buttons and inputs marked data-role="operator" work only for operators and admins; a viewer sees them
// disabled, with the reason as a tooltip (the API refuses them anyway, 403).
function applyRole(root) {
  for (const e of root.querySelectorAll('[data-role="operator"]')) {
    const ok = may("operator");
    for (const c of e.matches("button, input, select") ? [e] : e.querySelectorAll("button, input, select")) {
      c.disabled = !ok;
      if (!ok) c.title = `needs the operator role; this key is ${state.me.role}`;
    }
  }
}

// ----------------------------------------------------------------------------------------- refreshes
function schedule(what) {
  for (const w of what) state.dirty.add(w);
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    const dirty = new Set(state.dirty);
    state.dirty.clear();
    const all = dirty.has("all");
    const jobs = [];
    if (all || dirty.has("site")) jobs.push(loadSite());
    // the timeline's rows are the stations' EVSEs: bookings are drawn once the stations are known
    const stations = all || dirty.has("stations") ? loadStations() : Promise.resolve();
    jobs.push(stations.then(loadSessions));
    if (all || dirty.has("bookings")) jobs.push(stations.then(loadBookings));
    await Promise.all(jobs.map((j) => j.catch(showError)));
  }, 300);
}

async function loadSites() {
  state.sites = (await api("/sites?limit=1000")).items;
  const sel = $("#site");
  sel.replaceChildren(...state.sites.map((s) => el("option", { value: s.site_id }, s.site_id)));
  state.siteId = state.siteId && state.sites.some((s) => s.site_id === state.siteId) ? state.siteId : state.sites[0]?.site_id;
  sel.value = state.siteId;
  try { state.tariffs = await api("/tariffs"); } catch { state.tariffs = null; }
  renderPrices();
  schedule(["all"]);
  loadInvoices().catch(showError);
}

async function loadSite() {
  const siteId = state.siteId;
  const [site, plan] = await Promise.all([api(`/sites/${enc(siteId)}`), api(`/sites/${enc(siteId)}/plan`),
    state.served[siteId] ? null : loadHistory(siteId)]);
  state.plan = plan.planned ? plan : null;
  state.now = Date.parse(site.at || plan.start || new Date().toISOString());
  const h = (state.history[siteId] ||= []);
  const circuits = Object.fromEntries((site.circuits || []).map((c) => [c.name, c.load_w]));
  if (!h.length || state.now > h[h.length - 1].t) h.push({ t: state.now, load_w: site.load_w, limit_w: site.limit_w, circuits });
  while (h.length > 5000) h.shift();
  $("#site-summary").textContent = `${kw(site.load_w)} of ${kw(site.limit_w)} (${site.binding_limit || "no limit"}), ` +
    `headroom ${kw(site.headroom_w)} · ${site.online}/${site.stations} stations online · ` +
    `${site.active_sessions} sessions · ${time(site.at)}` + (site.external_limit_kw !== null ?
      ` · external cap ${site.external_limit_kw} kW` : "");
  $("#circuits tbody").replaceChildren(...(site.circuits || []).map((c) => el("tr", {},
    el("td", {}, c.name + (c.parent ? ` (in ${c.parent})` : "")), el("td", { class: "num" }, kw(c.load_w)),
    el("td", { class: "num" }, kw(c.limit_w)), el("td", { class: "num" }, kw(c.headroom_w)))));
  if (!site.circuits?.length) $("#circuits tbody").replaceChildren(el("tr", {}, el("td", { colspan: 4 }, "none")));
  drawChart(site);
}

// The measured load before the page opened: the server's metered buckets (the site-load meter, oldest first),
// read once per site; the page adds what it sees live after them.
async function loadHistory(siteId) {
  const buckets = await allPages(`/sites/${enc(siteId)}/load-history?`);
  state.served[siteId] = buckets.map((x) => ({ a: Date.parse(x.start), b: Date.parse(x.end), load_w: x.load_w,
    limit_w: x.limit_w }));
}

async function loadStations() {
  state.stations = await allPages(`/stations?site_id=${enc(state.siteId)}`);
  $("#stations tbody").replaceChildren(...state.stations.map(stationRow));
  const sel = $("#b-station");
  const keep = sel.value;
  sel.replaceChildren(...state.stations.flatMap((s) => evses(s).map((e) =>
    el("option", { value: `${s.id}|${e}` }, `${s.id} / ${e}`))));
  if (keep) sel.value = keep;
  applyRole($("#stations"));
}

function evses(station) {
  const ids = [...new Set(station.connectors.map((c) => c.evse_id))];
  return ids.length ? ids.sort((a, b) => a - b) : [1];
}

function stationRow(s) {
  const connectors = s.connectors.length ? s.connectors.map((c) => el("span", {
    class: `st st-${s.online ? c.status : "Offline"}`, "data-status": c.status,
    title: `EVSE ${c.evse_id} connector ${c.connector_id}: ${c.status}${c.error_code && c.error_code !== "NoError" ?
      " (" + c.error_code + ")" : ""} since ${time(c.at)}` }, `${c.evse_id}: ${c.status}`)) : ["–"];
  const unavailable = s.connectors.some((c) => c.status === "Unavailable");
  return el("tr", { "data-station": s.id },
    el("td", {}, s.id, el("br"), el("small", {}, [s.vendor, s.model].filter(Boolean).join(" "))),
    el("td", { class: s.online ? "online" : "offline" }, s.online ? "online" : "offline"),
    el("td", {}, s.protocol || "–"),
    el("td", {}, connectors),
    el("td", { "data-role": "operator" },
      el("button", { type: "button", "data-role": "operator", "data-action": "start", onclick: () => remoteStart(s) }, "Start"),
      " ",
      el("button", { type: "button", "data-role": "operator", "data-action": "availability", onclick: () =>
        act("availability", () => api(`/stations/${enc(s.id)}/commands/availability`,
          { method: "POST", body: { operative: unavailable } })) }, unavailable ? "Make available" : "Make unavailable"),
      " ",
      el("button", { type: "button", "data-role": "operator", "data-action": "reset", onclick: () => {
        if (confirm(`Reset ${s.id}?`)) act("reset", () => api(`/stations/${enc(s.id)}/commands/reset`,
          { method: "POST", body: { hard: false } }));
      } }, "Reset")));
}

function remoteStart(s) {
  const token = prompt(`Start a session on ${s.id} for which id token?`);
  if (token) act("remote start", () => api(`/stations/${enc(s.id)}/commands/remote-start`,
    { method: "POST", body: { id_token: token } }));
}

async function loadSessions() {
  const ids = new Set(state.stations.map((s) => s.id));
  const sessions = (await allPages("/sessions?active=true")).filter((x) => ids.has(x.station_id));
  const planned = new Map((state.plan?.sessions || []).map((p) => [`${p.station_id}/${p.transaction_id}`, p]));
  $("#sessions tbody").replaceChildren(...sessions.map((x) => {
    const p = planned.get(`${x.station_id}/${x.transaction_id}`);
    const ov = x.overstay;
    return el("tr", { "data-session": x.key },
      el("td", {}, `${x.station_id} / ${x.evse_id}`),
      el("td", {}, x.id_token || "–"),
      el("td", { class: "num" }, kw(x.power_w)),
      el("td", { class: "num" }, kwh(x.energy_wh)),
      el("td", { class: "num" }, x.soc_pct === null ? "–" : x.soc_pct.toFixed(0) + " %"),
      el("td", {}, p?.departure ? `${time(p.departure)} (${p.departure_source})` : "–"),
      el("td", { class: "num" }, x.cost_so_far === null ? "–" : `${x.cost_so_far} ${x.currency || ""}`),
      el("td", { class: ov ? `ov-${ov.phase}` : "" }, ov ? `${ov.phase}${ov.minutes ? ", " + ov.minutes + " min, " +
        ov.fee + " " + ov.currency : ""}` : "–"),
      el("td", { "data-role": "operator" }, el("button", { type: "button", "data-role": "operator", "data-action": "stop",
        onclick: () => act("remote stop", () => api(`/stations/${enc(x.station_id)}/commands/remote-stop`,
          { method: "POST", body: { transaction_id: x.transaction_id } })) }, "Stop")));
  }));
  if (!sessions.length) $("#sessions tbody").replaceChildren(el("tr", {}, el("td", { colspan: 9 }, "no active sessions")));
  applyRole($("#sessions"));
}

async function loadBookings() {
  const bookings = await allPages(`/bookings?site_id=${enc(state.siteId)}`);
  const open = bookings.filter((b) => ["Confirmed", "Reserved", "Active"].includes(b.status));
  $("#bookings tbody").replaceChildren(...open.map((b) => el("tr", { "data-booking": b.id },
    el("td", {}, String(b.id)), el("td", {}, `${b.station_id} / ${b.evse_id}`), el("td", {}, b.id_token),
    el("td", {}, time(b.start)), el("td", {}, time(b.end)),
    el("td", { class: "num" }, b.energy_kwh === null ? "–" : `${b.guaranteed_energy_kwh ?? b.energy_kwh}/${b.energy_kwh} kWh`),
    el("td", {}, el("span", { class: `st st-${b.status === "Reserved" ? "Reserved" : b.status === "Active" ? "Charging" : "Available"}` }, b.status)),
    el("td", { "data-role": "operator" }, b.status === "Active" ? "" : el("button", { type: "button", "data-role": "operator",
      "data-action": "cancel", onclick: () => act("cancel booking", () => api(`/bookings/${b.id}`, { method: "DELETE" })
        .then((r) => { schedule(["bookings", "stations"]); return r; })) }, "Cancel")))));
  if (!open.length) $("#bookings tbody").replaceChildren(el("tr", {}, el("td", { colspan: 8 }, "no open bookings")));
  applyRole($("#bookings"));
  drawTimeline(bookings);
}

async function loadInvoices() {
  const q = new URLSearchParams({ site_id: state.siteId });
  const since = $("#i-since").value, until = $("#i-until").value;
  if (since) q.set("since", new Date(since + "T00:00").toISOString());
  if (until) q.set("until", new Date(until + "T00:00").toISOString());
  const [page, rev] = await Promise.all([api(`/invoices?${q}&limit=200`), api(`/reports/revenue?${q}`)]);
  $("#revenue").textContent = `${rev.sessions} sessions, ${rev.energy_kwh} kWh, revenue ${rev.total} ${rev.currency} ` +
    `(tax ${rev.tax}, overstay fees ${rev.overstay_fee}, ${rev.overstay_minutes} min)` +
    (page.next_offset !== null ? " · the table shows the latest 200" : "");
  $("#invoices tbody").replaceChildren(...page.items.map((i) => el("tr", {},
    el("td", {}, `${i.station_id} / ${i.transaction_id}`), el("td", {}, i.id_token || "–"), el("td", {}, time(i.session_end)),
    el("td", { class: "num" }, kwh(Number(i.energy_wh))), el("td", { class: "num" }, `${i.overstay_minutes} min ${i.overstay_fee}`),
    el("td", { class: "num" }, `${i.total} ${i.currency}`))));
}

async function exportCsv() {
  const q = new URLSearchParams({ site_id: state.siteId });
  const since = $("#i-since").value, until = $("#i-until").value;
  if (since) q.set("since", new Date(since + "T00:00").toISOString());
  if (until) q.set("until", new Date(until + "T00:00").toISOString());
  const r = await fetch(`${API}/invoices/export.csv?${q}`, { headers: state.key ? { "X-API-Key": state.key } : {} });
  if (!r.ok) return showError(new Error(`CSV export: ${r.status}`));
  const a = el("a", { href: URL.createObjectURL(await r.blob()), download: `invoices-${state.siteId}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
}

function renderPrices() {
  const t = state.tariffs;
  if (!t) { $("#prices").textContent = "billing is off"; return; }
  const d = t.default;
  $("#prices").replaceChildren(
    el("div", {}, `energy ${d.energy_price_per_kwh} ${t.currency}/kWh, session fee ${d.session_fee}, tax ${d.tax_rate}`),
    el("div", {}, "time of use: ", d.tou_windows.length ? d.tou_windows.map((w) =>
      `${w.name || "window"} ${w.start}–${w.end} ${w.price_per_kwh}`).join("; ") : "none", ` (${d.timezone})`),
    el("div", {}, "demand tiers (dashed in the chart): ", d.demand_tiers.length ? d.demand_tiers.map((x) =>
      `${x.name} from ${Math.round(Number(x.from_utilisation) * 100)} % ×${x.multiplier}`).join("; ") : "none"),
    t.overstay ? el("div", {}, `overstay: ${t.overstay.fee_per_minute} ${t.currency}/min after ${t.overstay.grace_min} min`) : "");
}

// -------------------------------------------------------------------------------------------- charts
const SVGNS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, text) => {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

function drawChart(site) {
  const W = 960, H = 300, L = 48, R = 12, T = 12, B = 24;
  const now = state.now;
  // The past shown: at least CHART_PAST_H, up to a day of what the server metered and the page has seen since.
  const seen = state.history[state.siteId] || [];
  const served = (state.served[state.siteId] || []).filter((x) => !seen.length || x.b <= seen[0].t + 1);
  const first = Math.min(served.length ? served[0].a : now, seen.length ? seen[0].t : now);
  const t0 = Math.max(now - 24 * 3600e3, Math.min(now - CHART_PAST_H * 3600e3, first));
  const t1 = now + CHART_AHEAD_H * 3600e3;
  const hist = seen.filter((p) => p.t >= t0);
  const past = served.filter((x) => x.b > t0);
  const slots = (state.plan?.forecast || []).map((f, i, a) => ({
    a: Date.parse(f.start), b: i + 1 < a.length ? Date.parse(a[i + 1].start) : Date.parse(f.start) + state.plan.slot_s * 1000,
    i, load_w: f.load_w, limit_w: f.limit_w, binding: f.binding_limit })).filter((s) => s.b > now && s.a < t1);
  const circuits = (site.circuits || []).map((c, k) => ({ ...c, colour: CIRCUIT_COLOURS[k % CIRCUIT_COLOURS.length],
    planned: circuitPlan(c, slots) }));
  const top = Math.max(1000, site.limit_w || 0, ...hist.map((p) => Math.max(p.load_w, p.limit_w || 0)),
    ...past.map((p) => Math.max(p.load_w, p.limit_w || 0)), ...slots.map((s) => Math.max(s.load_w, s.limit_w || 0)),
    ...circuits.map((c) => c.limit_w || 0)) * 1.1;
  const x = (t) => L + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (W - L - R);
  const y = (w) => T + (1 - w / top) * (H - T - B);
  const g = $("#chart");
  g.replaceChildren();
  // grid: kW and hours
  const step = niceStep(top / 1000 / 5);
  for (let k = 0; k * step * 1000 <= top; k++) {
    const yy = y(k * step * 1000);
    g.append(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: "#e3e7eb" }));
    g.append(svg("text", { x: L - 6, y: yy + 4, "text-anchor": "end", "font-size": 11, fill: "#69737d" }, `${k * step} kW`));
  }
  const hours = [1, 2, 3, 6, 12, 24].find((h) => (t1 - t0) / (h * 3600e3) <= 12) || 24;
  for (let t = Math.ceil(t0 / (hours * 3600e3)) * hours * 3600e3; t <= t1; t += hours * 3600e3) {
    g.append(svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, stroke: "#eef1f4" }));
    g.append(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#69737d" }, hhmm(t)));
  }
  // The binding limit per slot, as the plan names it ("<circuit>:L1|L2|L3|power"): shaded in the colour of the
  // circuit that binds (the site's red), labelled where it starts.
  const colourOf = (name) => circuits.find((c) => c.name === name)?.colour || "#c62828";
  let prev = null;
  for (const s of slots) {
    const name = s.binding ? s.binding.split(":")[0] : null;
    if (!name) { prev = null; continue; }
    const xa = x(Math.max(s.a, now));
    const rect = svg("rect", { x: xa, y: T, width: Math.max(1, x(s.b) - xa), height: H - T - B,
      fill: colourOf(name), "fill-opacity": 0.1, class: "binding", "data-binding": s.binding });
    rect.append(svg("title", {}, `the plan runs at the ${s.binding} limit from ${hhmm(s.a)}`));
    g.append(rect);
    if (prev !== s.binding) {
      g.append(svg("text", { x: xa + 2, y: H - B - 16, "font-size": 10, fill: colourOf(name), class: "binding-label" },
        `binds: ${s.binding}`));
    }
    prev = s.binding;
  }
  // time-of-use windows of the default tariff, as a strip along the bottom of the plot
  for (const span of touSpans(t0, t1)) {
    g.append(svg("rect", { x: x(span.a), y: H - B - 12, width: Math.max(1, x(span.b) - x(span.a)), height: 12,
      fill: "rgba(199,119,0,.25)", class: "tou" }));
    if (x(span.b) - x(span.a) > 60) {
      g.append(svg("text", { x: x(span.a) + 3, y: H - B - 3, "font-size": 10, fill: "#8a5200" },
        `${span.w.name} ${span.w.price_per_kwh}/kWh`));
    }
  }
  // demand tiers: the utilisation from which energy costs more
  for (const tier of state.tariffs?.default?.demand_tiers || []) {
    const f = Number(tier.from_utilisation);
    if (f > 0 && site.limit_w) {
      g.append(svg("line", { x1: L, x2: W - R, y1: y(f * site.limit_w), y2: y(f * site.limit_w), stroke: "#c77700",
        "stroke-dasharray": "2 5", class: "tier" }));
      g.append(svg("text", { x: W - R - 4, y: y(f * site.limit_w) - 3, "text-anchor": "end", "font-size": 10, fill: "#c77700" },
        `${tier.name} ×${tier.multiplier}`));
    }
  }
  // Circuits: each one's limit (dashed, in its colour) across the chart, its measured load as the page saw it,
  // and its planned load (the plan's sessions on its chargers).
  circuits.forEach((c, k) => {
    if (c.limit_w !== null && c.limit_w !== undefined) {
      const line = svg("line", { x1: L, x2: W - R, y1: y(c.limit_w), y2: y(c.limit_w), stroke: c.colour,
        "stroke-width": 1.5, "stroke-dasharray": "8 4", class: "circuit-limit", "data-circuit": c.name,
        "data-limit-w": c.limit_w });
      line.append(svg("title", {}, `circuit ${c.name}: limit ${kw(c.limit_w)}, load ${kw(c.load_w)}`));
      g.append(line);
      g.append(svg("text", { x: L + 4 + 120 * k, y: y(c.limit_w) - 3, "font-size": 10, fill: c.colour,
        class: "circuit-label" }, `${c.name} ${kw(c.limit_w)}`));
    }
    const measured = hist.filter((p) => p.circuits && p.circuits[c.name] !== undefined)
      .map((p) => [x(p.t), y(p.circuits[c.name])]);
    if (measured.length) {
      g.append(path(measured, { stroke: c.colour, "stroke-width": 1.5, fill: "none", class: "circuit-load",
        "data-circuit": c.name }));
    }
    const fc = [];
    for (const s of slots) if (c.planned[s.i] !== undefined) fc.push([x(Math.max(s.a, now)), y(c.planned[s.i])], [x(s.b), y(c.planned[s.i])]);
    if (fc.length) {
      g.append(path(fc, { stroke: c.colour, "stroke-width": 1.5, "stroke-dasharray": "1 3", fill: "none",
        class: "circuit-forecast", "data-circuit": c.name }));
    }
  });
  // the site limit: past (metered buckets, then as seen with each sample) then planned per slot
  const limitPts = [];
  for (const p of past) if (p.limit_w !== null) limitPts.push([x(p.a), y(p.limit_w)], [x(p.b), y(p.limit_w)]);
  for (const p of hist) if (p.limit_w !== null) limitPts.push([x(p.t), y(p.limit_w)]);
  for (const s of slots) if (s.limit_w !== null) limitPts.push([x(Math.max(s.a, now)), y(s.limit_w)], [x(s.b), y(s.limit_w)]);
  g.append(path(limitPts, { stroke: "#c62828", "stroke-width": 2, fill: "none", class: "limit" }));
  const bind = slots[0]?.binding || site.binding_limit;
  if (site.limit_w) {
    g.append(svg("text", { x: x(now) + 4, y: y(site.limit_w) - 4, "font-size": 11, fill: "#c62828", class: "limit-label" },
      `limit ${kw(site.limit_w)}${site.binding_limit ? " (" + site.binding_limit + ")" : ""}`));
  }
  // forecast (planned load) per slot, from now on
  const fc = [];
  for (const s of slots) fc.push([x(Math.max(s.a, now)), y(s.load_w)], [x(s.b), y(s.load_w)]);
  g.append(path(fc, { stroke: "#7cb342", "stroke-width": 2, fill: "none", class: "forecast" }));
  // measured: the server's buckets as steps, then the page's own samples
  const meas = [];
  for (const p of past) meas.push([x(p.a), y(p.load_w)], [x(p.b), y(p.load_w)]);
  for (const p of hist) meas.push([x(p.t), y(p.load_w)]);
  g.append(path(meas, { stroke: "#1565c0", "stroke-width": 2, fill: "none", class: "measured" }));
  if (hist.length) {
    const last = hist[hist.length - 1];
    g.append(svg("circle", { cx: x(last.t), cy: y(last.load_w), r: 3, fill: "#1565c0" }));
  }
  g.append(svg("line", { x1: x(now), x2: x(now), y1: T, y2: H - B, stroke: "#20303f", "stroke-dasharray": "4 3" }));
  g.append(svg("text", { x: x(now) + 3, y: T + 10, "font-size": 11, fill: "#20303f" }, `now ${hhmm(now)}`));
  g.dataset.points = String(hist.length);
  g.dataset.servedPoints = String(past.length);
  g.dataset.servedMaxW = String(Math.max(0, ...past.map((p) => p.load_w)));
  g.dataset.slots = String(slots.length);
  g.dataset.binding = bind || "";
  $("#legend-circuits").replaceChildren(...circuits.map((c) => el("span", { class: "lc" },
    el("span", { class: "sw", style: `background:${c.colour}` }), ` circuit ${c.name}: limit (dashed), load, plan (dotted)`)));
}

// The planned power of a circuit per slot index: the plan's sessions on its chargers (uncontrolled ones at the
// draw they are counted at).
function circuitPlan(c, slots) {
  const on = new Set(c.stations || []);
  const out = {};
  for (const s of slots) out[s.i] = 0;
  for (const p of state.plan?.sessions || []) {
    if (!on.has(p.station_id)) continue;
    for (const s of slots) out[s.i] += p.controlled ? (p.power_w?.[s.i] || 0) : (p.counted_w || 0);
  }
  return out;
}

// The TOU window in force at each quarter hour of [t0, t1), in the tariff's time zone (ISO weekdays on which a
// window starts; end < start runs past midnight; end == start is 24 hours; the first listed wins), merged
// into spans.
function touSpans(t0, t1) {
  const d = state.tariffs?.default;
  if (!d?.tou_windows?.length) return [];
  const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: d.timezone || "UTC", weekday: "short",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const ISO = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
  const mins = (hm) => Number(hm.slice(0, 2)) * 60 + Number(hm.slice(3, 5));
  const covers = (w, day, m) => {
    const a = mins(w.start), b = mins(w.end), prev = day === 1 ? 7 : day - 1;
    if (a < b) return w.days.includes(day) && m >= a && m < b;
    return (w.days.includes(day) && m >= a) || (w.days.includes(prev) && m < b);
  };
  const spans = [];
  const q = 15 * 60e3;
  for (let t = Math.floor(t0 / q) * q; t < t1; t += q) {
    const p = Object.fromEntries(fmt.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    const w = d.tou_windows.find((w) => covers(w, ISO[p.weekday], Number(p.hour) * 60 + Number(p.minute)));
    const last = spans[spans.length - 1];
    if (w && last && last.w === w && last.b === t) last.b = t + q;
    else if (w) spans.push({ w, a: t, b: t + q });
  }
  return spans;
}

function path(pts, attrs) {
  const d = pts.map((p, i) => `${i ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join("");
  return svg("path", { d: d || "M0,0", ...attrs });
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 0.1))));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
}

function drawTimeline(bookings) {
  const rows = state.stations.flatMap((s) => evses(s).map((e) => ({ station: s.id, evse: e })));
  const W = 960, L = 110, R = 8, T = 16, rowH = 18;
  const H = T + Math.max(1, rows.length) * rowH + 4;
  const g = $("#timeline");
  g.setAttribute("viewBox", `0 0 ${W} ${H}`);
  g.style.height = `${H}px`;
  g.replaceChildren();
  const now = state.now || Date.now();
  const t0 = now, t1 = now + BOOKING_WINDOW_H * 3600e3;
  const x = (t) => L + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (W - L - R);
  for (let t = Math.ceil(t0 / (3 * 3600e3)) * 3 * 3600e3; t <= t1; t += 3 * 3600e3) {
    g.append(svg("line", { x1: x(t), x2: x(t), y1: T - 4, y2: H, stroke: "#e3e7eb" }));
    g.append(svg("text", { x: x(t), y: 11, "text-anchor": "middle", "font-size": 10, fill: "#69737d" }, hhmm(t)));
  }
  const colour = { Confirmed: "#1f8a4c", Reserved: "#6a1b9a", Active: "#1565c0", Completed: "#8a939c",
    Cancelled: "#d0d5da", Expired: "#d0d5da" };
  rows.forEach((r, i) => {
    const yy = T + i * rowH;
    g.append(svg("text", { x: 4, y: yy + 12, "font-size": 11, fill: "#1d232a" }, `${r.station} / ${r.evse}`));
    g.append(svg("line", { x1: L, x2: W - R, y1: yy + rowH, y2: yy + rowH, stroke: "#f0f2f4" }));
    for (const b of bookings) {
      const a = Date.parse(b.start), e = Date.parse(b.end);
      if (b.station_id !== r.station || b.evse_id !== r.evse || e <= t0 || a >= t1) continue;
      const bar = svg("rect", { x: x(a), y: yy + 2, width: Math.max(2, x(e) - x(a)), height: rowH - 5, rx: 3,
        fill: colour[b.status] || "#1f8a4c", class: "booking", "data-booking": b.id });
      bar.append(svg("title", {}, `#${b.id} ${b.id_token} ${b.status} ${time(b.start)}–${time(b.end)}`));
      g.append(bar);
      g.append(svg("text", { x: x(a) + 3, y: yy + 12, "font-size": 10, fill: "#fff" }, `#${b.id} ${b.id_token}`));
    }
  });
}

// --------------------------------------------------------------------------------------------- live
// fetch() rather than EventSource: EventSource cannot send the API key header.
async function connectLive() {
  if (state.live) state.live.abort();
  const ctrl = new AbortController();
  state.live = ctrl;
  const badge = $("#live");
  try {
    const r = await fetch(`${API}/events`, { headers: state.key ? { "X-API-Key": state.key } : {}, signal: ctrl.signal });
    if (!r.ok) throw new Error(`events: ${r.status}`);
    badge.textContent = "live";
    badge.className = "badge on";
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        onEvent(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
  } catch (e) {
    if (ctrl.signal.aborted) return;
  }
  badge.textContent = "offline";
  badge.className = "badge off";
  if (state.live === ctrl) setTimeout(connectLive, 2000);
}

function onEvent(block) {
  const type = /^event: (.*)$/m.exec(block)?.[1];
  if (type === "tick") schedule(["site"]);
  else if (type === "change") schedule(["site", "stations", "bookings"]);
  // invoices are written as sessions end (and finalised later): re-read them now and then, not per event
  if (type && Date.now() - (onEvent.invoicesAt || 0) > 10e3) {
    onEvent.invoicesAt = Date.now();
    loadInvoices().catch(showError);
  }
}

const enc = encodeURIComponent;
const localInput = (ms) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
};

// ----------------------------------------------------------------------------------------- wiring
$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.key = $("#key").value.trim();
  sessionStorage.setItem("csms-key", state.key);
  $("#key").value = "";
  login();
});
$("#logout").addEventListener("click", () => {
  state.key = "";
  sessionStorage.removeItem("csms-key");
  if (state.live) state.live.abort();
  state.me = null;
  login();
});
$("#site").addEventListener("change", (ev) => { state.siteId = ev.target.value; schedule(["all"]); loadInvoices().catch(showError); });
$("#limit-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = $("#limit-kw").value;
  if (v === "") return;
  act("site limit", () => api(`/sites/${enc(state.siteId)}/limit`, { method: "PUT", body: { limit_kw: Number(v) } }));
});
$("#limit-clear").addEventListener("click", () =>
  act("site limit", () => api(`/sites/${enc(state.siteId)}/limit`, { method: "PUT", body: { limit_kw: null } })));
$("#booking-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const [station, evse] = $("#b-station").value.split("|");
  const body = { station_id: station, evse_id: Number(evse), id_token: $("#b-token").value.trim(),
    start: new Date($("#b-start").value).toISOString(), end: new Date($("#b-end").value).toISOString(),
    accept_partial: $("#b-partial").checked };
  if ($("#b-kwh").value) body.energy_kwh = Number($("#b-kwh").value);
  const b = await act("booking", () => api("/bookings", { method: "POST", body }));
  if (b) schedule(["bookings", "stations"]);
});
$("#booking-form").addEventListener("focusin", () => {
  // default window: from five minutes to an hour and five minutes from the server's now
  const now = state.now || Date.now();
  if (!$("#b-start").value) $("#b-start").value = localInput(now + 5 * 60e3);
  if (!$("#b-end").value) $("#b-end").value = localInput(now + 65 * 60e3);
});
$("#invoice-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadInvoices().catch(showError); });
$("#csv").addEventListener("click", () => exportCsv().catch(showError));

login();
