#!/usr/bin/env bash
# Retrieval quality harness (bench/quality, issue 11) against a running stack
# (scripts/stack.sh up): loads BEIR SciFact and LoCoMo through the API, waits
# for every embedding, asks every question in each retrieve mode and scores
# them beside BM25 (bm25s) and exact cosine over onnxruntime embeddings.
#
#   scripts/quality.sh            the full run (about 25 minutes on 2 cores);
#                                 updates BENCHMARKS.md and bench/quality/results.json
#   scripts/quality.sh --smoke    a few hundred documents, checked (CI; ~2 minutes)
#   scripts/quality.sh --baselines-only
#                                 BM25 and every model's exact cosine, no stack
#                                 (all-mpnet-base-v2 embeds SciFact in ~15 minutes)
#
# MEMSHADOW_EVAL_DATA: the evaluation data [../shared/data from the repository root].
# MEMSHADOW_EMBEDDING_MODEL: the model the stack's API embeds with, as it was
# started (`MEMSHADOW_EMBEDDING_MODEL=all-mpnet-base-v2 scripts/stack.sh up`)
# [all-MiniLM-L6-v2]; it is the reference, the other model is scored beside it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

DATA="$(eval_data_dir quality)"
export MEMSHADOW_API_URL="${MEMSHADOW_API_URL:-http://127.0.0.1:$MEMSHADOW_API_PORT}"
PY="$MEMSHADOW_VENV/bin/python"

# The metric functions' worked example first: a wrong metric fails fast.
"$PY" -m unittest discover -s bench/quality -p 'test_*.py'

cargo build -q --release -p edge-api --features native --bin explain-retrieve --bin mint-token

MINILM=("$MEMSHADOW_MODEL_DIR" embed-wasm/model-manifest.json)
MPNET=("$MEMSHADOW_MODEL_DIR/all-mpnet-base-v2" embed-wasm/model-manifest-mpnet.json)
case "${MEMSHADOW_EMBEDDING_MODEL:-all-MiniLM-L6-v2}" in
  all-MiniLM-L6-v2) served=("${MINILM[@]}") other=("${MPNET[@]}") ;;
  all-mpnet-base-v2) served=("${MPNET[@]}") other=("${MINILM[@]}") ;;
  *) echo "quality.sh: no reference for MEMSHADOW_EMBEDDING_MODEL=$MEMSHADOW_EMBEDDING_MODEL" >&2; exit 2 ;;
esac

common=(
  --data "$DATA"
  --mint-token "$CARGO_TARGET_DIR/release/mint-token"
  --keys "$MEMSHADOW_DATA/dev-keys"
  --model-dir "${served[0]}"
  --manifest "${served[1]}"
  --cache "$MEMSHADOW_DATA/quality"
  --explain "$CARGO_TARGET_DIR/release/explain-retrieve"
)
if [ "${1:-}" = "--smoke" ]; then
  exec "$PY" bench/quality/run.py --smoke --check --cleanup "${common[@]}" \
    --out "$MEMSHADOW_DATA/quality/smoke.json"
fi
# The other model a deployment can pick, scored by exact cosine beside the
# served one (their speed is in wasm-host's embed-bench).
others=(--other-model "${other[@]}")
if [ "${1:-}" = "--baselines-only" ]; then
  exec "$PY" bench/quality/run.py --baselines-only "${common[@]}" "${others[@]}" \
    --out "$MEMSHADOW_DATA/quality/baselines.json"
fi
exec "$PY" bench/quality/run.py "${common[@]}" "${others[@]}" "$@" \
  --out bench/quality/results.json \
  --rankings "$MEMSHADOW_DATA/quality/rankings.json" \
  --benchmarks BENCHMARKS.md \
  --command "${MEMSHADOW_EMBEDDING_MODEL:+MEMSHADOW_EMBEDDING_MODEL=$MEMSHADOW_EMBEDDING_MODEL }scripts/stack.sh up && scripts/quality.sh"
