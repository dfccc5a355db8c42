#!/usr/bin/env bash
# The text branch's budget (bench/quality/tune_text_branch.py, issues 10 and
# 11): the retrieve statement's text branch, exact and within a grid of
# bounds, scored on SciFact and LoCoMo in a database of its own on the
# stack's Postgres. Writes bench/quality/text-branch.json and BENCHMARKS.md.
# About 10 minutes on 2 cores.
#
# MEMSHADOW_EVAL_DATA: the evaluation data [../shared/data from the repository root].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

DATA="$(eval_data_dir bench-text-branch)"

scripts/setup.sh
bench_venv

cargo build -q --release -p edge-api --features native --bin migrate --bin retrieve-bench
scripts/pg.sh start
exec "$MEMSHADOW_BENCH_VENV/bin/python" bench/quality/tune_text_branch.py \
  --data "$DATA" \
  --bin-dir "$CARGO_TARGET_DIR/release" \
  --admin-url "$MEMSHADOW_ADMIN_DATABASE_URL" \
  --app-url "$DATABASE_URL" \
  --out bench/quality/text-branch.json \
  --benchmarks BENCHMARKS.md \
  --command "scripts/bench-text-branch.sh $*" \
  "$@"
