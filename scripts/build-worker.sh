#!/usr/bin/env bash
# Builds the MEMSHADOW API Worker: edge-api with `--features cloudflare` for
# wasm32-unknown-unknown, through worker-build (cargo build, wasm-bindgen,
# esbuild), then wasm-opt for size. Output: edge-api/build/ (index.js,
# index_bg.wasm, worker/shim.mjs, which wrangler.toml's `main` points at).
#
#   scripts/build-worker.sh            release build (profile release-worker)
#   NO_WASM_OPT=1 scripts/build-worker.sh   skip wasm-opt (faster, bigger)
#
# Every tool comes from this machine (scripts/setup.sh installs them), so
# worker-build downloads nothing: WASM_BINDGEN_BIN, WASM_OPT_BIN and
# ESBUILD_BIN point at local binaries.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

die() { echo "build-worker: $*" >&2; exit 1; }

# Node tools (esbuild, binaryen's wasm-opt): $MEMSHADOW_NODE is where
# setup.sh installs them; the older $MEMSHADOW_CACHE/npm is a fallback.
NODE_BIN=""
for dir in "$MEMSHADOW_NODE/node_modules/.bin" "$MEMSHADOW_CACHE/npm/node_modules/.bin"; do
  if [ -x "$dir/esbuild" ] && [ -x "$dir/wasm-opt" ]; then NODE_BIN="$dir"; break; fi
done
[ -n "$NODE_BIN" ] || die "esbuild and wasm-opt not found under $MEMSHADOW_NODE or $MEMSHADOW_CACHE/npm; run scripts/setup.sh"

WORKER_BUILD="$MEMSHADOW_TOOLS/bin/worker-build"
export WASM_BINDGEN_BIN="$MEMSHADOW_TOOLS/bin/wasm-bindgen"
export ESBUILD_BIN="$NODE_BIN/esbuild"
export WASM_OPT_BIN="$NODE_BIN/wasm-opt"
[ -x "$WORKER_BUILD" ] || die "$WORKER_BUILD missing; run scripts/setup.sh"
[ -x "$WASM_BINDGEN_BIN" ] || die "$WASM_BINDGEN_BIN missing; run scripts/setup.sh"

# wasm-bindgen's CLI and the crate must be the same version exactly, or the
# generated glue does not match the module (wasm-bindgen fails late, with a
# schema error). Resolve the lock first so a fresh clone checks the version
# it will actually build.
cargo metadata --format-version 1 --locked >/dev/null 2>&1 \
  || cargo metadata --format-version 1 >/dev/null
lock_version="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)"
cli_version="$("$WASM_BINDGEN_BIN" --version | awk '{print $2}')"
[ -n "$lock_version" ] || die "no wasm-bindgen in Cargo.lock (is the cloudflare feature wired?)"
if [ "$lock_version" != "$cli_version" ]; then
  die "wasm-bindgen-cli is $cli_version but Cargo.lock has wasm-bindgen $lock_version.
  Install the matching CLI:  cargo install --locked --root $MEMSHADOW_TOOLS wasm-bindgen-cli@$lock_version
  (or re-run scripts/setup.sh, which reads the version from Cargo.lock)"
fi

# Profile release-worker (root Cargo.toml): opt-level z, fat LTO, one codegen
# unit. worker-build runs wasm-opt only with "-O" (speed) for custom
# profiles, so it is told --no-opt and wasm-opt runs below with -Oz.
# Trailing arguments after the flags go to `cargo build`.
cd edge-api
"$WORKER_BUILD" --profile release-worker --no-opt --features cloudflare

wasm="build/index_bg.wasm"
[ -f "$wasm" ] || die "worker-build finished without $wasm"
if [ -z "${NO_WASM_OPT:-}" ]; then
  # The feature list matches worker-build's own wasm-opt step: what rustc
  # emits for wasm32-unknown-unknown plus the exception handling used by
  # wasm-bindgen's catch wrappers, and nothing newer than workerd accepts.
  "$WASM_OPT_BIN" -Oz --strip-debug --strip-producers \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types \
    --enable-exception-handling \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
fi

raw=$(stat -c %s "$wasm")
gz=$( (cat "$wasm"; cat build/index.js) | gzip -9 | wc -c)
printf 'build-worker: %s (%d KiB wasm; wasm + index.js gzip -9: %d KiB)\n' \
  "$REPO_ROOT/edge-api/build" $((raw / 1024)) $((gz / 1024))
