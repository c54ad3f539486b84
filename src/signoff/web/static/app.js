// signoff's approval page. Every value from the server is shown with textContent: nothing an
// agent put in a tool call can become HTML or script here.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
let csrf = $('meta[name="csrf"]').content;
const totpRequired = $('meta[name="totp"]').content === "1";
const scope = $('meta[name="scope"]').content;  // a review link's one call, or "" for the owner
const me = $('meta[name="user"]').content;  // team mode: the signed-in person
const team = $('meta[name="team"]').content === "1";
const FOLD = 400;
const FACTS = 4;
let skew = 0;  // server clock minus ours (seconds), so countdowns match the server's deadlines
const seen = new Set();
let focused = false;
// The team dashboard's view lives in the URL's query (bookmark it, send it): machine, agent and
// server narrow the queue and the history (the server applies them, exactly); `view` is the tab;
// tool, by and decision are the history's own filter.
const FILTERS = ["machine", "agent", "server"];
const query = new URLSearchParams(location.search);
const known = Object.fromEntries(FILTERS.map((key) => [key, new Set()]));
let events = null;

function say(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

async function post(url, body) {
  if (totpRequired) body.totp = $("#totp").value.trim();
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (data.csrf) csrf = data.csrf;  // every token is single use: the answer brings the next one
  if (!response.ok) { say(data.error || `request failed (${response.status})`); return { error: data.error || `request failed (${response.status})`, status: response.status }; }
  say("");
  if (totpRequired) $("#totp").value = "";
  return data;
}

const now = () => Date.now() / 1000 + skew;

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function readableTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso || "");
  const ago = Date.now() / 1000 - when.getTime() / 1000;
  const rel = ago < 60 ? "just now" : ago < 3600 ? `${Math.floor(ago / 60)} min ago` : ago < 86400 ? `${Math.floor(ago / 3600)} h ago` : "";
  const sameDay = new Date().toDateString() === when.toDateString();
  const text = sameDay ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : when.toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return rel ? `${text} (${rel})` : text;
}

// Invisible and direction-changing characters (RLO, zero-width, BOM, C1 controls…) could make a
// tool call read as something else; they are shown as visible escapes instead.
const INVISIBLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
function visible(text) {
  return String(text).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function pretty(value) { return visible(JSON.stringify(value, null, 2)); }

function oneLine(value, limit = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const flat = visible(String(text).replace(/\s+/g, " ").trim());
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

function folded(args) {
  // long string values are cut in the summary; "Show the full arguments" reveals them
  const cut = {};
  let long = false;
  for (const [k, v] of ordered(args)) {
    if (typeof v === "string" && v.length > FOLD) { cut[k] = v.slice(0, FOLD) + ` … (${v.length - FOLD} more characters)`; long = true; }
    else cut[k] = v;
  }
  return [pretty(cut), long];
}

// ------------------------------------------------------------------ one held call

function tickCountdown(node) {
  if (node.classList.contains("gone")) return;
  const p = $(".countdown", node);
  const left = Number(node.dataset.deadline) - now();
  const then = node.dataset.onTimeout === "allow" ? "then approved automatically" : "then denied automatically";
  if (left > 0) {
    p.textContent = `${duration(left)} left to decide, ${then}`;
    p.classList.toggle("urgent", left < 30);
  } else {
    p.textContent = "Time is up: signoff is closing this call.";
    p.classList.add("urgent");
  }
}

// Arguments arrive with sorted keys; show the ones that decide a call first (who, where, what),
// and long payloads (bodies, file contents) last.
const FIRST = ["from", "to", "recipient", "recipients", "cc", "bcc", "subject", "title", "method", "url", "path", "paths",
  "source", "destination", "file", "filename", "command", "cmd", "cwd", "sql", "query", "database", "table",
  "amount", "currency", "payee", "branch", "repo_path", "name"];
const LAST = ["body", "content", "text", "message", "data", "html", "diff", "patch", "description", "edits"];

function ordered(args) {
  const rank = (k) => { const key = k.toLowerCase(); const i = FIRST.indexOf(key); return i >= 0 ? i : LAST.includes(key) ? 1000 : 500; };
  return Object.entries(args || {}).map((e, i) => [e, i]).sort((a, b) => rank(a[0][0]) - rank(b[0][0]) || a[1] - b[1]).map((x) => x[0]);
}

function showFacts(node, held) {
  // What the call does, first: the facts the policy recognised when there are any, else the
  // first arguments (keys in the tool's order), each on one short line.
  const dl = $(".facts", node);
  // held.facts (from the policy, when it recognises the action): [{label, value}] or {label: value}
  const given = Array.isArray(held.facts) ? held.facts
    : held.facts && typeof held.facts === "object" ? Object.entries(held.facts).map(([label, value]) => ({ label, value })) : [];
  held.facts = given;
  const facts = given.length ? given : ordered(held.arguments).slice(0, FACTS).map(([k, v]) => ({ label: k, value: v }));
  for (const fact of facts) {
    const dt = document.createElement("dt");
    dt.textContent = visible(fact.label ?? fact.name ?? "");
    const dd = document.createElement("dd");
    dd.textContent = oneLine(fact.value ?? "");
    dl.append(dt, dd);
  }
  const more = Object.keys(held.arguments || {}).length - (held.facts && held.facts.length ? 0 : FACTS);
  if (more > 0 && !(held.facts && held.facts.length)) {
    const dd = document.createElement("dd");
    dd.className = "more";
    dd.textContent = `+ ${more} more argument${more > 1 ? "s" : ""} below`;
    dl.appendChild(dd);
  }
}

// What the call does, as signoff.approvals.present built it (held.presentation): the headline, the facts
// (risky ones marked, signoff's notes such as "external" apart from the call's own values) and the
// preview (a file diff with added/removed lines coloured, formatted SQL, an email body). Text only:
// every piece of tool data goes in through textContent.
function showPresentation(node, held) {
  const shown = held.presentation;
  if (!shown || typeof shown.headline !== "string") return false;
  $(".headline", node).textContent = visible(shown.headline);
  const dl = $(".facts", node);
  for (const fact of shown.facts || []) {
    const dt = document.createElement("dt");
    dt.textContent = visible(fact.label || "");
    const dd = document.createElement("dd");
    dd.textContent = oneLine(fact.value ?? "", 400);
    if (fact.note) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = ` (${visible(fact.note)})`;
      dd.appendChild(note);
    }
    if (fact.risky) { dt.classList.add("risky"); dd.classList.add("risky"); dt.title = "this is what the rule is about"; }
    dl.append(dt, dd);
  }
  const preview = shown.preview;
  if (preview && (preview.text || preview.note)) {
    const box = $(".preview", node);
    box.hidden = false;
    box.classList.add(`kind-${preview.kind || "text"}`);
    $(".preview-title", node).textContent = visible(preview.title || "");
    const pre = $(".preview-text", node);
    for (const line of String(preview.text || "").split("\n")) {
      const span = document.createElement("span");
      if (preview.kind === "diff") {
        span.className = line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "ctx";
      }
      span.textContent = visible(line);
      pre.appendChild(span);
    }
    $(".preview-note", node).textContent = preview.note ? visible(preview.note) : "";
  }
  return true;
}

async function fullCall(held) {
  const response = await fetch(`/api/held/${encodeURIComponent(held.id)}`, { credentials: "same-origin" });
  return response.ok ? response.json() : null;
}

function setupEditor(node, held) {
  const editor = $(".editor", node);
  const raw = $(".edited", node);
  const error = $(".edit-error", node);
  let form = null;
  let schema = held.input_schema;
  let args = held.arguments;

  function tab(which) {
    const isForm = which === "form" && form;
    $(".schema-form", node).hidden = !isForm;
    $(".raw", node).hidden = !!isForm;
    $(".tab-form", node).setAttribute("aria-selected", isForm ? "true" : "false");
    $(".tab-raw", node).setAttribute("aria-selected", isForm ? "false" : "true");
  }

  $(".edit", node).addEventListener("click", async () => {
    editor.hidden = !editor.hidden;
    if (editor.hidden) return;
    if (held.arguments_folded || held.input_schema_folded) {  // the queue carries a folded copy
      const full = await fullCall(held);
      if (full) { args = full.arguments; schema = full.input_schema; }
    }
    raw.value = pretty(args);
    error.textContent = "";
    $(".tab-form", node).hidden = !SchemaForm.supported(schema);
    form = SchemaForm.supported(schema) ? SchemaForm.build($(".schema-form", node), schema, args) : null;
    tab(form ? "form" : "raw");
  });
  $(".tab-form", node).addEventListener("click", () => {
    let parsed;
    try { parsed = JSON.parse(raw.value); } catch (e) { error.textContent = `The JSON is not valid, so the form cannot show it: ${e.message}`; return; }
    form = SchemaForm.build($(".schema-form", node), schema, parsed || {});
    error.textContent = "";
    tab("form");
  });
  $(".tab-raw", node).addEventListener("click", () => {
    if (form && !$(".schema-form", node).hidden) raw.value = pretty(form.read().value);
    error.textContent = "";
    tab("raw");
  });
  editor.addEventListener("input", () => { error.textContent = ""; });
  $(".approve-edited", node).addEventListener("click", () => {
    let edited;
    if (form && !$(".schema-form", node).hidden) {
      const { value, errors } = form.read();
      if (errors.length) { error.textContent = errors.length === 1 ? errors[0] : `${errors.length} problems: ${errors.join(" ")}`; return; }
      edited = value;
    } else {
      try { edited = JSON.parse(raw.value); }
      catch (e) { error.textContent = `Not valid JSON: ${e.message}`; return; }
      if (edited === null || typeof edited !== "object" || Array.isArray(edited)) {
        error.textContent = "The arguments must be a JSON object, like {\"path\": \"/tmp/x\"}."; return;
      }
    }
    decide(held, true, { arguments: edited }, (problem) => { error.textContent = problem; });
  });
}

function showNeeds(node, held) {
  // Who may approve and, in team mode, the votes so far ("Votes: approved by alice (1 of 2)").
  $(".needs", node).textContent = held.needs ? `Needs ${held.needs}` : "";
  $(".needs", node).hidden = !held.needs;
  const progress = held.progress && held.progress.text;
  $(".votes", node).textContent = progress ? `Votes: ${progress}` : "";
  $(".votes", node).hidden = !progress;
}

function renderHeld(held) {
  const node = $("#held-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = held.id;
  node.id = `call-${held.id}`;
  node.dataset.deadline = String(held.deadline);
  node.dataset.onTimeout = held.on_timeout || "deny";
  $(".tool", node).textContent = visible(held.qualified);
  $(".who", node).textContent = held.who ? visible(held.who) : "";
  showNeeds(node, held);
  const risk = $(".risk", node);
  risk.textContent = `risk: ${held.risk}`;
  risk.title = held.risk_why;
  risk.classList.add(held.risk);
  tickCountdown(node);
  if (!showPresentation(node, held)) showFacts(node, held);
  $(".reason", node).textContent = `Held because: ${held.reason}`;
  $(".meta", node).textContent = `id ${held.id} · client ${held.client || "?"} · session ${held.session || "?"} · ` +
    `held at ${clock(held.created)}` + (held.rule ? ` · rule ${held.rule}` : "") + ` · risk: ${held.risk_why}`;
  const [text, long] = folded(held.arguments);
  const pre = $(".args", node);
  pre.textContent = text;
  const expand = $(".expand", node);
  expand.hidden = !long && !held.arguments_folded;
  expand.addEventListener("click", async () => {
    const full = held.arguments_folded ? await fullCall(held) : held;
    if (full) { pre.textContent = pretty(Object.fromEntries(ordered(full.arguments))); pre.classList.add("shown"); expand.hidden = true; }
  });
  $(".context", node).addEventListener("toggle", async (event) => {
    if (!event.target.open || node.dataset.loaded) return;
    node.dataset.loaded = "1";
    const full = await fullCall(held);
    if (!full) return;
    const history = $(".history", node);
    for (const h of full.session_history || []) {
      const li = document.createElement("li");
      li.textContent = `${h.tool || "?"} → ${h.outcome || "?"} ${oneLine(h.arguments || {}, 160)}`;
      history.appendChild(li);
    }
    if (!history.children.length) history.textContent = "none";
    const list = $(".similar", node);
    for (const s of full.similar || []) {
      const li = document.createElement("li");
      li.textContent = `${readableTime(s.time)} ${s.decision} by ${s.by}${s.reason ? `: ${s.reason}` : ""}${s.same_arguments ? " (same arguments)" : ""}`;
      list.appendChild(li);
    }
    if (!list.children.length) list.textContent = "none";
  });
  $(".approve", node).addEventListener("click", () =>
    decide(held, true, { remember: scope ? null : ($(".remember", node).value || null) }));
  $(".deny", node).addEventListener("click", () =>
    decide(held, false, { reason: $(".deny-reason", node).value.trim() || null }));
  setupEditor(node, held);
  return node;
}

// A call nobody waits for any more (its proxy died, its client stopped waiting or withdrew it):
// the card stays, greyed, with the reason in plain words; nothing on it can decide the call. It
// leaves the queue at `gone.until` (server time) or when dismissed.
function markGone(node, gone) {
  if (node.classList.contains("gone")) return;
  node.classList.add("gone");
  for (const control of node.querySelectorAll("button, input, select, textarea")) control.disabled = true;
  const editor = $(".editor", node);
  if (editor) editor.hidden = true;
  const box = document.createElement("p");
  box.className = "gone-reason";
  box.setAttribute("role", "status");
  const head = document.createElement("strong");
  head.textContent = `${visible(gone.words)}: cannot be approved.`;
  const why = document.createElement("span");
  why.textContent = ` ${gone.reason ? `${visible(gone.reason)}. ` : ""}Nothing ran.`;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "dismiss";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => node.remove());
  box.append(head, why, " ", dismiss);
  $(".title", node).after(box);
  $(".countdown", node).textContent = "";
  setTimeout(() => node.remove(), Math.max(0, (Number(gone.until) - now()) * 1000));
}

function confirmDecision(held, result) {
  // The decision is final: say so, and say what happens next.
  const li = document.createElement("li");
  li.className = `decided ${result.status}`;
  const head = document.createElement("strong");
  const what = result.status === "approved" ? "Approved" : result.status === "denied" ? "Denied" : `Closed (${result.status})`;
  head.textContent = `${what}: ${visible(held.qualified)} (${held.id}) at ${clock(result.decided_at || now())}.`;
  const body = document.createElement("span");
  body.textContent = result.status === "approved"
    ? " This is final: the call is sent to the tool now and cannot be undone."
    : result.status === "denied" ? " This is final: the agent is told the call was refused." : "";
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.textContent = "OK";
  dismiss.addEventListener("click", () => li.remove());
  li.append(head, body, dismiss);
  $("#decided").prepend(li);
  while ($("#decided").children.length > 5) $("#decided").lastElementChild.remove();
}

async function decide(held, approve, extra, onError) {
  const done = await post("/api/decide", { id: held.id, approve, ...extra });
  if (done.error) {
    const node = document.getElementById(`call-${held.id}`);
    if (done.status === 410 && done.gone) {  // nobody waits for it any more: the card says why
      if (node) markGone(node, done.gone);
      updateCount(waitingCount());
    } else if (done.status === 409) {  // someone else decided first: that decision stands
      say("");
      const li = document.createElement("li");
      li.className = "decided other";
      li.textContent = `Not changed: ${done.error}`;
      $("#decided").prepend(li);
      if (node) node.remove();
    } else if (onError) onError(done.error);
    return;
  }
  const node = document.getElementById(`call-${held.id}`);
  if (done.status === "pending") {  // a vote that counted; the call waits for more people
    if (node) showNeeds(node, { needs: held.needs, progress: done.progress });
    say(`Your vote counted: ${visible(held.qualified)} (${held.id}) ${done.progress ? done.progress.text : "still waits"}.`);
    return;
  }
  if (node) node.remove();
  confirmDecision(held, done);
  updateCount(waitingCount());
}

const waitingCount = () => $("#queue").querySelectorAll("li.held:not(.gone)").length;

// ------------------------------------------------------------------ the queue

function updateCount(count) {
  $("#count").textContent = String(count);
  $("#empty").hidden = count > 0 || !!scope || document.body.classList.contains("killed");
  document.title = count ? `(${count}) signoff` : "signoff";
}

function renderQueue(state) {
  skew = state.now - Date.now() / 1000;
  const list = $("#queue");
  const ids = new Set(state.pending.map((h) => h.id));
  const gone = new Map((state.gone || []).map((g) => [g.id, g]));
  for (const node of [...list.children]) {
    if (ids.has(node.dataset.id) || node.classList.contains("gone")) continue;
    if (gone.has(node.dataset.id)) markGone(node, gone.get(node.dataset.id));  // was on screen: say why it went
    else node.remove();
  }
  const have = new Set([...list.children].map((n) => n.dataset.id));
  for (const held of state.pending) {
    if (!have.has(held.id)) list.appendChild(renderHeld(held));
    else showNeeds(document.getElementById(`call-${held.id}`), held);  // a vote since: the count moved
    if (!seen.has(held.id)) {
      seen.add(held.id);
      if (window.Notification && Notification.permission === "granted" && document.hidden)
        new Notification(held.presentation ? visible(held.presentation.headline) : `signoff: approve ${held.qualified}?`, { body: held.reason, tag: held.id });
    }
  }
  updateCount(state.pending.length);
  offer(state.facets);
  const outside = Number(state.hidden) || 0;
  $("#filtered-out").hidden = !outside;
  $("#filtered-out").textContent = outside ? `${outside} more call${outside > 1 ? "s" : ""} waiting outside this filter.` : "";
  const kill = state.kill;
  $("#kill-banner").hidden = !kill.on;
  $("#refusing").hidden = !kill.on;
  $("#kill-detail").textContent = kill.on ? `Reason: ${kill.reason || "none given"}${kill.by ? ` (by ${kill.by}` : ""}` +
    `${kill.by && kill.at ? `, ${clock(kill.at)})` : kill.by ? ")" : ""}` : "";
  document.body.classList.toggle("killed", !!kill.on);
  updateCount(state.pending.length);
  $("#kill").textContent = kill.on ? "Resume tool calls" : "Stop all tool calls";
  $("#kill").dataset.on = kill.on ? "1" : "";
  if (scope) {
    const outcome = state.scoped_outcome;
    const box = $("#scoped-outcome");
    box.hidden = !outcome;
    if (outcome) box.textContent = `${outcome.qualified} (${outcome.id}) is no longer waiting: ${outcome.status}` +
      `${outcome.by ? ` by ${outcome.by}` : ""}${outcome.channel ? ` (${outcome.channel})` : ""}.`;
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && !focused) {
    const node = document.getElementById(`call-${wanted}`);
    if (node) { focused = true; node.classList.add("focus"); node.scrollIntoView({ block: "start" }); }
  }
}

function connect() {
  if (events) events.close();
  const narrowed = narrowing().toString();
  events = new EventSource(narrowed ? `/events?${narrowed}` : "/events");
  events.addEventListener("queue", (event) => renderQueue(JSON.parse(event.data)));
  events.onerror = () => say("Lost the connection to signoff; retrying…");
  events.onopen = () => say("");
}

// ------------------------------------------------------------------ narrowing the view (machine, agent, server)

function narrowing() {
  const out = new URLSearchParams();
  for (const key of FILTERS) if (query.get(key)) out.set(key, query.get(key));
  return out;
}

function rememberUrl() {
  const text = query.toString();
  history.replaceState(null, "", `${location.pathname}${text ? `?${text}` : ""}${location.hash}`);
}

// The selects offer the values seen (queue, history, running proxies) and the URL's own, each
// shown as text with invisible characters escaped: agent names come from MCP clients.
function offer(facets) {
  for (const key of FILTERS) {
    for (const value of (facets && facets[key]) || []) known[key].add(String(value));
    const select = $(`#narrow select[name="${key}"]`);
    const wanted = query.get(key) || "";
    const values = [...known[key]];
    if (wanted && !known[key].has(wanted)) values.push(wanted);
    values.sort();
    const signature = JSON.stringify(values);
    if (select.dataset.values !== signature) {  // rebuilt only when the choices change
      select.dataset.values = signature;
      const options = values.map((value) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = oneLine(value, 60);
        option.title = visible(value);
        return option;
      });
      select.replaceChildren(select.options[0], ...options);
    }
    select.value = wanted;
  }
  const narrowed = FILTERS.some((key) => query.get(key));
  $("#narrow-clear").hidden = !narrowed;
  // one machine, one agent, one server: nothing to choose, so no bar (a phone keeps its room)
  $("#narrow").classList.toggle("pointless", !narrowed && !FILTERS.some((key) => known[key].size > 1));
}

function narrow(changes) {
  for (const [key, value] of Object.entries(changes)) { if (value) query.set(key, value); else query.delete(key); }
  rememberUrl();
  offer();
  connect();
  if (!$("#tab-history").hidden) loadHistory();
}

// ------------------------------------------------------------------ history

function cell(tr, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

async function loadHistory(form) {
  const params = new URLSearchParams(new FormData(form || $("#filter")));
  for (const [key, value] of [...params]) { if (value) query.set(key, value); else query.delete(key); }
  rememberUrl();
  for (const [key, value] of narrowing()) params.set(key, value);
  const [audit, stats] = await Promise.all([
    fetch(`/api/audit?${params}`, { credentials: "same-origin" }).then((r) => r.json()),
    fetch("/api/stats", { credentials: "same-origin" }).then((r) => r.json()),
  ]);
  offer(audit.facets);
  $("#people").replaceChildren(...(audit.facets.by || []).map((name) => { const o = document.createElement("option"); o.value = name; return o; }));
  const body = $("#audit tbody");
  body.replaceChildren();
  for (const row of audit.rows) {
    const tr = document.createElement("tr");
    cell(tr, readableTime(row.time), "when").title = row.time;
    cell(tr, visible(`${row.server}.${row.tool}`));
    cell(tr, row.decision, `decision decision-${row.decision}`);
    const made = row.identity && typeof row.identity === "object" ? row.identity : null;
    cell(tr, made ? visible(`${made.agent || "?"}@${made.machine || "?"}`) : "", "agent");
    cell(tr, visible(`${row.decided_by || ""}${row.channel ? ` (${row.channel})` : ""}`));
    cell(tr, row.reason);
    const args = typeof row.arguments === "string" ? row.arguments : JSON.stringify(row.arguments);
    const td = cell(tr, args && args.length > 240 ? `${args.slice(0, 240)}… (click for all)` : args, "args");
    if (args && args.length > 240) td.addEventListener("click", () => { td.textContent = args; }, { once: true });
    cell(tr, row.id, "num");
    body.appendChild(tr);
  }
  const sbody = $("#stats tbody");
  sbody.replaceChildren();
  for (const s of stats.tools) {
    const tr = document.createElement("tr");
    for (const value of [s.tool, s.held, s.approved, s.denied, s.timeout, s.suggestion || ""]) cell(tr, value);
    sbody.appendChild(tr);
  }
}

// ------------------------------------------------------------------ policies

async function loadPolicy() {
  const data = await fetch("/api/policy", { credentials: "same-origin" }).then((r) => r.json());
  showPolicy(data);
}

function showRunning(data) {
  const box = $("#running");
  box.replaceChildren();
  const head = document.createElement("h3");
  head.textContent = "What the running proxies use";
  box.appendChild(head);
  const list = document.createElement("ul");
  for (const group of data.running || []) {
    const li = document.createElement("li");
    const what = group.kind === "preset" ? `the preset “${group.source}”` : group.kind === "none" ? "no policy (everything allowed)" : group.source;
    li.textContent = `${group.proxies} prox${group.proxies === 1 ? "y" : "ies"}${group.servers.length ? ` (${group.servers.join(", ")})` : ""}: ` +
      `${what}, version ${group.hash}` + (group.same_as_shown === false && data.hash ? " — started with another version than the one shown below (they reload the file within a second; a refused edit keeps the last good one)" : "");
    list.appendChild(li);
  }
  if (!list.children.length) {
    const li = document.createElement("li");
    li.textContent = "No proxy is running right now (they record their policy when they start).";
    list.appendChild(li);
  }
  box.appendChild(list);
}

function showPolicy(data) {
  showRunning(data);
  $("#policy-path").textContent = !data.path ? "No policy file given: start `signoff ui --policy FILE` to view and edit one here."
    : data.editable ? `Policy file: ${data.path} (version ${data.hash || "?"}; proxies reload it on change)`
    : `Shown read-only: ${data.path}, the policy the running proxies use (start \`signoff ui --policy FILE\` to edit a file here).`;
  $("#policy-problem").hidden = !data.problem;
  $("#policy-problem").textContent = data.problem || "";
  $("#policy-text").textContent = data.text || "";
  $("#add-rule").hidden = !data.editable;
  const list = $("#rules");
  list.replaceChildren();
  for (const rule of data.rules || []) {
    const li = document.createElement("li");
    li.className = "rule";
    const where = document.createElement("span");
    where.className = "meta";
    where.textContent = `rule ${rule.index + 1}, line ${rule.line}`;
    const pre = document.createElement("pre");
    pre.textContent = rule.yaml || rule.summary;
    li.append(where, pre);
    if (data.editable) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-rule danger";
      remove.textContent = "Remove this rule";
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Remove rule ${rule.index + 1}?\n\n${rule.yaml || rule.summary}\n\nRunning proxies stop applying it within a second.`)) return;
        const done = await post("/api/policy", { remove: rule.index });
        if (!done.error) showPolicy({ ...data, text: done.text, rules: done.rules });
      });
      li.appendChild(remove);
    }
    list.appendChild(li);
  }
}

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.tab === name) button.setAttribute("aria-current", "page"); else button.removeAttribute("aria-current");
  }
  for (const tab of ["queue", "history", "policies", "proxies"]) $(`#tab-${tab}`).hidden = tab !== name;
  $("#narrow").hidden = name !== "queue" && name !== "history";
  if (name === "queue") query.delete("view"); else query.set("view", name);
  rememberUrl();
  if (name === "history") loadHistory();
  if (name === "policies") loadPolicy();
  if (name === "proxies") loadProxies();
}

// ------------------------------------------------------------------ proxies: which machines and agents are connected

const PROXY_STATE = { live: "running", gone: "stopped (stale entry)", unknown: "on another host: not checked from here" };

async function loadProxies() {
  const response = await fetch("/api/proxies", { credentials: "same-origin" });
  if (!response.ok) return;
  const data = await response.json();
  const body = $("#proxies tbody");
  body.replaceChildren();
  for (const p of data.proxies) {
    const tr = document.createElement("tr");
    tr.className = `proxy ${p.state}`;
    cell(tr, visible(p.machine) + (p.host && p.host !== p.machine ? ` (host ${visible(p.host)})` : ""), "machine");
    cell(tr, p.agent ? visible(p.agent) : "each client's own name", "agent");
    cell(tr, visible(p.owner || ""));
    cell(tr, visible((p.servers || []).join(", ")), "servers");
    cell(tr, visible(`${p.policy || p.kind || "none"}${p.policy_hash ? `, version ${p.policy_hash}` : ""}`));
    cell(tr, PROXY_STATE[p.state] || String(p.state), "state");
    cell(tr, p.noted_at ? readableTime(new Date(p.noted_at * 1000).toISOString()) : "");
    body.appendChild(tr);
  }
  $("#no-proxies").hidden = data.proxies.length > 0;
}

document.addEventListener("DOMContentLoaded", () => {
  if (scope) {
    document.body.classList.add("scoped");
    $("#queue-title").textContent = "One call for your decision";
  }
  if (totpRequired) $(".totp").hidden = false;
  for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#filter").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(event.target); });
  for (const field of $("#filter").elements) if (field.name && query.get(field.name)) field.value = query.get(field.name);
  for (const select of document.querySelectorAll("#narrow select")) {
    select.addEventListener("change", () => narrow({ [select.name]: select.value }));
  }
  $("#narrow-clear").addEventListener("click", () => narrow(Object.fromEntries(FILTERS.map((key) => [key, ""]))));
  $("#proxies-refresh").addEventListener("click", loadProxies);
  setInterval(() => { if (!$("#tab-proxies").hidden) loadProxies(); }, 10000);
  offer();
  $("#add-rule").addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = {};
    for (const [k, v] of new FormData(event.target)) if (String(v).trim()) rule[k] = String(v).trim();
    const done = await post("/api/policy", { rule });
    $("#rule-error").hidden = !done.error;
    $("#rule-error").textContent = done.error || "";
    if (!done.error) { event.target.reset(); loadPolicy(); }
  });
  $("#kill").addEventListener("click", async () => {
    const on = !$("#kill").dataset.on;
    const reason = on ? (window.prompt("Why stop all tool calls?", "stopped from the web page") || "stopped from the web page") : "";
    await post("/api/kill", { on, reason });
  });
  $("#notify").addEventListener("click", async () => {
    if (window.Notification) await Notification.requestPermission();
  });
  setInterval(() => { for (const node of $("#queue").children) tickCountdown(node); }, 1000);
  if (team) setupTeam();
  connect();
  const view = query.get("view");
  if (!scope && ["history", "policies", "proxies"].includes(view)) showTab(view);
});

// ------------------------------------------------------------------ team mode: who is signed in, who looks at what

function setupTeam() {
  $("#who").hidden = false;
  $("#who-name").textContent = `signed in as ${me}`;
  for (const label of document.querySelectorAll(".team-only")) label.hidden = false;
  $("#signout").addEventListener("click", async () => {
    await fetch("/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
    location.assign("/signin");
  });
  const poll = async () => {
    const ids = [...$("#queue").children].map((node) => node.dataset.id).filter(Boolean);
    const response = await fetch(`/api/presence?ids=${encodeURIComponent(ids.join(","))}`, { credentials: "same-origin" });
    if (response.status === 401) { location.assign("/signin"); return; }  // signed out (idle, or removed)
    if (!response.ok) return;
    const data = await response.json();
    for (const node of $("#queue").children) {
      const others = (data.viewers[node.dataset.id] || []).filter((name) => name !== me);
      const box = $(".viewers", node);
      if (!box) continue;
      box.hidden = !others.length;
      box.textContent = others.length ? `also looking: ${others.join(", ")}` : "";
    }
  };
  poll();
  setInterval(poll, 5000);
}
