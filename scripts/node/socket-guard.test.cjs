// The failure socket-guard.cjs exists for, reproduced the way miniflare's
// local Hyperdrive proxy pipes sockets: a client that resets its
// connection must not end the process. The proxy runs in a child node
// (with and without the guard) so its crash cannot take the test down.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const { spawnSync } = require("node:child_process");
const path = require("node:path");

const PROXY = `
const net = require("node:net");
const target = net.createServer((s) => { s.on("error", () => {}); s.on("data", () => s.write("pong")); });
target.listen(0, "127.0.0.1", () => {
  const proxy = net.createServer((client) => {
    const db = net.connect({ host: "127.0.0.1", port: target.address().port });
    client.pipe(db);
    db.pipe(client);
  });
  proxy.listen(0, "127.0.0.1", () => {
    const c = net.connect(proxy.address().port, "127.0.0.1", () => c.write("ping"));
    c.once("data", () => {
      c.resetAndDestroy();
      setTimeout(() => { console.log("proxy survived"); process.exit(0); }, 300);
    });
  });
});
`;

function runProxy(extraArgs) {
  return spawnSync(process.execPath, [...extraArgs, "-e", PROXY], {
    encoding: "utf8",
    timeout: 20000,
  });
}

test("without the guard a reset socket ends the process (the bug)", () => {
  const r = runProxy([]);
  assert.notStrictEqual(r.status, 0);
  assert.match(r.stderr, /ECONNRESET/);
});

test("with the guard the process survives and says what it closed", () => {
  const r = runProxy(["--require", path.join(__dirname, "socket-guard.cjs")]);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /proxy survived/);
  assert.match(r.stderr, /\[socket-guard\] proxied socket closed after ECONNRESET/);
});
