#!/usr/bin/env bash
# Vector search at scale (bench/scale, issue 10): N memories loaded with COPY
# into databases of their own on the stack's Postgres, searched through the
# retrieve statement beside Chroma and an exact scan on the same vectors.
# Writes bench/scale/results.json, bench/scale/plans/ and BENCHMARKS.md.
#
#   scripts/bench-scale.sh                     10,000 and 100,000 memories
#   scripts/bench-scale.sh --sizes 1000000     any sizes
#
# MEMSHADOW_EVAL_DATA: the evaluation data [../shared/data from the repository root].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

DATA="$(eval_data_dir bench-scale)"

scripts/setup.sh
bench_venv

cargo build -q --release -p edge-api --features native --bin migrate --bin retrieve-bench --bin explain-retrieve
scripts/pg.sh start
# Databases of its own, created and migrated by the run: the roles the
# migrations create are cluster-wide, so any database's URLs serve.
exec "$MEMSHADOW_BENCH_VENV/bin/python" bench/scale/vector_search.py \
  --data "$DATA" \
  --model-dir "$MEMSHADOW_MODEL_DIR" \
  --manifest embed-wasm/model-manifest.json \
  --cache "$MEMSHADOW_DATA/quality" \
  --bin-dir "$CARGO_TARGET_DIR/release" \
  --admin-url "$MEMSHADOW_ADMIN_DATABASE_URL" \
  --app-url "$DATABASE_URL" \
  --out bench/scale/results.json \
  --plans bench/scale/plans \
  --benchmarks BENCHMARKS.md \
  --command "scripts/bench-scale.sh $*" \
  "$@"
