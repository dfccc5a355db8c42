// End-to-end: the /console page in real chromium against the real Worker,
// Postgres and auth endpoints, with a CDP virtual authenticator as the
// passkey. Each step checks what the page shows (text on the page) and
// saves a screenshot to $MEMSHADOW_DATA/artifacts/browser/.
//
//   scripts/stack.sh up && node --test tests/browser/
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  PAGE_ORIGIN,
  accessibilityViolations,
  addVirtualAuthenticator,
  artifactsDir,
  launchChromium,
  newAccount,
  requireStack,
} from "./lib.mjs";

const TEA = "Ada prefers green tea in the afternoon, never coffee.";
const BACKUP = "The staging database is backed up every night at 02:00 UTC.";

describe("console in a real browser", () => {
  const account = newAccount();
  let browser;
  let page;
  let authenticator;
  let shots;
  let shotNo = 0;
  // Steps build on each other: after a failure the rest fail fast, naming it.
  let broken = null;
  let setupError = null;

  async function step(name, fn) {
    // A missing stack or browser fails every step (never skips one).
    if (setupError) throw setupError;
    if (broken) throw new Error(`not run: step "${broken}" failed`);
    try {
      await fn();
    } catch (e) {
      broken = name;
      throw e;
    } finally {
      if (!page) return;
      shotNo += 1;
      const file = join(shots, `${String(shotNo).padStart(2, "0")}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    }
  }

  const session = () => page.locator("#session");
  const notice = () => page.locator("#notice");
  const alert = () => page.getByRole("alert");
  const loginForm = () => page.locator("#login-form");
  const results = () => page.locator("#results > li");

  /** The notice says `text`, and no error is shown. */
  async function expectNotice(text) {
    await page.waitForFunction(
      (t) => !document.body.hasAttribute("aria-busy") &&
        (document.getElementById("notice").textContent.includes(t) ||
          !document.getElementById("error").hidden),
      text, { timeout: 20_000 });
    if (await alert().isVisible()) {
      assert.fail(`the page shows an error: ${await alert().textContent()}`);
    }
    assert.match(await notice().textContent(), new RegExp(escape(text)));
  }

  before(async () => {
    try {
      await requireStack();
      shots = artifactsDir();
      browser = await launchChromium();
      page = await browser.context.newPage();
      page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") console.error(`page console: ${m.text()}`);
      });
      authenticator = await addVirtualAuthenticator(browser.context, page);
    } catch (e) {
      setupError = e;
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("the page loads under its Content-Security-Policy", () => step("page", async () => {
    const violations = [];
    page.on("console", (m) => {
      if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text());
    });
    const res = await page.goto(`${PAGE_ORIGIN}/console`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-security-policy"], /script-src 'self'/);
    assert.equal(await page.title(), "MEMSHADOW console");
    await page.getByRole("heading", { name: "Create an account" }).waitFor();
    assert.equal(await session().textContent(), "Not signed in.");
    assert.equal(await page.locator("#memories").isVisible(), false);
    // The stylesheet applied (the script's behaviour is checked by every step).
    const bg = await page.locator("form").first().evaluate((f) => getComputedStyle(f).borderRadius);
    assert.equal(bg, "6px");
    assert.deepEqual(violations, []);
    assert.deepEqual(await accessibilityViolations(page), [], "axe: signed out");
  }));

  test("an API error is shown from its error body", () => step("register-error", async () => {
    const form = page.locator("#register-form");
    await form.getByLabel("Email").fill(account.email);
    await form.getByLabel("Username").fill(account.username);
    await form.getByLabel("Password").fill("too short");
    await form.getByRole("button", { name: "Create account" }).click();
    await alert().waitFor();
    const text = await alert().textContent();
    assert.match(text, /^Error: .*at least 12 characters.*\(weak_password\)$/);
    assert.deepEqual(await accessibilityViolations(page), [], "axe: error shown");
  }));

  test("register", () => step("register", async () => {
    const form = page.locator("#register-form");
    await form.getByLabel("Password").fill(account.password);
    await form.getByRole("button", { name: "Create account" }).click();
    await expectNotice(`Account ${account.username} created`);
    assert.equal(await loginForm().getByLabel("Username").inputValue(), account.username);
  }));

  test("sign in with the password", () => step("password-sign-in", async () => {
    await loginForm().getByLabel("Password").fill(account.password);
    await loginForm().getByRole("button", { name: "Sign in", exact: true }).click();
    await expectNotice(`Signed in as ${account.username}.`);
    assert.equal(await session().textContent(), `Signed in as ${account.username}.`);
    await page.getByRole("heading", { name: "Memories", exact: true }).waitFor();
  }));

  test("add a passkey", () => step("add-passkey", async () => {
    assert.equal((await authenticator.credentials()).length, 0);
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await expectNotice("Passkey added");
    const creds = await authenticator.credentials();
    assert.equal(creds.length, 1, "one credential on the authenticator");
    assert.equal(creds[0].isResidentCredential, true, "a discoverable credential");
    assert.equal(creds[0].rpId, "localhost");
  }));

  test("sign out", () => step("sign-out", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await expectNotice("Signed out.");
    assert.equal(await session().textContent(), "Not signed in.");
    assert.equal(await page.locator("#memories").isVisible(), false);
  }));

  test("a password alone now needs the passkey too", () => step("mfa", async () => {
    const passwordSignIn = async () => {
      await loginForm().getByLabel("Username").fill(account.username);
      await loginForm().getByLabel("Password").fill(account.password);
      await loginForm().getByRole("button", { name: "Sign in", exact: true }).click();
      await expectNotice("Password accepted. Confirm the sign-in with your passkey.");
      assert.match(await session().textContent(), /confirm with your passkey/);
      assert.equal(await page.locator("#memories").isVisible(), false);
    };
    await passwordSignIn();
    await page.getByRole("button", { name: "Cancel" }).click();
    await expectNotice("Sign-in cancelled.");
    assert.equal(await session().textContent(), "Not signed in.");
    await passwordSignIn();
    await page.getByRole("button", { name: "Confirm with passkey" }).click();
    await expectNotice(`Passkey confirmed. Signed in as ${account.username}.`);
    await page.getByRole("heading", { name: "Memories", exact: true }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await expectNotice("Signed out.");
  }));

  test("sign in with the passkey by username", () => step("passkey-by-username", async () => {
    await loginForm().getByLabel("Username").fill(account.username);
    await page.getByRole("button", { name: "Sign in with a passkey for this username" }).click();
    await expectNotice(`Signed in with your passkey as ${account.username}.`);
    assert.equal(await session().textContent(), `Signed in as ${account.username}.`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await expectNotice("Signed out.");
  }));

  test("sign in with the passkey alone (discoverable)", () => step("passkey-sign-in", async () => {
    await loginForm().getByLabel("Username").fill("");
    await page.getByRole("button", { name: "Sign in with a passkey", exact: true }).click();
    await expectNotice("Signed in with your passkey");
    // No username was given, and the token names none: the page says how.
    assert.match(await session().textContent(), /^Signed in (as \S+|with a passkey)\.$/);
    await page.getByRole("heading", { name: "Memories", exact: true }).waitFor();
  }));

  test("an expired access token is renewed with the refresh token", () => step("refresh", async () => {
    // The API answers one call as if the access token had expired; the page
    // must renew it at /auth/refresh (the real one) and retry.
    let faked = 0;
    const list = "**/api/v1/memory?limit=100";
    await page.route(list, async (route) => {
      if (faked++ > 0) return route.continue();
      return route.fulfill({
        status: 401,
        contentType: "application/json",
        body: JSON.stringify({ error: { code: "token_expired", message: "the token has expired" } }),
      });
    });
    try {
      const renewed = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/refresh"));
      await page.getByRole("button", { name: "List all" }).click();
      assert.equal((await renewed).status(), 200);
      await page.getByText("0 memories stored.").waitFor();
      assert.equal(faked, 2, "the call was retried once");
      assert.equal(await alert().isVisible(), false);
    } finally {
      await page.unroute(list);
    }
  }));

  test("a session whose renewal is refused ends, and says so", () => step("session-ended", async () => {
    const list = "**/api/v1/memory?limit=100";
    const refresh = "**/api/v1/auth/refresh";
    const refuse = (code) => (route) => route.fulfill({
      status: 401,
      contentType: "application/json",
      body: JSON.stringify({ error: { code, message: `faked ${code}` } }),
    });
    await page.route(list, refuse("token_expired"));
    await page.route(refresh, refuse("refresh_token_reused"));
    try {
      await page.getByRole("button", { name: "List all" }).click();
      await alert().waitFor();
      assert.equal(await alert().textContent(),
        "Error: Your session has ended; sign in again. faked refresh_token_reused (refresh_token_reused)");
      assert.equal(await session().textContent(), "Not signed in.");
      assert.equal(await page.locator("#memories").isVisible(), false);
    } finally {
      await page.unroute(list);
      await page.unroute(refresh);
    }
    await page.getByRole("button", { name: "Sign in with a passkey", exact: true }).click();
    await expectNotice("Signed in with your passkey");
    await page.getByRole("heading", { name: "Memories", exact: true }).waitFor();
  }));

  test("add two memories", () => step("ingest", async () => {
    const form = page.locator("#ingest-form");
    for (const [content, tags] of [[TEA, "prefs, drinks"], [BACKUP, "ops"]]) {
      await form.getByLabel("Content").fill(content);
      await form.getByLabel("Tags").fill(tags);
      await form.getByRole("button", { name: "Add memory" }).click();
      await expectNotice("Memory added");
      assert.equal(await form.getByLabel("Content").inputValue(), "", "the form was reset");
      await page.locator("#notice").evaluate((n) => { n.textContent = ""; });
    }
    await page.getByRole("button", { name: "List all" }).click();
    await page.getByText("2 memories stored.").waitFor();
  }));

  test("search shows the relevant memory first", () => step("retrieve", async () => {
    const form = page.locator("#retrieve-form");
    await form.getByLabel("Query").fill("Ada green tea");
    await form.getByRole("button", { name: "Search" }).click();
    await page.getByText(/memor(y|ies) match/).waitFor();
    assert.match(await page.locator("#results-summary").textContent(),
      /^(1 memory matches|\d+ memories match) “Ada green tea” \((hybrid|text)(; \d+ memor(y|ies) still being embedded)?\)\.$/);
    const first = results().first();
    assert.equal(await first.locator(".memory-content").textContent(), TEA);
    assert.match(await first.locator(".memory-meta").textContent(), /score \d\.\d{3}/);
    assert.match(await first.locator(".memory-meta").textContent(), /tags: prefs, drinks/);
    assert.deepEqual(await accessibilityViolations(page), [], "axe: signed in, with results");
    // With the embedding pool up (hybrid), meaning alone must find it too:
    // the question shares no word but "Ada" with the memory.
    if (/\(hybrid\)\.$/.test(await page.locator("#results-summary").textContent())) {
      await form.getByLabel("Query").fill("What does Ada like to drink?");
      await form.getByRole("button", { name: "Search" }).click();
      await page.getByText(/match “What does Ada like to drink\?” \(hybrid\)/).waitFor();
      assert.equal(await results().first().locator(".memory-content").textContent(), TEA);
      await form.getByLabel("Query").fill("Ada green tea");
      await form.getByRole("button", { name: "Search" }).click();
      await page.getByText(/match “Ada green tea”/).waitFor();
    }
  }));

  test("delete a memory", () => step("delete", async () => {
    const before = await results().count();
    await page.getByRole("button", { name: /^Delete memory: Ada prefers green tea/ }).click();
    await expectNotice("Memory deleted.");
    assert.equal(await results().count(), before - 1);
    assert.equal(await page.getByText(TEA).count(), 0);
    // Gone on the server too: search again, and list what is stored.
    await page.locator("#retrieve-form").getByRole("button", { name: "Search" }).click();
    await page.waitForFunction(() =>
      document.getElementById("results-summary").textContent.includes(" match"));
    assert.equal(await page.getByText(TEA).count(), 0);
    await page.getByRole("button", { name: "List all" }).click();
    await page.getByText("1 memory stored.").waitFor();
    assert.equal(await results().count(), 1);
    assert.equal(await results().first().locator(".memory-content").textContent(), BACKUP);
  }));
});

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
