#!/usr/bin/env bash
# Runs every test: formatting and lints, unit and integration tests of each
# crate (against a real Postgres + pgvector and the real model), then the
# end-to-end tests in tests/ against the real Worker under wrangler dev with
# the real embedding pool. Starts what it needs and stops it afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

# A stack of its own beside any dev stack on the default ports.
export MEMSHADOW_API_PORT="${MEMSHADOW_TEST_API_PORT:-18787}"
export MEMSHADOW_POOL_PORT="${MEMSHADOW_TEST_POOL_PORT:-18790}"
export MEMSHADOW_SPIN_PORT="${MEMSHADOW_TEST_SPIN_PORT:-18788}"
export MEMSHADOW_POOL_URL="http://127.0.0.1:$MEMSHADOW_POOL_PORT"
export MEMSHADOW_API_URL="http://127.0.0.1:$MEMSHADOW_API_PORT"

scripts/setup.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy -q --workspace --all-targets --features edge-api/native -- -D warnings
cargo clippy -q -p edge-api --features cloudflare --target wasm32-unknown-unknown -- -D warnings
cargo clippy -q -p embed-wasm --target wasm32-wasip1 -- -D warnings
cargo clippy -q -p edge-api --no-default-features --features spin --target wasm32-wasip2 -- -D warnings

echo "== benchmark harness: the scale generator (bench/scale)"
"$MEMSHADOW_VENV/bin/python" -m unittest discover -s bench/scale -p 'test_*.py'

echo "== build"
scripts/stack.sh build
# The Spin component: wasm-host's import test reads it.
scripts/build-spin.sh

# Leave a Postgres that was already running (a dev stack) as it was.
if scripts/pg.sh status; then export MEMSHADOW_KEEP_PG=1; fi
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up

echo "== tests"
# Release mode: the tests share the release builds above (wasmtime, tract)
# and real inference in a debug build would be needlessly slow.
echo "== end-to-end runtime: Cloudflare Worker (wrangler dev) at $MEMSHADOW_API_URL"
cargo test --release --workspace --no-fail-fast --features edge-api/native 2>&1 | tee "$MEMSHADOW_DATA/logs/test.log"

echo "== node"
# The local stack's guard against a reset Hyperdrive socket (scripts/node/socket-guard.cjs).
node --test scripts/node/ 2>&1 | tee -a "$MEMSHADOW_DATA/logs/test.log"

# The same end-to-end suites against the Spin build: MEMSHADOW_API_URL is the
# one switch. The rest stay Worker-only: pool_outage.rs starts a second
# Worker and drives wrangler's /__scheduled, backup.rs reads the Worker's R2
# bucket (the stack's Spin build runs no backups; wasm-host's spin_serve.rs
# and spin_s3_backup.rs cover Spin's), ingest_to_searchable.rs counts on the queue consumer (Spin
# has no queue), and concurrency.rs is the Worker's (Hyperdrive) load case.
SPIN_URL="http://127.0.0.1:$MEMSHADOW_SPIN_PORT"
echo "== end-to-end runtime: Spin build (wasm-host serve) at $SPIN_URL"
MEMSHADOW_API_URL="$SPIN_URL" cargo test --release --no-fail-fast -p memshadow-e2e \
  --test memory_api --test isolation --test contract 2>&1 | tee -a "$MEMSHADOW_DATA/logs/test.log"

echo "== browser"
# The console in headless Chromium with a virtual passkey authenticator;
# screenshots land in $MEMSHADOW_DATA/artifacts/browser/.
node --test tests/browser/ 2>&1 | tee -a "$MEMSHADOW_DATA/logs/test.log"

echo "== retrieval quality smoke"
# A few hundred SciFact documents and LoCoMo turns through the API, scored
# beside BM25 and onnxruntime exact cosine (bench/quality/README.md).
scripts/quality.sh --smoke 2>&1 | tee -a "$MEMSHADOW_DATA/logs/test.log"
