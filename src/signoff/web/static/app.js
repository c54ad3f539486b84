// signoff's approval page. Every value from the server is shown with textContent: nothing an
// agent put in a tool call can become HTML or script here.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
let csrf = $('meta[name="csrf"]').content;
const totpRequired = $('meta[name="totp"]').content === "1";
const FOLD = 400;
let pendingCount = 0;
const seen = new Set();

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
  if (!response.ok) { say(data.error || `request failed (${response.status})`); return null; }
  say("");
  if (totpRequired) $("#totp").value = "";
  return data;
}

function age(created) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - created));
  return s < 60 ? `${s}s ago` : `${Math.floor(s / 60)}m ${s % 60}s ago`;
}

function pretty(value) { return JSON.stringify(value, null, 2); }

function folded(args) {
  // long string values are cut in the summary; "Show the full arguments" reveals them
  const cut = {};
  let long = false;
  for (const [k, v] of Object.entries(args || {})) {
    if (typeof v === "string" && v.length > FOLD) { cut[k] = v.slice(0, FOLD) + ` … (${v.length - FOLD} more characters)`; long = true; }
    else cut[k] = v;
  }
  return [pretty(cut), long];
}

function renderHeld(held) {
  const node = $("#held-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = held.id;
  $(".tool", node).textContent = held.qualified;
  const risk = $(".risk", node);
  risk.textContent = `risk: ${held.risk}`;
  risk.title = held.risk_why;
  risk.classList.add(held.risk);
  $(".id", node).textContent = held.id;
  $(".age", node).textContent = age(held.created);
  $(".reason", node).textContent = `Held because: ${held.reason}` + (held.rule ? ` (rule ${held.rule})` : "");
  const deadline = Math.max(0, Math.round(held.deadline - Date.now() / 1000));
  $(".meta", node).textContent = `client ${held.client || "?"} · session ${held.session || "?"} · ` +
    `${held.on_timeout === "allow" ? "allowed" : "denied"} automatically in ${deadline}s`;
  const [text, long] = folded(held.arguments);
  const pre = $(".args", node);
  pre.textContent = text;
  const expand = $(".expand", node);
  expand.hidden = !long;
  expand.addEventListener("click", () => { pre.textContent = pretty(held.arguments); expand.hidden = true; });
  const history = $(".history", node);
  for (const h of held.session_history || []) {
    const li = document.createElement("li");
    li.textContent = `${h.tool || h.qualified || "?"} → ${h.outcome || h.decision || "?"} ${JSON.stringify(h.arguments || {}).slice(0, 160)}`;
    history.appendChild(li);
  }
  if (!history.children.length) history.textContent = "none";
  $(".context", node).addEventListener("toggle", async (event) => {
    if (!event.target.open || node.dataset.loaded) return;
    node.dataset.loaded = "1";
    const response = await fetch(`/api/held/${encodeURIComponent(held.id)}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const full = await response.json();
    const list = $(".similar", node);
    for (const s of full.similar || []) {
      const li = document.createElement("li");
      li.textContent = `${s.time} ${s.decision} by ${s.by}${s.reason ? `: ${s.reason}` : ""}${s.same_arguments ? " (same arguments)" : ""}`;
      list.appendChild(li);
    }
    if (!list.children.length) list.textContent = "none";
  });
  $(".approve", node).addEventListener("click", () =>
    decide(held.id, true, { remember: $(".remember", node).value || null }));
  $(".deny", node).addEventListener("click", () =>
    decide(held.id, false, { reason: $(".deny-reason", node).value.trim() || null }));
  $(".edit", node).addEventListener("click", () => {
    const editor = $(".editor", node);
    editor.hidden = !editor.hidden;
    if (!editor.hidden) { $(".edited", node).value = pretty(held.arguments); $(".edited", node).focus(); }
  });
  $(".approve-edited", node).addEventListener("click", () => {
    let args;
    try { args = JSON.parse($(".edited", node).value); }
    catch (e) { $(".edit-error", node).textContent = `Not valid JSON: ${e.message}`; return; }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      $(".edit-error", node).textContent = "The arguments must be a JSON object."; return;
    }
    const problem = checkSchema(held.input_schema, args);
    if (problem) { $(".edit-error", node).textContent = problem; return; }
    decide(held.id, true, { arguments: args });
  });
  return node;
}

function checkSchema(schema, args) {
  // the checks a person most needs while editing: required keys and basic JSON types
  if (!schema || typeof schema !== "object") return "";
  for (const key of schema.required || []) if (!(key in args)) return `"${key}" is required by the tool.`;
  const types = { string: "string", number: "number", integer: "number", boolean: "boolean", object: "object", array: "object" };
  for (const [key, spec] of Object.entries(schema.properties || {})) {
    if (!(key in args) || !spec || !spec.type || !types[spec.type]) continue;
    const ok = typeof args[key] === types[spec.type] && (spec.type !== "array" || Array.isArray(args[key]))
      && (spec.type !== "integer" || Number.isInteger(args[key]));
    if (!ok) return `"${key}" must be of type ${spec.type}.`;
  }
  return "";
}

async function decide(id, approve, extra) {
  const done = await post("/api/decide", { id, approve, ...extra });
  if (done) { const node = document.querySelector(`li.held[data-id="${CSS.escape(id)}"]`); if (node) node.remove(); }
}

function renderQueue(state) {
  const list = $("#queue");
  const ids = new Set(state.pending.map((h) => h.id));
  for (const node of [...list.children]) if (!ids.has(node.dataset.id)) node.remove();
  const have = new Set([...list.children].map((n) => n.dataset.id));
  for (const held of state.pending) {
    if (!have.has(held.id)) list.appendChild(renderHeld(held));
    if (!seen.has(held.id)) {
      seen.add(held.id);
      if (window.Notification && Notification.permission === "granted" && document.hidden)
        new Notification(`signoff: approve ${held.qualified}?`, { body: held.reason, tag: held.id });
    }
  }
  for (const node of list.children) {
    const held = state.pending.find((h) => h.id === node.dataset.id);
    if (held) $(".age", node).textContent = age(held.created);
  }
  pendingCount = state.pending.length;
  $("#count").textContent = String(pendingCount);
  $("#empty").hidden = pendingCount > 0;
  document.title = pendingCount ? `(${pendingCount}) signoff` : "signoff";
  const kill = state.kill;
  $("#kill-state").textContent = kill.on ? `STOPPED: ${kill.reason || "kill switch on"}` : "";
  $("#kill").textContent = kill.on ? "Resume tool calls" : "Stop all tool calls";
  $("#kill").dataset.on = kill.on ? "1" : "";
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("queue", (event) => renderQueue(JSON.parse(event.data)));
  events.onerror = () => say("Lost the connection to signoff; retrying…");
  events.onopen = () => say("");
}

async function loadHistory(form) {
  const params = new URLSearchParams(new FormData(form || $("#filter")));
  const [audit, stats] = await Promise.all([
    fetch(`/api/audit?${params}`, { credentials: "same-origin" }).then((r) => r.json()),
    fetch("/api/stats", { credentials: "same-origin" }).then((r) => r.json()),
  ]);
  const body = $("#audit tbody");
  body.replaceChildren();
  for (const row of audit.rows) {
    const tr = document.createElement("tr");
    for (const value of [row.id, row.time, `${row.server}.${row.tool}`, row.decision, `${row.decided_by} (${row.channel})`, row.reason, JSON.stringify(row.arguments)]) {
      const td = document.createElement("td");
      td.textContent = value === null || value === undefined ? "" : String(value);
      tr.appendChild(td);
    }
    tr.lastChild.className = "args";
    body.appendChild(tr);
  }
  const sbody = $("#stats tbody");
  sbody.replaceChildren();
  for (const s of stats.tools) {
    const tr = document.createElement("tr");
    for (const value of [s.tool, s.held, s.approved, s.denied, s.timeout, s.suggestion || ""]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.appendChild(td);
    }
    sbody.appendChild(tr);
  }
}

async function loadPolicy() {
  const data = await fetch("/api/policy", { credentials: "same-origin" }).then((r) => r.json());
  showPolicy(data);
}

function showPolicy(data) {
  $("#policy-path").textContent = data.path ? `Active policy file: ${data.path} (proxies reload it on change)` :
    "No policy file given: start `signoff ui --policy FILE` to view and edit one here.";
  $("#policy-text").textContent = data.text || "";
  $("#add-rule").hidden = !data.path;
  const list = $("#rules");
  list.replaceChildren();
  for (const rule of data.rules || []) {
    const li = document.createElement("li");
    li.textContent = `line ${rule.line}: ${rule.summary} `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", async () => {
      const done = await post("/api/policy", { remove: rule.index });
      if (done) showPolicy({ ...data, text: done.text, rules: done.rules });
    });
    li.appendChild(remove);
    list.appendChild(li);
  }
}

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.tab === name) button.setAttribute("aria-current", "page"); else button.removeAttribute("aria-current");
  }
  for (const tab of ["queue", "history", "policies"]) $(`#tab-${tab}`).hidden = tab !== name;
  if (name === "history") loadHistory();
  if (name === "policies") loadPolicy();
}

document.addEventListener("DOMContentLoaded", () => {
  if (totpRequired) $(".totp").hidden = false;
  for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#filter").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(event.target); });
  $("#add-rule").addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = {};
    for (const [k, v] of new FormData(event.target)) if (String(v).trim()) rule[k] = String(v).trim();
    const done = await post("/api/policy", { rule });
    if (done) { event.target.reset(); loadPolicy(); }
  });
  $("#kill").addEventListener("click", async () => {
    const on = !$("#kill").dataset.on;
    const reason = on ? (window.prompt("Why stop all tool calls?", "stopped from the web page") || "stopped from the web page") : "";
    await post("/api/kill", { on, reason });
  });
  $("#notify").addEventListener("click", async () => {
    if (window.Notification) await Notification.requestPermission();
  });
  connect();
});
