// signoff's sign-in and passkey enrolment pages (team mode). Passkeys use the browser's own
// JSON helpers for WebAuthn options and credentials.
"use strict";

const $ = (sel) => document.querySelector(sel);
let csrf = $('meta[name="csrf"]').content;

function say(text) {
  const box = $("#signin-message");
  box.textContent = text;
  box.hidden = !text;
}

async function send(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (data.csrf) csrf = data.csrf;
  const next = response.headers.get("X-CSRF-Token");
  if (next) csrf = next;
  if (!response.ok) throw new Error(data.error || `refused (${response.status})`);
  return data;
}

// After signing in, back to the view the person opened (a bookmarked `/?agent=…`): only this
// page's own root with a query is followed, so `next` cannot send anyone to another site.
function nextPage(given) {
  const wanted = new URLSearchParams(location.search).get("next") || "";
  return wanted.startsWith("/?") ? wanted : (given || "/");
}

async function signInWithPasskey() {
  const options = await (await fetch("/signin/passkey", { credentials: "same-origin" })).json();
  const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  return send("/signin/passkey", { credential: credential.toJSON() });
}

async function enrolPasskey() {
  const url = location.pathname;
  const options = await send(url, {});
  const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
  return send(url, { credential: credential.toJSON() });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = $("#signin");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      try { const done = await send("/signin", data); location.assign(nextPage(done.next)); }
      catch (e) { say(e.message); form.elements.totp.value = ""; }
    });
    $("#passkey").addEventListener("click", async () => {
      try { const done = await signInWithPasskey(); location.assign(nextPage(done.next)); }
      catch (e) { say(e.message); }
    });
  }
  const enrol = $("#enrol");
  if (enrol) {
    enrol.addEventListener("click", async () => {
      try { await enrolPasskey(); say("Passkey added. You can now sign in with it."); enrol.disabled = true; }
      catch (e) { say(e.message); }
    });
  }
});
