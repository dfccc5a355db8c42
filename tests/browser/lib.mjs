// Shared set-up for the browser tests and the auth bench: where the stack
// is, playwright-core and axe-core from the tools directory scripts/setup.sh
// fills, and
// Debian's chromium with a CDP virtual authenticator standing in for a
// platform passkey. Nothing here skips: a missing piece is an error.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The API as the stack publishes it (scripts/env.sh defaults). */
export const API_URL = (process.env.MEMSHADOW_API_URL ||
  `http://127.0.0.1:${process.env.MEMSHADOW_API_PORT || 8787}`).replace(/\/$/, "");

/**
 * The same server under the name `localhost`: the WebAuthn RP id is
 * `localhost`, and a browser only runs a ceremony for an RP id that is the
 * page's host (a secure context: localhost counts even over http).
 */
export const PAGE_ORIGIN = (() => {
  const u = new URL(API_URL);
  u.hostname = "localhost";
  return u.origin;
})();

export const CHROMIUM = process.env.MEMSHADOW_CHROMIUM || "/usr/bin/chromium";

export const ARTIFACTS = join(process.env.MEMSHADOW_DATA || join(REPO_ROOT, ".data"),
  "artifacts", "browser");

const NODE_DIR = process.env.MEMSHADOW_NODE || join(homedir(), ".cache", "memshadow", "npm");

/** A package from $MEMSHADOW_NODE (where scripts/setup.sh installs them). */
function fromNodeDir(load) {
  const require = createRequire(join(NODE_DIR, "package.json"));
  try {
    return load(require);
  } catch (e) {
    throw new Error(`not installed under ${NODE_DIR} (run scripts/setup.sh): ${e.message}`);
  }
}

export function loadPlaywright() {
  return fromNodeDir((require) => require("playwright-core"));
}

/**
 * Runs axe-core in `page` against WCAG 2.1 A/AA and axe's best practices
 * and returns the violations, one line each. The script is evaluated over
 * CDP, which the page's Content-Security-Policy does not govern, so the
 * page is checked under its real policy.
 */
let axeSource;
export async function accessibilityViolations(page) {
  axeSource ??= fromNodeDir((require) => readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
  }));
  return result.violations.map((v) =>
    `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** Fails unless the API answers /health: the tests need the real stack. */
export async function requireStack() {
  let res;
  try {
    res = await fetch(`${API_URL}/health`);
  } catch (e) {
    throw new Error(`the API at ${API_URL} does not answer (${e.cause?.code || e.cause?.message || e.message}); ` +
      "start the stack with scripts/stack.sh up, or set MEMSHADOW_API_URL");
  }
  if (res.status !== 200) {
    throw new Error(`${API_URL}/health answered ${res.status}: ${await res.text()}`);
  }
}

/**
 * Starts headless chromium with the flags this sandbox needs (no GPU, no
 * background connections to a network that is closed) and a throw-away
 * profile. Returns { browser, close }.
 */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing; scripts/setup.sh installs Debian's chromium ` +
      "(or set MEMSHADOW_CHROMIUM)");
  }
  const { chromium } = loadPlaywright();
  const profile = mkdtempSync(join(tmpdir(), "memshadow-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Attaches a CTAP2 virtual authenticator to `page`: internal (platform)
 * transport, resident keys and user verification, the user always
 * verified, so navigator.credentials.create/get complete without a prompt.
 */
export async function addVirtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    cdp,
    authenticatorId,
    async credentials() {
      const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
      return credentials;
    },
  };
}

export function artifactsDir() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return ARTIFACTS;
}

/** A fresh account name and a password no common-password list holds. */
export function newAccount(prefix = "console") {
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return {
    username: `${prefix}-${tag}`,
    email: `${prefix}-${tag}@example.com`,
    password: `Correct-Horse-${tag}-Battery!`,
  };
}
