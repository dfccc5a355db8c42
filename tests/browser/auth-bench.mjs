// Auth bench against the running Worker: the cost of the work the Worker
// itself does for sign-in, seen from a client on the same machine.
//
//   register + login   argon2id hashing (register) and verification (login)
//                      inside the Worker, one fresh account per round
//   passkey sign-in    authenticate/begin, navigator.credentials.get with a
//                      CDP virtual authenticator in chromium, and
//                      authenticate/complete (assertion verification and the
//                      counter update inside the Worker), timed apart
//
// Prints p50/p95/mean in ms; asserts nothing about speed.
//
//   node tests/browser/auth-bench.mjs [--rounds N]     (default 20)
//
// MEMSHADOW_API_URL chooses the stack (default http://127.0.0.1:8787); its
// WebAuthn origins must include http://localhost:<port>.
import { parseArgs } from "node:util";

import {
  API_URL,
  PAGE_ORIGIN,
  addVirtualAuthenticator,
  launchChromium,
  newAccount,
  requireStack,
} from "./lib.mjs";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "20" } } });
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error("--rounds must be a positive integer");

async function post(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const t0 = performance.now();
  const res = await fetch(`${API_URL}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${text}`);
  return { ms, data: text ? JSON.parse(text) : null };
}

function summary(name, samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const f = (x) => x.toFixed(1).padStart(8);
  return `${name.padEnd(40)} n=${String(s.length).padStart(3)}  p50 ${f(q(0.5))}  p95 ${f(q(0.95))}  mean ${f(mean)}`;
}

await requireStack();
const rows = [];

// --- register + login: one new account per round.
const reg = [];
const login = [];
let last;
for (let i = 0; i < ROUNDS; i++) {
  const a = newAccount("bench");
  reg.push((await post("/api/v1/auth/register", a)).ms);
  const r = await post("/api/v1/auth/login", { username: a.username, password: a.password });
  login.push(r.ms);
  last = { ...a, token: r.data.access_token };
}
rows.push(summary("register (argon2id hash)", reg));
rows.push(summary("login (argon2id verify + token)", login));
rows.push(summary("register + login round trip", reg.map((x, i) => x + login[i])));

// --- passkey: add one passkey to the last account, then sign in with it.
const browser = await launchChromium();
try {
  const page = await browser.context.newPage();
  const authenticator = await addVirtualAuthenticator(browser.context, page);
  // Any page of the origin will do: the ceremony needs the RP id's origin.
  await page.goto(`${PAGE_ORIGIN}/console`);

  const begin = await post("/api/v1/auth/webauthn/register/begin", {}, last.token);
  const credential = await page.evaluate(async (options) => {
    const b = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const e = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const o = { ...options, challenge: b(options.challenge), user: { ...options.user, id: b(options.user.id) } };
    o.excludeCredentials = (options.excludeCredentials || []).map((d) => ({ ...d, id: b(d.id) }));
    const c = await navigator.credentials.create({ publicKey: o });
    return {
      id: c.id, rawId: e(c.rawId), type: c.type, clientExtensionResults: {},
      response: { clientDataJSON: e(c.response.clientDataJSON),
        attestationObject: e(c.response.attestationObject) },
    };
  }, begin.data.publicKey);
  await post("/api/v1/auth/webauthn/register/complete",
    { ...credential, state: begin.data.state }, last.token);
  if ((await authenticator.credentials()).length !== 1) throw new Error("no passkey was created");

  const beginMs = [];
  const getMs = [];
  const completeMs = [];
  for (let i = 0; i < ROUNDS; i++) {
    const b = await post("/api/v1/auth/webauthn/authenticate/begin", {});
    const { ms, assertion } = await page.evaluate(async (options) => {
      const d = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
      const e = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
        .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      const t0 = performance.now();
      const c = await navigator.credentials.get({
        publicKey: { ...options, challenge: d(options.challenge), allowCredentials: [] },
      });
      const ms = performance.now() - t0;
      return {
        ms,
        assertion: {
          id: c.id, rawId: e(c.rawId), type: c.type, clientExtensionResults: {},
          response: {
            clientDataJSON: e(c.response.clientDataJSON),
            authenticatorData: e(c.response.authenticatorData),
            signature: e(c.response.signature),
            userHandle: c.response.userHandle ? e(c.response.userHandle) : undefined,
          },
        },
      };
    }, b.data.publicKey);
    const done = await post("/api/v1/auth/webauthn/authenticate/complete",
      { credential: assertion, state: b.data.state });
    if (!done.data.access_token) throw new Error("authenticate/complete issued no token");
    beginMs.push(b.ms);
    getMs.push(ms);
    completeMs.push(done.ms);
  }
  rows.push(summary("passkey authenticate/begin", beginMs));
  rows.push(summary("  credentials.get (virtual, in browser)", getMs));
  rows.push(summary("passkey authenticate/complete", completeMs));
  rows.push(summary("passkey sign-in, all three", beginMs.map((x, i) => x + getMs[i] + completeMs[i])));
} finally {
  await browser.close();
}

console.log(`auth bench against ${API_URL}, ${ROUNDS} rounds (ms)`);
for (const r of rows) console.log(r);
