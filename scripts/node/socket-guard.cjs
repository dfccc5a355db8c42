// Keeps `wrangler dev` alive when a proxied socket is reset.
//
// Loaded with `node --require` by scripts/stack.sh before wrangler. Why:
// miniflare's local Hyperdrive proxy (HyperdriveProxyController in
// miniflare/dist/src/index.js, wrangler 4.86.0) joins the Worker's socket
// and the Postgres socket with two bare `.pipe()` calls and no 'error'
// listener. When either side resets the connection (workerd drops a
// cancelled request's socket, Postgres ends a backend), the socket emits
// `Error: read ECONNRESET` with nobody listening, Node turns that into an
// uncaught exception, and wrangler (with workerd) exits: every later
// request is refused.
//
// The guard gives socket-to-socket pipes the semantics of
// `stream.pipeline`: an error or close on either side is logged once and
// destroys both, so the Worker sees a closed connection (its Postgres
// client reports it and the next request opens a new one) and the
// database backend is released. Pipes to anything else are untouched.
"use strict";

const net = require("node:net");

const GUARDED = Symbol("memshadow.socketGuard");
const pipe = net.Socket.prototype.pipe;

function guard(a, b) {
  const both = [a, b];
  let logged = false;
  const tearDown = (err) => {
    if (err && !logged) {
      logged = true;
      console.error(
        `[socket-guard] proxied socket closed after ${err.code || err.message}; closing its peer`,
      );
    }
    for (const s of both) {
      if (!s.destroyed) s.destroy();
    }
  };
  for (const s of both) {
    if (s[GUARDED]) continue;
    s[GUARDED] = true;
    s.on("error", tearDown);
    s.on("close", () => tearDown());
  }
}

net.Socket.prototype.pipe = function guardedPipe(dest, options) {
  if (dest instanceof net.Socket) guard(this, dest);
  return pipe.call(this, dest, options);
};
