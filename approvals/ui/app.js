// pgwarden approvals and sessions page. Plain JS, no build step.
// Every value from the API is rendered with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "pgwarden.token";

function $(id) { return document.getElementById(id); }

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

// The browser session (sign-in through the identity provider): who is
// signed in and the CSRF token every POST carries. null: not signed in.
let web = null;

function authed() { return web !== null || token() !== ""; }

async function loadWebSession() {
  try {
    const resp = await fetch("/ui/session", { credentials: "same-origin" });
    web = resp.ok ? await resp.json() : null;
  } catch (e) {
    web = null;
  }
  $("signin").hidden = web !== null;
  $("signed-in").hidden = web === null;
  if (web) {
    $("whoami").textContent = web.user;
    $("whoami-groups").textContent = web.groups && web.groups.length ? "(" + web.groups.join(", ") + ")" : "";
  }
}

async function signOut() {
  if (!web) { return; }
  try {
    await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": web.csrf } });
  } finally {
    web = null;
    await loadWebSession();
    renderApprovals([]);
    renderSessions([]);
    renderLive([]);
    setStatus("signed out", false);
  }
}

function setStatus(msg, isError) {
  const s = $("status");
  s.textContent = msg;
  s.className = isError ? "error" : "";
}

function showTokenState() {
  $("token-state").textContent = token() ? "token set" : "no token";
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (token()) {
    opts.headers["Authorization"] = "Bearer " + token();
  } else if (web) {
    if (method !== "GET" && method !== "HEAD") { opts.headers["X-CSRF-Token"] = web.csrf; }
  } else {
    throw new Error("sign in first");
  }
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = data && data.error ? data.error : resp.status + " " + resp.statusText;
    throw new Error(msg);
  }
  return data;
}

function td(text, cls) {
  const c = document.createElement("td");
  c.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) { c.className = cls; }
  return c;
}

function fmtValue(v) {
  if (v === null || v === undefined) { return ""; }
  if (Array.isArray(v)) { return v.map(fmtValue).join(", "); }
  if (typeof v === "object") { return JSON.stringify(v); }
  return String(v);
}

// ---- approvals ----

async function loadApprovals() {
  const params = new URLSearchParams();
  const state = $("state-filter").value;
  if (state) { params.set("state", state); }
  const profile = $("profile-filter").value.trim();
  if (profile) { params.set("profile", profile); }
  const q = params.toString() ? "?" + params.toString() : "";
  try {
    const list = await api("GET", "/api/v1/approvals" + q);
    renderApprovals(Array.isArray(list) ? list : []);
    setStatus("loaded " + (Array.isArray(list) ? list.length : 0) + " approvals", false);
  } catch (e) {
    renderApprovals([]);
    setStatus("approvals: " + e.message, true);
  }
}

function renderApprovals(list) {
  const body = $("approvals-body");
  body.replaceChildren();
  $("approvals-empty").hidden = list.length !== 0;
  for (const a of list) {
    const tr = document.createElement("tr");
    tr.id = "approval-" + a.id;
    tr.dataset.testid = "approval-" + a.id;
    tr.appendChild(td(a.id));
    const st = td(a.state, "state-" + a.state);
    st.dataset.testid = "state-" + a.id;
    tr.appendChild(st);
    tr.appendChild(td(a.requester + (a.groups && a.groups.length ? " (" + a.groups.join(", ") + ")" : "")));
    tr.appendChild(td(a.action));
    const prof = td(a.profile || "");
    prof.dataset.testid = "profile-" + a.id;
    tr.appendChild(prof);
    tr.appendChild(td(a.database));
    tr.appendChild(td(a.estimate_rows));
    tr.appendChild(td(a.reason));
    const sql = td(a.sql + (a.params && a.params.length ? "\nparams: " + JSON.stringify(a.params) : ""), "sql");
    sql.dataset.testid = "sql-" + a.id;
    tr.appendChild(sql);
    tr.appendChild(td(a.created_at));
    let decision = "";
    if (a.decided_by) { decision = a.state + " by " + a.decided_by + (a.comment ? ": " + a.comment : ""); }
    else if (a.note) { decision = a.note; }
    tr.appendChild(td(decision));
    const inputCell = document.createElement("td");
    const actionCell = document.createElement("td");
    if (a.state === "pending") {
      const input = document.createElement("input");
      input.maxLength = 2000;
      input.placeholder = "comment (approve) / reason (deny)";
      input.dataset.testid = "comment-" + a.id;
      input.id = "comment-" + a.id;
      inputCell.appendChild(input);
      const ok = document.createElement("button");
      ok.type = "button";
      ok.textContent = "Approve";
      ok.dataset.testid = "approve-" + a.id;
      ok.id = "approve-" + a.id;
      ok.addEventListener("click", () => decide(a.id, true, input.value));
      const no = document.createElement("button");
      no.type = "button";
      no.textContent = "Deny";
      no.dataset.testid = "deny-" + a.id;
      no.id = "deny-" + a.id;
      no.addEventListener("click", () => decide(a.id, false, input.value));
      actionCell.append(ok, " ", no);
    }
    tr.append(inputCell, actionCell);
    body.appendChild(tr);
  }
}

async function decide(id, approve, text) {
  if (!approve && !text.trim()) {
    setStatus("a deny needs a reason: type it in the row's text field", true);
    return;
  }
  const path = "/api/v1/approvals/" + encodeURIComponent(id) + (approve ? "/approve" : "/deny");
  try {
    const a = await api("POST", path, approve ? { comment: text } : { reason: text });
    setStatus("approval " + a.id + " is now " + a.state, false);
  } catch (e) {
    setStatus((approve ? "approve " : "deny ") + id + ": " + e.message, true);
  }
  await loadApprovals();
}

// ---- sessions ----

// firstArray returns v if it is an array, else the first array-valued
// property of the object (e.g. {"sessions": [...]}).
function firstArray(v, preferred) {
  if (Array.isArray(v)) { return v; }
  if (v && typeof v === "object") {
    if (preferred && Array.isArray(v[preferred])) { return v[preferred]; }
    for (const k of Object.keys(v)) { if (Array.isArray(v[k])) { return v[k]; } }
  }
  return [];
}

function sessionID(s) { return s.id || s.session || s.session_id || ""; }

async function loadSessions() {
  try {
    const data = await api("GET", "/api/v1/sessions");
    const list = firstArray(data, "sessions");
    renderSessions(list);
    setStatus("loaded " + list.length + " sessions", false);
  } catch (e) {
    renderSessions([]);
    setStatus("sessions: " + e.message, true);
  }
}

function renderSessions(list) {
  const head = $("sessions-head");
  const body = $("sessions-body");
  head.replaceChildren();
  body.replaceChildren();
  $("sessions-empty").hidden = list.length !== 0;
  if (list.length === 0) { return; }
  const keys = [];
  for (const s of list.slice(0, 20)) {
    for (const k of Object.keys(s)) {
      if (!keys.includes(k) && keys.length < 10 && k !== "events") { keys.push(k); }
    }
  }
  const htr = document.createElement("tr");
  for (const k of keys) { const th = document.createElement("th"); th.textContent = k; htr.appendChild(th); }
  htr.appendChild(document.createElement("th"));
  head.appendChild(htr);
  for (const s of list) {
    const id = sessionID(s);
    const tr = document.createElement("tr");
    tr.dataset.testid = "session-" + id;
    for (const k of keys) { tr.appendChild(td(fmtValue(s[k]))); }
    const c = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Replay";
    b.dataset.testid = "replay-" + id;
    b.addEventListener("click", () => replay(id, tr));
    c.appendChild(b);
    tr.appendChild(c);
    body.appendChild(tr);
  }
}

async function replay(id, row) {
  for (const r of document.querySelectorAll("#sessions-body tr")) { r.classList.remove("selected"); }
  if (row) { row.classList.add("selected"); }
  try {
    const data = await api("GET", "/api/v1/sessions/" + encodeURIComponent(id));
    renderReplay(id, firstArray(data, "events"));
    setStatus("replaying session " + id, false);
  } catch (e) {
    setStatus("session " + id + ": " + e.message, true);
  }
}

function columnNames(cols) {
  if (!Array.isArray(cols)) { return []; }
  return cols.map(c => (c && typeof c === "object") ? (c.name || JSON.stringify(c)) : String(c));
}

function rowsCell(ev) {
  const c = document.createElement("td");
  const rows = Array.isArray(ev.rows) ? ev.rows : [];
  let label = "";
  if (ev.rows_total !== undefined && ev.rows_total !== null) { label = String(ev.rows_total); }
  else if (rows.length) { label = String(rows.length); }
  c.appendChild(document.createTextNode(label));
  if (rows.length) {
    const t = document.createElement("table");
    const names = columnNames(ev.columns);
    if (names.length) {
      const hr = document.createElement("tr");
      for (const n of names) { const th = document.createElement("th"); th.textContent = n; hr.appendChild(th); }
      t.appendChild(hr);
    }
    for (const r of rows) {
      const tr = document.createElement("tr");
      const vals = Array.isArray(r) ? r : (r && typeof r === "object" ? Object.values(r) : [r]);
      for (const v of vals) { tr.appendChild(td(fmtValue(v))); }
      t.appendChild(tr);
    }
    c.appendChild(t);
  }
  return c;
}

function renderReplay(id, events) {
  $("replay").hidden = false;
  $("replay-id").textContent = id;
  const body = $("replay-body");
  body.replaceChildren();
  events.forEach((ev, i) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = "event-" + (ev.seq !== undefined ? ev.seq : i);
    tr.appendChild(td(ev.seq !== undefined ? ev.seq : i));
    tr.appendChild(td(ev.time));
    tr.appendChild(td(ev.type));
    tr.appendChild(td(ev.user));
    tr.appendChild(td(fmtValue(ev.sql), "sql"));
    tr.appendChild(td(fmtValue(ev.actions)));
    tr.appendChild(td(ev.decision));
    tr.appendChild(rowsCell(ev));
    tr.appendChild(td(fmtValue(ev.error)));
    body.appendChild(tr);
  });
}

// ---- live sessions ----

async function loadLive() {
  try {
    const data = await api("GET", "/api/v1/live");
    const list = firstArray(data, "sessions");
    renderLive(list);
    let msg = "loaded " + list.length + " live sessions";
    if (data && data.incomplete) { msg += " (" + data.incomplete + ")"; }
    setStatus(msg, Boolean(data && data.incomplete));
  } catch (e) {
    renderLive([]);
    setStatus("live sessions: " + e.message, true);
  }
}

function renderLive(list) {
  const body = $("live-body");
  body.replaceChildren();
  $("live-empty").hidden = list.length !== 0;
  for (const s of list) {
    const id = s.session || "";
    const tr = document.createElement("tr");
    tr.dataset.testid = "live-" + id;
    tr.appendChild(td(id));
    const user = td(s.user);
    user.dataset.testid = "live-user-" + id;
    tr.appendChild(user);
    tr.appendChild(td(fmtValue(s.groups)));
    tr.appendChild(td(s.profile));
    tr.appendChild(td(s.database));
    tr.appendChild(td(s.client_addr));
    tr.appendChild(td(s.application_name));
    tr.appendChild(td(s.backend_user));
    tr.appendChild(td(s.started_at));
    tr.appendChild(td(s.gateway));
    const c = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "End session";
    b.setAttribute("aria-label", "End session " + id + " of " + (s.user || "unknown user"));
    b.dataset.testid = "end-" + id;
    b.addEventListener("click", () => endSession(s));
    c.appendChild(b);
    tr.appendChild(c);
    body.appendChild(tr);
  }
}

async function endSession(s) {
  const id = s.session || "";
  if (!window.confirm("End session " + id + " of " + (s.user || "unknown user") + "? The client is disconnected and its database role dropped.")) {
    return;
  }
  const reason = $("live-reason").value.trim();
  try {
    await api("POST", "/api/v1/live/" + encodeURIComponent(id) + "/terminate", reason ? { reason } : {});
    await loadLive();
    setStatus("session " + id + " ended", false);
  } catch (e) {
    setStatus("end session " + id + ": " + e.message, true);
  }
}

// ---- tabs and wiring ----

const TABS = { approvals: loadApprovals, sessions: loadSessions, live: loadLive };

function currentTab() {
  for (const name of Object.keys(TABS)) {
    if (!$(name + "-view").hidden) { return name; }
  }
  return "approvals";
}

function showTab(name) {
  for (const n of Object.keys(TABS)) {
    $(n + "-view").hidden = n !== name;
    $("tab-" + n).setAttribute("aria-pressed", String(n === name));
  }
  if (authed()) { TABS[name](); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-save").addEventListener("click", () => {
    const v = $("token").value.trim();
    $("token").value = "";
    if (v) { sessionStorage.setItem(TOKEN_KEY, v.replace(/^Bearer\s+/i, "")); }
    showTokenState();
    showTab(currentTab());
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    renderApprovals([]);
    renderSessions([]);
    renderLive([]);
    setStatus("token forgotten", false);
  });
  $("tab-approvals").addEventListener("click", () => showTab("approvals"));
  $("tab-sessions").addEventListener("click", () => showTab("sessions"));
  $("tab-live").addEventListener("click", () => showTab("live"));
  $("approvals-refresh").addEventListener("click", loadApprovals);
  $("state-filter").addEventListener("change", loadApprovals);
  $("profile-filter").addEventListener("change", loadApprovals);
  $("sessions-refresh").addEventListener("click", loadSessions);
  $("signout").addEventListener("click", signOut);
  $("live-refresh").addEventListener("click", loadLive);
  showTokenState();
  loadWebSession().then(() => showTab("approvals"));
});
