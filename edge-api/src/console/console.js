// MEMSHADOW console: register, sign in with a password or a passkey, and
// add, search and delete memories through the same-origin JSON API.
// Plain ES2020, no framework; tokens live in this page's memory only, so a
// reload signs out (nothing for another script or tab to read).
"use strict";

const API = "/api/v1";

/** Session state: the tokens of the current sign-in, and who it is for. */
const session = {
  access: null,
  refresh: null,
  username: null,
  /** A password sign-in that still needs the passkey (403 mfa_required). */
  mfaPending: false,
};

// ---- base64url <-> bytes (WebAuthn's JSON encoding, RFC 4648 §5, unpadded)

function b64urlToBytes(s) {
  if (typeof s !== "string") throw new TypeError("expected a base64url string");
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bytesToB64url(buf) {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf)
    : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeDescriptors(list) {
  return (list || []).map((d) => ({ ...d, id: b64urlToBytes(d.id) }));
}

/** PublicKeyCredentialCreationOptionsJSON → the options navigator.credentials.create takes. */
function creationOptions(json) {
  const o = { ...json, challenge: b64urlToBytes(json.challenge) };
  o.user = { ...json.user, id: b64urlToBytes(json.user.id) };
  if (json.excludeCredentials) o.excludeCredentials = decodeDescriptors(json.excludeCredentials);
  return o;
}

/** PublicKeyCredentialRequestOptionsJSON → the options navigator.credentials.get takes. */
function requestOptions(json) {
  const o = { ...json, challenge: b64urlToBytes(json.challenge) };
  if (json.allowCredentials) o.allowCredentials = decodeDescriptors(json.allowCredentials);
  return o;
}

function extensionResults(cred) {
  try {
    return cred.getClientExtensionResults ? cred.getClientExtensionResults() : {};
  } catch {
    return {};
  }
}

/** A registration PublicKeyCredential → RegistrationResponseJSON. */
function registrationJSON(cred) {
  const r = cred.response;
  const response = {
    clientDataJSON: bytesToB64url(r.clientDataJSON),
    attestationObject: bytesToB64url(r.attestationObject),
  };
  if (typeof r.getTransports === "function") response.transports = r.getTransports();
  return {
    id: cred.id,
    rawId: bytesToB64url(cred.rawId),
    type: cred.type,
    response,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: extensionResults(cred),
  };
}

/** An assertion PublicKeyCredential → AuthenticationResponseJSON. */
function assertionJSON(cred) {
  const r = cred.response;
  return {
    id: cred.id,
    rawId: bytesToB64url(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: bytesToB64url(r.clientDataJSON),
      authenticatorData: bytesToB64url(r.authenticatorData),
      signature: bytesToB64url(r.signature),
      userHandle: r.userHandle ? bytesToB64url(r.userHandle) : undefined,
    },
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: extensionResults(cred),
  };
}

// ---- API calls

/** An error answer from the API: `{"error": {"code", "message"}}`. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body, { token = session.access, retry = true } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network_error", "Could not reach the API (" + e.message + ").");
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.ok) return { status: res.status, data, headers: res.headers };
  const err = data && data.error;
  const code = (err && err.code) || "http_" + res.status;
  const message = (err && err.message) || res.statusText || "request failed";
  // An expired access token is renewed once with the refresh token (unless
  // a call beside this one already renewed it), then the call is retried.
  if (retry && token && code === "token_expired" && session.refresh) {
    if (token === session.access) await refreshTokens();
    return call(method, path, body, { retry: false });
  }
  throw new ApiError(res.status, code, message);
}

/**
 * One renewal at a time: refresh tokens rotate, and the API treats a second
 * use of the same one as theft (`refresh_token_reused`) and ends the session.
 */
let renewal = null;
function refreshTokens() {
  if (!renewal) {
    renewal = call("POST", "/auth/refresh", { refresh_token: session.refresh },
      { token: null, retry: false })
      .then(({ data }) => setTokens(data))
      .catch((e) => {
        // The session is over (revoked, expired or reused): start again.
        if (e instanceof ApiError && e.status === 401) {
          clearSession();
          throw new ApiError(401, e.code, "Your session has ended; sign in again. " + e.message);
        }
        throw e;
      })
      .finally(() => { renewal = null; });
  }
  return renewal;
}

function setTokens(data) {
  if (!data || typeof data.access_token !== "string") {
    throw new ApiError(0, "bad_response", "The API answered without an access token.");
  }
  session.access = data.access_token;
  if (typeof data.refresh_token === "string") session.refresh = data.refresh_token;
  if (typeof data.username === "string") session.username = data.username;
}

/** The username the access token names, when it names one (display only). */
function tokenUsername(token) {
  try {
    const part = token.split(".")[1];
    const claims = JSON.parse(new TextDecoder().decode(b64urlToBytes(part)));
    return claims.username || claims.preferred_username || claims.name || null;
  } catch {
    return null;
  }
}

// ---- page state

const $ = (id) => document.getElementById(id);

function showError(e) {
  const box = $("error");
  let text;
  if (e instanceof ApiError) {
    text = e.message + (e.code ? " (" + e.code + ")" : "");
  } else if (e && e.name === "NotAllowedError") {
    text = "The passkey request was cancelled or timed out.";
  } else if (e && e.name === "InvalidStateError") {
    text = "This authenticator already holds a passkey for this account.";
  } else if (e && e.name === "NotSupportedError") {
    text = "This browser or authenticator does not support the requested passkey.";
  } else {
    text = (e && e.message) || String(e);
  }
  box.textContent = "Error: " + text;
  box.hidden = false;
  $("notice").textContent = "";
}

function notify(text) {
  $("error").hidden = true;
  $("error").textContent = "";
  $("notice").textContent = text;
}

function render() {
  const signedIn = Boolean(session.access) && !session.mfaPending;
  $("signed-out").hidden = Boolean(session.access);
  $("mfa").hidden = !session.mfaPending;
  $("signed-in").hidden = !signedIn;
  $("memories").hidden = !signedIn;
  // The status is a live region: rewrite it only when it changes, so a
  // screen reader does not repeat it after every action.
  const state = [signedIn, session.mfaPending, session.username].join("|");
  const s = $("session");
  if (s.dataset.state === state) return;
  s.dataset.state = state;
  s.textContent = "";
  if (signedIn && session.username) {
    s.append("Signed in as ");
    const who = document.createElement("strong");
    who.textContent = session.username;
    s.append(who, ".");
  } else if (signedIn) {
    // A discoverable passkey names no account, and the token carries none.
    s.textContent = "Signed in with a passkey.";
  } else if (session.mfaPending) {
    s.textContent = "Password accepted for " + (session.username || "this account") +
      "; confirm with your passkey.";
  } else {
    s.textContent = "Not signed in.";
  }
}

function clearSession() {
  session.access = null;
  session.refresh = null;
  session.username = null;
  session.mfaPending = false;
  $("results").textContent = "";
  $("results-summary").textContent = "Nothing searched yet.";
}

/** Runs an action with its button disabled; errors land in the alert box. */
function action(button, fn) {
  return async (event) => {
    if (event) event.preventDefault();
    const buttons = button ? [button] : [];
    buttons.forEach((b) => { b.disabled = true; });
    document.body.setAttribute("aria-busy", "true");
    // What the last action said no longer applies.
    $("error").hidden = true;
    $("notice").textContent = "";
    try {
      await fn(event);
    } catch (e) {
      showError(e);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      document.body.removeAttribute("aria-busy");
      render();
    }
  };
}

function submitButton(form) {
  return form.querySelector('button[type="submit"]');
}

function requireWebAuthn() {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    throw new Error("This browser does not support passkeys (WebAuthn).");
  }
}

// ---- account actions

async function register() {
  const username = $("register-username").value.trim();
  await call("POST", "/auth/register", {
    email: $("register-email").value.trim(),
    username,
    password: $("register-password").value,
  }, { token: null });
  $("register-form").reset();
  $("login-username").value = username;
  notify("Account " + username + " created. Sign in below.");
  $("login-password").focus();
}

/** After a password sign-in: is the token MFA-pending (the account has a passkey)? */
async function needsPasskey(data) {
  // The sign-in answer says so; an older API that does not is asked.
  if (data && typeof data.mfa_required === "boolean") return data.mfa_required;
  try {
    await call("GET", "/memory?limit=1", undefined, { retry: false });
    return false;
  } catch (e) {
    if (e instanceof ApiError && e.code === "mfa_required") return true;
    throw e;
  }
}

async function passwordLogin() {
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!password) throw new Error("Enter your password, or sign in with a passkey.");
  const { data } = await call("POST", "/auth/login", { username, password }, { token: null });
  setTokens(data);
  session.username = (data && data.username) || username;
  session.mfaPending = await needsPasskey(data);
  $("login-password").value = "";
  notify(session.mfaPending
    ? "Password accepted. Confirm the sign-in with your passkey."
    : "Signed in as " + username + ".");
  if (session.mfaPending) $("mfa-confirm").focus();
}

/**
 * The passkey ceremony: begin → navigator.credentials.get → complete.
 * `username` narrows it to that account's passkeys (none: discoverable);
 * `bearer` is the MFA-pending token a password sign-in left.
 */
async function passkeyAssertion(username, bearer) {
  requireWebAuthn();
  const beginBody = username ? { username } : {};
  const { data: begin } = await call("POST", "/auth/webauthn/authenticate/begin", beginBody,
    { token: bearer || null });
  const cred = await navigator.credentials.get({ publicKey: requestOptions(begin.publicKey) });
  if (!cred) throw new Error("No passkey was chosen.");
  const body = { credential: assertionJSON(cred), state: begin.state };
  if (username) body.username = username;
  const { data } = await call("POST", "/auth/webauthn/authenticate/complete", body,
    { token: bearer || null });
  setTokens(data);
  session.mfaPending = false;
  if (!session.username) session.username = tokenUsername(session.access) || username || null;
}

async function passkeyLogin(byUsername) {
  let username = null;
  if (byUsername) {
    username = $("login-username").value.trim();
    if (!username) throw new Error("Enter your username first.");
  }
  await passkeyAssertion(username, null);
  notify("Signed in with your passkey" + (session.username ? " as " + session.username : "") + ".");
}

async function confirmMfa() {
  const pending = session.access;
  const username = session.username;
  await passkeyAssertion(username, pending);
  notify("Passkey confirmed. Signed in as " + session.username + ".");
}

async function addPasskey() {
  requireWebAuthn();
  const { data: begin } = await call("POST", "/auth/webauthn/register/begin", {});
  const cred = await navigator.credentials.create({ publicKey: creationOptions(begin.publicKey) });
  if (!cred) throw new Error("No passkey was created.");
  // The body is the RegistrationResponseJSON itself, plus begin's state.
  await call("POST", "/auth/webauthn/register/complete",
    { ...registrationJSON(cred), state: begin.state });
  notify("Passkey added. Next time, sign in with it.");
}

async function logout() {
  const refresh = session.refresh;
  const token = session.access;
  clearSession();
  if (refresh) {
    try {
      await call("POST", "/auth/logout", { refresh_token: refresh }, { token, retry: false });
    } catch (e) {
      // Signed out here either way; say why the server could not revoke.
      render();
      showError(e);
      return;
    }
  }
  notify("Signed out.");
}

// ---- memories

function memoryItem(m, withScore) {
  const li = document.createElement("li");
  li.dataset.id = m.id;
  const p = document.createElement("p");
  p.className = "memory-content";
  p.textContent = m.content;
  const meta = document.createElement("div");
  meta.className = "memory-meta";
  if (withScore && typeof m.score === "number") {
    const score = document.createElement("span");
    score.textContent = "score " + m.score.toFixed(3);
    meta.append(score);
  }
  if (Array.isArray(m.tags) && m.tags.length) {
    const tags = document.createElement("span");
    tags.textContent = "tags: " + m.tags.join(", ");
    meta.append(tags);
  }
  if (m.embedding_status && m.embedding_status !== "ready") {
    const st = document.createElement("span");
    st.textContent = "embedding " + m.embedding_status;
    meta.append(st);
  }
  const id = document.createElement("code");
  id.textContent = m.id;
  const del = document.createElement("button");
  del.type = "button";
  del.className = "delete";
  del.textContent = "Delete";
  del.setAttribute("aria-label", "Delete memory: " + truncate(m.content, 60));
  del.addEventListener("click", action(del, () => deleteMemory(m.id, li)));
  meta.append(id, del);
  li.append(p, meta);
  return li;
}

function truncate(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function showMemories(list, summary, withScore) {
  const ol = $("results");
  ol.textContent = "";
  list.forEach((m) => ol.append(memoryItem(m, withScore)));
  $("results-summary").textContent = summary;
}

async function ingest() {
  const content = $("ingest-content").value;
  const tags = $("ingest-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const body = { content };
  if (tags.length) body.tags = tags;
  const { data } = await call("POST", "/memory/ingest", body);
  $("ingest-form").reset();
  notify(data && data.embedding_status === "pending"
    ? "Memory added; its embedding is pending, so search finds it by its words for now."
    : "Memory added.");
}

async function retrieve() {
  const query = $("retrieve-query").value.trim();
  const limit = Number($("retrieve-limit").value) || 10;
  // The answer is an array of hits; how it was searched comes in headers.
  const { data, headers } = await call("POST", "/memory/retrieve?limit=" + encodeURIComponent(limit),
    { query });
  const results = Array.isArray(data) ? data : [];
  const mode = headers.get("x-retrieval-mode");
  const pending = Number(headers.get("x-pending-embeddings")) || 0;
  const facts = [mode, pending === 1 ? "1 memory still being embedded"
    : pending > 1 ? pending + " memories still being embedded" : ""].filter(Boolean).join("; ");
  const how = facts ? " (" + facts + ")" : "";
  showMemories(results,
    results.length === 1 ? "1 memory matches “" + query + "”" + how + "."
      : results.length + " memories match “" + query + "”" + how + ".", true);
  notify("");
}

async function listAll() {
  const { data } = await call("GET", "/memory?limit=100");
  const list = (data && data.memories) || [];
  const more = data && data.next_cursor ? " (first 100)" : "";
  showMemories(list, list.length === 1 ? "1 memory stored" + more + "."
    : list.length + " memories stored" + more + ".", false);
  notify("");
}

async function deleteMemory(id, li) {
  await call("DELETE", "/memory/" + encodeURIComponent(id));
  li.remove();
  const left = $("results").children.length;
  $("results-summary").textContent = left === 1 ? "1 memory shown." : left + " memories shown.";
  notify("Memory deleted.");
}

// ---- wiring

function onSubmit(formId, fn) {
  const form = $(formId);
  form.addEventListener("submit", action(submitButton(form), fn));
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit("register-form", register);
  onSubmit("login-form", passwordLogin);
  onSubmit("ingest-form", ingest);
  onSubmit("retrieve-form", retrieve);
  const click = (id, fn) => $(id).addEventListener("click", action($(id), fn));
  click("passkey-login", () => passkeyLogin(false));
  click("passkey-login-username", () => passkeyLogin(true));
  click("mfa-confirm", confirmMfa);
  click("mfa-cancel", async () => {
    await logout();
    if ($("error").hidden) notify("Sign-in cancelled.");
  });
  click("add-passkey", addPasskey);
  click("logout", logout);
  click("list-all", listAll);
  render();
});
