// pgwarden approvals and sessions page. Plain JS, no build step.
// Every value from the API is rendered with textContent (or a text node),
// never as HTML: the page builds its DOM with createElement only.
"use strict";

const TOKEN_KEY = "pgwarden.token";
const POLL_MS = 5000;  // live update of the pending approvals
const AGE_MS = 30000;  // "3 min ago" refresh

function $(id) { return document.getElementById(id); }

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

// The browser session (sign-in through the identity provider): who is
// signed in and the CSRF token every POST carries. null: not signed in.
let web = null;

function authed() { return web !== null || token() !== ""; }

async function loadWebSession() {
  try {
    const resp = await fetch("/ui/session", { credentials: "same-origin" });
    const data = await resp.json().catch(() => null);
    web = resp.ok ? data : null;
    if (!resp.ok && data && Array.isArray(data.logins)) {
      // The routes the gateway offers: OIDC first, SAML as a second link.
      if (data.logins.length > 0) { $("signin-link").href = data.logins[0]; }
      $("signin-saml").hidden = !(data.logins.length > 1 && data.logins.includes("/saml/login"));
    }
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

function clearViews() {
  renderApprovals([]);
  renderSessions([]);
  renderLive([]);
  $("replay").hidden = true;
  knownPending = null;
}

async function signOut() {
  if (!web) { return; }
  try {
    await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": web.csrf } });
  } finally {
    web = null;
    await loadWebSession();
    clearViews();
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

// ---- small DOM helpers (text only) ----

// el creates a <tag> with class cls and text (textContent), or children.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) { e.className = cls; }
  if (text !== undefined && text !== null) { e.textContent = String(text); }
  return e;
}

function td(text, cls) {
  return el("td", cls, text === undefined || text === null ? "" : text);
}

function badge(text, kind) {
  return el("span", "badge " + (kind ? "badge-" + kind : ""), text);
}

// via names a user and the party acting for them (a delegated token's
// actor): "alice via agent-7", or the user alone.
function via(user, actor) {
  return actor ? (user || "") + " via " + actor : (user || "");
}

function fmtValue(v) {
  if (v === null || v === undefined) { return ""; }
  if (Array.isArray(v)) { return v.map(fmtValue).join(", "); }
  if (typeof v === "object") { return JSON.stringify(v); }
  return String(v);
}

function pad(n) { return n < 10 ? "0" + n : String(n); }

// fmtTime: an RFC 3339 time as local "YYYY-MM-DD HH:MM:SS".
function fmtTime(iso) {
  if (!iso) { return ""; }
  const d = new Date(iso);
  if (isNaN(d.getTime())) { return String(iso); }
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// timeEl: a <time> showing fmtTime, the exact value as its datetime/title.
function timeEl(iso, cls) {
  const t = el("time", cls, fmtTime(iso));
  if (iso) { t.dateTime = String(iso); t.title = String(iso); }
  return t;
}

// ago: "just now", "3 min ago", "2 h ago", "4 days ago"; in: "in 9 min".
function relTime(iso, now) {
  const d = new Date(iso);
  if (!iso || isNaN(d.getTime())) { return ""; }
  let s = Math.round((now - d.getTime()) / 1000);
  const future = s < 0;
  s = Math.abs(s);
  let txt;
  if (s < 45) { return future ? "in a moment" : "just now"; }
  if (s < 3600) { txt = Math.round(s / 60) + " min"; }
  else if (s < 86400) { txt = Math.round(s / 3600) + " h"; }
  else { const n = Math.round(s / 86400); txt = n + (n === 1 ? " day" : " days"); }
  return future ? "in " + txt : txt + " ago";
}

// A relative time kept current by refreshAges: data-rel holds the time,
// data-prefix a fixed text before it.
function relEl(iso, prefix, testid) {
  const t = el("time", "rel");
  if (iso) { t.dateTime = String(iso); t.title = fmtTime(iso) + " (" + iso + ")"; }
  t.dataset.rel = iso || "";
  t.dataset.prefix = prefix || "";
  if (testid) { t.dataset.testid = testid; }
  t.textContent = (prefix || "") + relTime(iso, Date.now());
  return t;
}

function refreshAges() {
  const now = Date.now();
  for (const t of document.querySelectorAll("time.rel")) {
    t.textContent = t.dataset.prefix + relTime(t.dataset.rel, now);
  }
}

// fmtDuration: microseconds as "850 µs", "12.3 ms", "1.42 s".
function fmtDuration(us) {
  if (us === undefined || us === null || us === "") { return ""; }
  if (us < 1000) { return us + " µs"; }
  if (us < 1e6) { return (us / 1000).toFixed(us < 1e5 ? 1 : 0) + " ms"; }
  return (us / 1e6).toFixed(2) + " s";
}

// fmtOffset: milliseconds since the session start as "+0.000 s", "+2:05.3".
function fmtOffset(ms) {
  if (!isFinite(ms)) { return ""; }
  const neg = ms < 0;
  ms = Math.abs(ms);
  if (ms < 60000) { return (neg ? "−" : "+") + (ms / 1000).toFixed(3) + " s"; }
  const m = Math.floor(ms / 60000);
  const s = ((ms % 60000) / 1000).toFixed(1);
  return (neg ? "−" : "+") + m + ":" + (s < 10 ? "0" : "") + s;
}

// ---- SQL highlighting: tokens as spans, each filled with textContent ----

const SQL_KEYWORDS = new Set((
  "select from where and or not in is null like ilike between exists as on join left right inner outer full cross " +
  "natural using group by order having limit offset fetch first next rows row only union all intersect except distinct " +
  "insert into values update set delete truncate table create alter drop index view sequence schema database role " +
  "grant revoke to with recursive returning case when then else end begin commit rollback savepoint release start " +
  "transaction cascade restrict primary key foreign references unique check default constraint copy explain analyze " +
  "vacuum asc desc nulls true false cast lateral over partition window filter do nothing conflict if replace function " +
  "returns language security definer execute prepare deallocate listen notify show reset lock for share nowait skip locked"
).split(" "));

// sqlTokens splits sql into [kind, text] pairs; kind "" is plain text.
function sqlTokens(sql) {
  const out = [];
  const s = String(sql);
  let i = 0;
  let plain = "";
  const push = (kind, text) => {
    if (kind === "") { plain += text; return; }
    if (plain) { out.push(["", plain]); plain = ""; }
    out.push([kind, text]);
  };
  while (i < s.length) {
    const c = s[i];
    const rest = s.slice(i);
    let m;
    if (rest.startsWith("--")) {
      const j = s.indexOf("\n", i);
      const end = j < 0 ? s.length : j;
      push("com", s.slice(i, end)); i = end;
    } else if (rest.startsWith("/*")) {
      const j = s.indexOf("*/", i + 2);
      const end = j < 0 ? s.length : j + 2;
      push("com", s.slice(i, end)); i = end;
    } else if (c === "'" || ((c === "E" || c === "e") && s[i + 1] === "'")) {
      let j = c === "'" ? i + 1 : i + 2;
      while (j < s.length) {
        if (s[j] === "\\" && c !== "'") { j += 2; continue; }
        if (s[j] === "'") { if (s[j + 1] === "'") { j += 2; continue; } j++; break; }
        j++;
      }
      push("str", s.slice(i, j)); i = j;
    } else if ((m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest))) {
      const tag = m[0];
      const j = s.indexOf(tag, i + tag.length);
      const end = j < 0 ? s.length : j + tag.length;
      push("str", s.slice(i, end)); i = end;
    } else if ((m = /^\$[0-9]+/.exec(rest))) {
      push("param", m[0]); i += m[0].length;
    } else if (c === '"') {
      let j = i + 1;
      while (j < s.length) { if (s[j] === '"') { if (s[j + 1] === '"') { j += 2; continue; } j++; break; } j++; }
      push("", s.slice(i, j)); i = j;
    } else if ((m = /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(rest)) && !/[A-Za-z0-9_]/.test(s[i - 1] || "")) {
      push("num", m[0]); i += m[0].length;
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      push(SQL_KEYWORDS.has(m[0].toLowerCase()) ? "kw" : "", m[0]); i += m[0].length;
    } else {
      push("", c); i++;
    }
  }
  if (plain) { out.push(["", plain]); }
  return out;
}

// sqlBlock: a <pre><code> with the highlighted statement.
function sqlBlock(sql, testid) {
  const pre = el("pre", "sql");
  const code = el("code");
  for (const [kind, text] of sqlTokens(sql || "")) {
    if (kind === "") { code.appendChild(document.createTextNode(text)); }
    else { code.appendChild(el("span", "sql-" + kind, text)); }
  }
  pre.appendChild(code);
  if (testid) { pre.dataset.testid = testid; }
  return pre;
}

// dl: a definition list of [term, value-node-or-text] pairs (empty skipped).
function dl(pairs, cls) {
  const d = el("dl", cls || "facts");
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") { continue; }
    const wrap = el("div");
    wrap.appendChild(el("dt", "", k));
    const dd = el("dd");
    if (v instanceof Node) { dd.appendChild(v); } else { dd.textContent = String(v); }
    wrap.appendChild(dd);
    d.appendChild(wrap);
  }
  return d;
}

// ---- approvals ----

// knownPending: the pending ids seen so far (null: not yet loaded), to
// announce new requests the live update brings.
let knownPending = null;
let approvalsGen = 0;   // bumped per full load: a slower poll answer is dropped
// Like approvalsGen: a slower earlier load never overwrites a later one
// (a refresh with new filters while the previous list is still loading).
let sessionsGen = 0;
let liveGen = 0;
let pollTimer = null;
let polling = false;

function approvalsQuery(state) {
  const params = new URLSearchParams();
  if (state) { params.set("state", state); }
  const profile = $("profile-filter").value.trim();
  if (profile) { params.set("profile", profile); }
  return params.toString() ? "?" + params.toString() : "";
}

async function loadApprovals() {
  const gen = ++approvalsGen;
  const state = $("state-filter").value;
  try {
    const data = await api("GET", "/api/v1/approvals" + approvalsQuery(state));
    if (gen !== approvalsGen) { return; }
    const list = Array.isArray(data) ? data : [];
    renderApprovals(list);
    if (state === "pending") { notePending(list, false); }
    setStatus("loaded " + list.length + " approvals", false);
  } catch (e) {
    if (gen !== approvalsGen) { return; }
    renderApprovals([]);
    setStatus("approvals: " + e.message, true);
  }
}

// notePending records the pending ids; announce: say how many are new.
function notePending(list, announce) {
  const ids = new Set(list.map(a => a.id));
  if (announce && knownPending !== null) {
    let n = 0;
    for (const id of ids) { if (!knownPending.has(id)) { n++; } }
    if (n > 0) { setStatus(n + (n === 1 ? " new request held" : " new requests held"), false); }
  }
  knownPending = ids;
}

async function pollApprovals() {
  if (polling || !authed() || document.hidden || currentTab() !== "approvals") { return; }
  polling = true;
  const gen = approvalsGen;
  const showing = $("state-filter").value === "pending";
  try {
    const data = await api("GET", "/api/v1/approvals" + approvalsQuery("pending"));
    if (gen !== approvalsGen) { return; }
    const list = Array.isArray(data) ? data : [];
    if (showing && $("state-filter").value === "pending") { renderApprovals(list); }
    notePending(list, true);
  } catch (e) {
    // A failed poll is silent: the next one retries, Refresh shows errors.
  } finally {
    polling = false;
  }
}

function updatePolling() {
  const want = authed() && !document.hidden && currentTab() === "approvals";
  if (want && pollTimer === null) {
    pollTimer = setInterval(pollApprovals, POLL_MS);
  } else if (!want && pollTimer !== null) {
    clearInterval(pollTimer);
    pollTimer = null;
  }
  $("live-update").textContent = want ? "Live: checking for new requests every 5 s." : "";
}

// approvalKey: what, when changed, makes a card be rebuilt.
function approvalKey(a) {
  return JSON.stringify([a.state, a.decided_by, a.comment, a.note, a.executed_at, a.expires_at]);
}

// renderApprovals updates the table in place: each approval is one
// <tbody>; those whose approval did not change are kept (with what is
// typed in them, and focus), others are rebuilt, added or removed.
function renderApprovals(list) {
  const table = $("approvals-body");
  $("approvals-empty").hidden = list.length !== 0;
  table.hidden = list.length === 0;
  const groups = () => Array.from(table.tBodies);
  const old = new Map();
  for (const g of groups()) { old.set(g.dataset.id, g); }
  const keep = new Set();
  list.forEach((a, i) => {
    const key = approvalKey(a);
    let g = old.get(a.id);
    if (!g || g.dataset.key !== key) {
      const fresh = approvalGroup(a);
      fresh.dataset.key = key;
      if (g) { g.replaceWith(fresh); }
      g = fresh;
    }
    keep.add(a.id);
    const at = groups()[i];
    if (at !== g) { table.insertBefore(g, at || null); }
  });
  for (const [id, g] of old) { if (!keep.has(id)) { g.remove(); } }
}

function approvalGroup(a) {
  const g = el("tbody", "approval state-" + a.state);
  g.id = "approval-" + a.id;
  g.dataset.testid = "approval-" + a.id;
  g.dataset.id = a.id;

  // The summary row: what, who, where, how big, when.
  const top = el("tr", "summary");
  const what = el("th", "request");
  what.scope = "rowgroup";
  const title = el("span", "card-title");
  title.appendChild(el("span", "action", a.action || "statement"));
  title.appendChild(document.createTextNode(" by "));
  title.appendChild(el("span", "who", via(a.requester, a.actor)));
  const st = badge(a.state, a.state);
  st.dataset.testid = "state-" + a.id;
  what.append(title, " ", st);
  top.appendChild(what);
  const prof = td(a.profile || "");
  prof.dataset.testid = "profile-" + a.id;
  top.appendChild(prof);
  top.appendChild(td(a.database));
  const est = a.estimate_rows === undefined || a.estimate_rows === null ? "" : (a.estimate_rows < 0 ? "unknown" : a.estimate_rows);
  top.appendChild(td(est, "num"));
  const held = td("");
  if (a.created_at) { held.append(relEl(a.created_at, "", "age-" + a.id), el("span", "sub")); held.lastChild.appendChild(timeEl(a.created_at)); }
  top.appendChild(held);
  const exp = td("");
  if (a.state === "pending" && a.expires_at) { exp.append(relEl(a.expires_at, "", "expires-" + a.id), el("span", "sub")); exp.lastChild.appendChild(timeEl(a.expires_at)); }
  else if (a.decided_at) { exp.append(el("span", "sub", "decided " + fmtTime(a.decided_at))); }
  top.appendChild(exp);
  g.appendChild(top);

  // The detail row: the statement and the decision.
  const bottom = el("tr", "detail");
  const cell = el("td");
  cell.colSpan = 6;
  const groups = a.groups && a.groups.length ? a.groups.join(", ") : "";
  let decision = "";
  if (a.decided_by) { decision = a.state + " by " + via(a.decided_by, a.decided_by_actor) + (a.comment ? ": " + a.comment : ""); }
  else if (a.note) { decision = a.note; }
  cell.appendChild(dl([
    ["Request", el("code", "", a.id)],
    ["Requester", a.requester],
    ["Actor", a.actor],
    ["Groups", groups],
    ["Reason", a.reason],
    ["Parameters", a.params && a.params.length ? JSON.stringify(a.params) : ""],
    ["Decision", decision],
  ], "facts compact"));
  cell.appendChild(sqlBlock(a.sql, "sql-" + a.id));

  if (a.state === "pending") {
    const form = el("div", "decide");
    const label = el("label", "", "Comment (approve) or reason (deny)");
    label.htmlFor = "comment-" + a.id;
    const input = document.createElement("input");
    input.type = "text";
    input.maxLength = 2000;
    input.autocomplete = "off";
    input.placeholder = "e.g. checked with the owner";
    input.dataset.testid = "comment-" + a.id;
    input.id = "comment-" + a.id;
    const ok = el("button", "btn btn-approve", "Approve");
    ok.type = "button";
    ok.dataset.testid = "approve-" + a.id;
    ok.id = "approve-" + a.id;
    ok.setAttribute("aria-label", "Approve request " + a.id + " of " + via(a.requester, a.actor));
    ok.addEventListener("click", () => decide(a.id, true, input.value));
    const no = el("button", "btn btn-deny", "Deny");
    no.type = "button";
    no.dataset.testid = "deny-" + a.id;
    no.id = "deny-" + a.id;
    no.setAttribute("aria-label", "Deny request " + a.id + " of " + via(a.requester, a.actor));
    no.addEventListener("click", () => decide(a.id, false, input.value));
    form.append(label, input, ok, no);
    cell.appendChild(form);
  }
  bottom.appendChild(cell);
  g.appendChild(bottom);
  return g;
}

async function decide(id, approve, text) {
  if (!approve && !text.trim()) {
    setStatus("a deny needs a reason: type it in the request's comment field", true);
    const input = $("comment-" + id);
    if (input) { input.focus(); }
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

const SESSION_FILTERS = ["user", "profile", "database", "since", "action", "decision"];

function sessionsQuery() {
  const params = new URLSearchParams();
  for (const name of SESSION_FILTERS) {
    const v = $("sf-" + name).value.trim();
    if (v) { params.set(name, v); }
  }
  return params.toString() ? "?" + params.toString() : "";
}

let sessionsByID = new Map();

async function loadSessions() {
  const gen = ++sessionsGen;
  try {
    const data = await api("GET", "/api/v1/sessions" + sessionsQuery());
    if (gen !== sessionsGen) { return; }
    const list = firstArray(data, "sessions");
    renderSessions(list);
    setStatus("loaded " + list.length + " sessions", false);
  } catch (e) {
    if (gen !== sessionsGen) { return; }
    renderSessions([]);
    setStatus("sessions: " + e.message, true);
  }
}

function renderSessions(list) {
  const body = $("sessions-body");
  body.replaceChildren();
  sessionsByID = new Map();
  $("sessions-empty").hidden = list.length !== 0;
  $("sessions-table").hidden = list.length === 0;
  for (const s of list) {
    const id = sessionID(s);
    sessionsByID.set(id, s);
    const tr = document.createElement("tr");
    tr.dataset.testid = "session-" + id;
    const user = td("");
    user.appendChild(el("span", "who", via(s.user, s.actor)));
    if (s.groups && s.groups.length) { user.appendChild(el("span", "sub", s.groups.join(", "))); }
    tr.appendChild(user);
    tr.appendChild(td(s.profile));
    tr.appendChild(td(s.database));
    const started = td("");
    if (s.started_at) { started.appendChild(timeEl(s.started_at)); }
    tr.appendChild(started);
    const ended = td("");
    if (s.active) { ended.appendChild(badge("active", "active")); }
    else if (s.ended_at) { ended.appendChild(timeEl(s.ended_at)); }
    tr.appendChild(ended);
    tr.appendChild(td(s.statements, "num"));
    const denied = td(s.denied, "num");
    if (s.denied > 0) { denied.classList.add("warn"); }
    tr.appendChild(denied);
    const errs = td(s.errors, "num");
    if (s.errors > 0) { errs.classList.add("warn"); }
    tr.appendChild(errs);
    tr.appendChild(td(s.end_reason));
    const c = document.createElement("td");
    const b = el("button", "btn", "Replay");
    b.type = "button";
    b.dataset.testid = "replay-" + id;
    b.setAttribute("aria-label", "Replay session " + id + " of " + (s.user || "unknown user"));
    b.addEventListener("click", () => replay(id, tr));
    c.appendChild(b);
    tr.appendChild(c);
    const sid = el("td", "", "");
    sid.appendChild(el("code", "", id));
    tr.insertBefore(sid, tr.firstChild);
    body.appendChild(tr);
  }
}

async function verifyRecord() {
  const out = $("verify-status");
  out.className = "verify";
  out.textContent = "verifying…";
  try {
    const r = await api("GET", "/api/v1/sessions/verify");
    if (r && r.ok) {
      out.className = "verify verify-ok";
      out.textContent = "record ok" + (r.summary ? ": " + String(r.summary).replace(/^ok:\s*/, "") : "");
      setStatus("the session record verified", false);
    } else {
      out.className = "verify verify-failed";
      let p = r && r.problem ? r.problem : null;
      let detail = "";
      if (p && typeof p === "object") {
        detail = [p.segment, p.line ? "line " + p.line : "", p.seq ? "seq " + p.seq : "", p.session ? "session " + p.session : "", p.message]
          .filter(Boolean).join(", ");
      } else if (p) {
        detail = String(p);
      }
      out.textContent = "record FAILED verification" + (detail ? ": " + detail : "") + (r && r.summary ? " (" + r.summary + ")" : "");
      setStatus("the session record FAILED verification", true);
    }
  } catch (e) {
    out.className = "verify verify-failed";
    out.textContent = "verify: " + e.message;
    setStatus("verify: " + e.message, true);
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

function cellText(v) { return v === null || v === undefined ? null : fmtValue(v); }

function rowsTable(ev) {
  const rows = Array.isArray(ev.rows) ? ev.rows : [];
  const wrap = el("div", "scroll");
  const t = el("table", "rows");
  const names = Array.isArray(ev.columns) ? ev.columns.map(c => (c && typeof c === "object") ? (c.name || JSON.stringify(c)) : String(c)) : [];
  if (names.length) {
    const thead = el("thead");
    const hr = el("tr");
    for (const n of names) { const th = el("th", "", n); th.scope = "col"; hr.appendChild(th); }
    thead.appendChild(hr);
    t.appendChild(thead);
  }
  const tb = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    const vals = Array.isArray(r) ? r : (r && typeof r === "object" ? Object.values(r) : [r]);
    for (const v of vals) {
      const s = cellText(v);
      tr.appendChild(s === null ? td("NULL", "null") : td(s));
    }
    tb.appendChild(tr);
  }
  t.appendChild(tb);
  wrap.appendChild(t);
  return wrap;
}

const DECISION_KIND = { allow: "allow", deny: "deny", hold: "hold", approved: "approved", denied: "denied" };

function renderReplay(id, events) {
  $("replay").hidden = false;
  $("replay-id").textContent = id;
  const body = $("replay-body");
  body.replaceChildren();
  const first = events.find(ev => ev.type === "session_start") || events[0];
  const start = first ? Date.parse(first.time) : NaN;
  const s = sessionsByID.get(id);
  $("replay-summary").textContent = s
    ? via(s.user, s.actor) + (s.database ? " on " + s.database : "") + (s.profile ? " (" + s.profile + ")" : "") +
      " · " + events.length + " events · started " + fmtTime(s.started_at)
    : events.length + " events";
  events.forEach((ev, i) => {
    const seq = ev.seq !== undefined ? ev.seq : i;
    const li = el("li", "event type-" + (ev.type || "unknown") + (ev.decision ? " decision-" + ev.decision : ""));
    li.dataset.testid = "event-" + seq;
    const head = el("div", "event-head");
    const off = el("span", "offset", fmtOffset(Date.parse(ev.time) - start));
    off.title = ev.time || "";
    head.appendChild(off);
    head.appendChild(badge(String(ev.type || "event").replace("_", " "), "type"));
    if (ev.decision) { head.appendChild(badge(ev.decision, DECISION_KIND[ev.decision] || "type")); }
    if (ev.duration_us) { head.appendChild(el("span", "duration", fmtDuration(ev.duration_us))); }
    for (const a of (Array.isArray(ev.actions) ? ev.actions : [])) { head.appendChild(el("span", "chip", a)); }
    head.appendChild(el("span", "seq", "#" + seq));
    li.appendChild(head);
    if (ev.sql) { li.appendChild(sqlBlock(ev.sql)); }
    const pairs = [];
    if (ev.type === "session_start") {
      pairs.push(["User", ev.user], ["Actor", ev.actor], ["Groups", fmtValue(ev.groups)], ["Database", ev.database], ["Profile", ev.profile],
        ["Backend role", ev.backend_user], ["Client", ev.client_addr], ["Application", ev.application_name]);
    }
    if (ev.params && ev.params.length) { pairs.push(["Parameters", JSON.stringify(ev.params)]); }
    if (ev.approval_id) { pairs.push(["Approval", el("code", "", ev.approval_id)]); }
    if (ev.approval_state) { pairs.push(["Approval state", badge(ev.approval_state, DECISION_KIND[ev.approval_state] || ev.approval_state)]); }
    if (ev.decided_by) { pairs.push(["Decided by", ev.decided_by]); }
    if (ev.reason) { pairs.push(["Reason", ev.reason]); }
    if (ev.rows_total) { pairs.push(["Rows", String(ev.rows_total) + (Array.isArray(ev.rows) && ev.rows.length < ev.rows_total ? " (" + ev.rows.length + " recorded)" : "")]); }
    if (ev.type === "retention") { pairs.push(["Purged through", ev.purged_through_seq ? "seq " + ev.purged_through_seq : ""]); }
    if (pairs.length) { li.appendChild(dl(pairs, "facts compact")); }
    if (ev.error) { li.appendChild(el("p", "event-error", ev.error)); }
    if (Array.isArray(ev.rows) && ev.rows.length) { li.appendChild(rowsTable(ev)); }
    body.appendChild(li);
  });
  $("replay").scrollIntoView({ block: "start", inline: "nearest" });
}

// ---- live sessions ----

async function loadLive() {
  const gen = ++liveGen;
  try {
    const data = await api("GET", "/api/v1/live");
    if (gen !== liveGen) { return; }
    const list = firstArray(data, "sessions");
    renderLive(list);
    let msg = "loaded " + list.length + " live sessions";
    if (data && data.incomplete) { msg += " (" + data.incomplete + ")"; }
    setStatus(msg, Boolean(data && data.incomplete));
  } catch (e) {
    if (gen !== liveGen) { return; }
    renderLive([]);
    setStatus("live sessions: " + e.message, true);
  }
}

function renderLive(list) {
  const body = $("live-body");
  body.replaceChildren();
  $("live-empty").hidden = list.length !== 0;
  $("live-table").hidden = list.length === 0;
  for (const s of list) {
    const id = s.session || "";
    const tr = document.createElement("tr");
    tr.dataset.testid = "live-" + id;
    const sid = td("");
    sid.appendChild(el("code", "", id));
    tr.appendChild(sid);
    const user = td(via(s.user, s.actor), "who");
    user.dataset.testid = "live-user-" + id;
    tr.appendChild(user);
    tr.appendChild(td(fmtValue(s.groups)));
    tr.appendChild(td(s.profile));
    tr.appendChild(td(s.database));
    tr.appendChild(td(s.client_addr));
    tr.appendChild(td(s.application_name));
    tr.appendChild(td(s.backend_user, "break"));
    const started = td("");
    if (s.started_at) {
      started.appendChild(timeEl(s.started_at));
      started.appendChild(el("span", "sub")).appendChild(relEl(s.started_at, ""));
    }
    tr.appendChild(started);
    tr.appendChild(td(s.gateway));
    const c = document.createElement("td");
    const b = el("button", "btn btn-deny", "End session");
    b.type = "button";
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
  updatePolling();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-save").addEventListener("click", () => {
    const v = $("token").value.trim();
    $("token").value = "";
    if (v) { sessionStorage.setItem(TOKEN_KEY, v.replace(/^Bearer\s+/i, "")); }
    showTokenState();
    knownPending = null;
    showTab(currentTab());
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    clearViews();
    updatePolling();
    setStatus("token forgotten", false);
  });
  for (const n of Object.keys(TABS)) {
    $("tab-" + n).addEventListener("click", () => showTab(n));
  }
  $("approvals-refresh").addEventListener("click", loadApprovals);
  $("state-filter").addEventListener("change", loadApprovals);
  $("profile-filter").addEventListener("change", loadApprovals);
  $("sessions-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadSessions(); });
  $("sessions-filter").addEventListener("reset", () => { setTimeout(loadSessions, 0); });
  for (const name of ["since", "decision"]) { $("sf-" + name).addEventListener("change", loadSessions); }
  $("verify").addEventListener("click", verifyRecord);
  $("signout").addEventListener("click", signOut);
  $("live-refresh").addEventListener("click", loadLive);
  document.addEventListener("visibilitychange", () => {
    updatePolling();
    if (!document.hidden && currentTab() === "approvals") { pollApprovals(); }
  });
  setInterval(refreshAges, AGE_MS);
  showTokenState();
  loadWebSession().then(() => showTab("approvals"));
});
