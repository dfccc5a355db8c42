#!/usr/bin/env bash
# Builds the Spin component of the MEMSHADOW API: edge-api with `--features
# spin` for wasm32-wasip2 (spin-sdk 7, WASI 0.3). Output:
# $CARGO_TARGET_DIR/wasm32-wasip2/release/edge_api.wasm, which `wasm-host
# serve` loads and wasm-host's import test (tests/spin_imports.rs) reads.
# (`spin build` runs the same cargo command with --target-dir target, the
# path spin.toml's `source` names.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
cargo build -q --release -p edge-api --no-default-features --features spin --target wasm32-wasip2
echo "build-spin: $CARGO_TARGET_DIR/wasm32-wasip2/release/edge_api.wasm"
