#!/usr/bin/env bash
# Retrieve under load (bench/load, issue 10): the Worker of a running stack
# (scripts/stack.sh up) against the design documents' own stack (FastAPI +
# asyncpg + pgvector + onnxruntime, bench/load/peer.py) on the same Postgres,
# driven by wrk (Debian) at 1, 10 and 50 clients. Writes
# bench/load/results-<memories>.json and BENCHMARKS.md (a section per size).
#
#   scripts/bench-load.sh                               10,000 memories
#   scripts/bench-load.sh --memories 100000 --duration 30
#
# MEMSHADOW_EVAL_DATA: the evaluation data [../shared/data from the repository root].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

DATA="$(eval_data_dir bench-load)"
API_URL="${MEMSHADOW_API_URL:-http://127.0.0.1:$MEMSHADOW_API_PORT}"
curl -fsS "$API_URL/health" >/dev/null || {
  echo "bench-load: no API at $API_URL; start the stack first (scripts/stack.sh up)" >&2
  exit 1
}

if ! command -v wrk >/dev/null; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends wrk
fi
bench_venv

cargo build -q --release -p edge-api --features native --bin retrieve-bench --bin mint-token --bin explain-retrieve
exec "$MEMSHADOW_BENCH_VENV/bin/python" bench/load/retrieve_load.py \
  --api-url "$API_URL" \
  --mint-token "$CARGO_TARGET_DIR/release/mint-token" \
  --keys "$MEMSHADOW_DATA/dev-keys" \
  --retrieve-bench "$CARGO_TARGET_DIR/release/retrieve-bench" \
  --explain-retrieve "$CARGO_TARGET_DIR/release/explain-retrieve" \
  --admin-url "$MEMSHADOW_ADMIN_DATABASE_URL" \
  --app-url "$DATABASE_URL" \
  --data "$DATA" \
  --model-dir "$MEMSHADOW_MODEL_DIR" \
  --manifest embed-wasm/model-manifest.json \
  --cache "$MEMSHADOW_DATA/quality" \
  --out-dir bench/load \
  --benchmarks BENCHMARKS.md \
  --command "scripts/bench-load.sh $*" \
  "$@"
