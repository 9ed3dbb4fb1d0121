// inventory-gateway page: a bearer token, the fleet index per system, and a search box.
// Names, models, serials and errors come from vendor appliances: they only ever reach the
// DOM as textContent, never as markup.
"use strict";

const TOKEN_KEY = "igw-token";
const $ = (id) => document.getElementById(id);

// MAC notations the gateway accepts: 0, 2 or 5 separators.
const MAC_SEPARATED = /^(?:[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}|[0-9a-f]{4}([.:-])[0-9a-f]{4}\2[0-9a-f]{4})$/i;
const MAC_BARE = /^[0-9a-f]{12}$/i;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV6 = /^\[?[0-9a-f]*:[0-9a-f:.]*\]?$/i;
const DOTTED_HOST = /^[a-z0-9-]+(?:\.[a-z0-9-]+)+$/i;

class HttpError extends Error {
  constructor(status, problem) {
    const text = problem && (problem.title || problem.detail)
      ? [problem.title, problem.detail].filter(Boolean).join(": ")
      : `HTTP ${status}`;
    super(text);
    this.status = status;
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function showMessage(text, kind = "error") {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind;
  m.hidden = !text;
}

function setAuthorized(yes) {
  $("auth-state").textContent = yes ? "authorized" : "not authorized";
  $("auth-state").className = yes ? "state ok" : "state";
  $("logout").hidden = !yes;
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, { headers });
  let body = null;
  try { body = await r.json(); } catch { /* no body, or not JSON */ }
  if (r.status === 401) {
    // Forget a refused token so a reload does not send it again.
    sessionStorage.removeItem(TOKEN_KEY);
    setAuthorized(false);
    const why = token ? "The gateway refused the token" : "This gateway needs a bearer token";
    showMessage(`${why}: paste one and press Authorize.`);
  }
  if (!r.ok) throw new HttpError(r.status, body);
  return body;
}

// A 401 has already said what to do; anything else is shown as the gateway put it.
function fail(e) {
  if (e.status !== 401) showMessage(e.message);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

function systemRow(s) {
  const tr = el("tr");
  tr.append(el("td", s.name), el("td", s.kind),
    el("td", s.breaker, s.breaker === "closed" ? "" : "warn"),
    el("td", s.indexed ?? "not yet", s.indexed === null ? "muted" : "num"));
  const ageCell = el("td", age(s.age_seconds), "num");
  if (s.stale) ageCell.append(el("span", "stale", "badge"));
  tr.append(ageCell);
  const last = s.last_sweep;
  let sweep;
  if (!last) sweep = el("td", s.sweeping ? "sweeping…" : "none yet", "muted");
  else if (last.error) sweep = el("td", last.error, "error");
  else sweep = el("td", `${plural(last.calls, "call")}, ${last.duration_ms} ms`, "num");
  if (last && s.sweeping) sweep.append(el("span", "sweeping", "badge"));
  tr.append(sweep);
  return tr;
}

async function loadFleet() {
  $("conflicts").hidden = true;
  let fleet;
  try {
    fleet = await api("/fleet");
  } catch (e) {
    fail(e);
    return;
  }
  $("systems").tBodies[0].replaceChildren(...fleet.systems.map(systemRow));
  const totals = $("totals");
  totals.replaceChildren(`${plural(fleet.servers, "server")} indexed, `);
  if (fleet.conflicts > 0) {
    const b = el("button", plural(fleet.conflicts, "conflict"), "link");
    b.type = "button";
    b.addEventListener("click", loadConflicts);
    totals.append(b);
  } else {
    totals.append("no conflicts");
  }
  if (!fleet.enabled) totals.append(" (fleet index disabled: systems are not swept)");
}

async function loadConflicts() {
  let body;
  try {
    body = await api("/fleet/conflicts");
  } catch (e) {
    fail(e);
    return;
  }
  const items = body.conflicts.map((c) => {
    const li = el("li");
    li.append(`${c.kind.toUpperCase()} `, el("span", c.value, "mono"), " claimed by ");
    li.append(c.servers.map((s) => `${s.name} (${s.system_name})`).join(", "));
    return li;
  });
  $("conflicts").replaceChildren(...items);
  $("conflicts").hidden = false;
}

function serverRow(r) {
  const tr = el("tr");
  const name = el("td", r.name);
  if (r.stale) name.append(el("span", "stale", "badge"));
  const bmc = el("td", r.bmc ? r.bmc.address : "–", r.bmc ? "mono" : "muted");
  if (r.bmc && r.bmc.kind) bmc.title = r.bmc.kind;
  const macs = el("td", null, "mono");
  for (const nic of r.nics) {
    const line = el("div", nic.mac);
    line.title = [nic.name, nic.location].filter(Boolean).join(", ");
    if (nic.mac === r.boot_mac) line.append(el("span", "boot", "badge boot"));
    macs.append(line);
  }
  if (!r.nics.length) macs.append(el("span", r.nics_unavailable || "no NICs", "muted"));
  tr.append(name, el("td", r.system_name), el("td", r.vendor), el("td", r.model ?? "–"),
    el("td", r.serial_number ?? "–"), bmc, macs);
  return tr;
}

// Which listings to ask for what was typed: the gateway has one filter per kind of value.
function searchPaths(value) {
  const v = encodeURIComponent(value);
  const path = (filter) => `/servers?${filter}=${v}&limit=100`;
  if (MAC_SEPARATED.test(value)) return [{ path: path("mac") }];
  // Twelve bare hex digits may as well be a serial number or part of a name.
  const paths = [{ path: path("q") }, { path: path("serial"), optional: true }];
  if (MAC_BARE.test(value)) paths.push({ path: path("mac") });
  if (IPV4.test(value) || (IPV6.test(value) && value.split(":").length > 2)
      || DOTTED_HOST.test(value)) {
    paths.push({ path: path("bmc"), optional: true });
  }
  return paths;
}

let searchSeq = 0;

async function search(value) {
  // Answers to an earlier search may arrive after those to a later one: keep only the last.
  const seq = ++searchSeq;
  showMessage("");
  $("result-count").textContent = "searching…";
  // serial= and bmc= refuse some values (400) that q= takes: they just match nothing then.
  const calls = searchPaths(value).map(({ path, optional }) => api(path).catch((e) => {
    if (optional && e.status === 400) return null;
    throw e;
  }));
  let pages;
  try {
    pages = (await Promise.all(calls)).filter(Boolean);
  } catch (e) {
    if (seq !== searchSeq) return;
    $("result-count").textContent = "";
    $("results").tBodies[0].replaceChildren();
    fail(e);
    return;
  }
  if (seq !== searchSeq) return;
  const seen = new Map();
  for (const page of pages) {
    for (const r of page.servers) seen.set(`${r.system_name}\u0000${r.system_id}`, r);
  }
  const servers = [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("results").tBodies[0].replaceChildren(...servers.map(serverRow));
  const more = pages.some((p) => p.next_cursor) ? " (more match: refine the search)" : "";
  $("result-count").textContent = plural(servers.length, "server") + more;
  const unindexed = [...new Set(pages.flatMap((p) => p.unindexed))];
  if (unindexed.length) {
    showMessage(`Not indexed yet, so results may be incomplete: ${unindexed.join(", ")}.`, "note");
  }
}

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    showMessage("Paste a bearer token first.");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  showMessage("");
  setAuthorized(true);
  loadFleet();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  setAuthorized(false);
  showMessage("");
  for (const id of ["systems", "results"]) $(id).tBodies[0].replaceChildren();
  $("totals").textContent = "";
  $("result-count").textContent = "";
  $("conflicts").hidden = true;
});

$("refresh").addEventListener("click", () => {
  showMessage("");
  loadFleet();
});

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("search").value.trim();
  if (value) search(value);
});

// Without a token, ask nothing: every call would be a counted authentication failure.
if (sessionStorage.getItem(TOKEN_KEY)) {
  setAuthorized(true);
  loadFleet();
}
