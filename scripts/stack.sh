#!/usr/bin/env bash
# Builds, starts and stops the local MEMSHADOW stack: Postgres + pgvector,
# the embedding pool (wasm-host serving embed-wasm), the API Worker under
# wrangler dev (workerd) and the API's Spin build under `wasm-host serve`,
# both over the same Postgres and pool. Used by start.sh, stop.sh and test.sh.
#
#   scripts/stack.sh build   build the wasm guest, the pool and the Worker
#   scripts/stack.sh up      start everything (after build) and wait until ready
#   scripts/stack.sh down    stop everything this checkout started
#
# `up` also starts scripts/scheduler.sh, which fires the Worker's scheduled
# entry point every MEMSHADOW_SCHEDULER_SECONDS (5), as Cron Triggers do
# when deployed, so no memory stays pending while the pool is up; the Spin
# build's `wasm-host serve` calls its own scheduled route on the same period.
#
# Ports come from env.sh (API 8787, Spin build 8788, pool 8790, Postgres
# 54329); set MEMSHADOW_API_PORT / MEMSHADOW_SPIN_PORT / MEMSHADOW_POOL_PORT
# to run a second stack beside the first (test.sh does). Logs and pid files
# go to $MEMSHADOW_DATA/run-<api port>.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

RUN="$MEMSHADOW_DATA/run-$MEMSHADOW_API_PORT"
WASM="$CARGO_TARGET_DIR/wasm32-wasip1/release/embed_wasm.wasm"
HOST_BIN="$CARGO_TARGET_DIR/release/wasm-host"
DEV_KEYS="$MEMSHADOW_DATA/dev-keys"
BACKUP_KEYS="$MEMSHADOW_DATA/backup-keys"

build() {
  cargo build -q --release -p embed-wasm --target wasm32-wasip1
  cargo build -q --release -p wasm-host --bin wasm-host
  cargo build -q --release -p edge-api --features native --bin migrate --bin mint-token
  cargo build -q --release -p sdap-cli --bin sdap
  scripts/build-worker.sh
  scripts/build-spin.sh
}

# Waits until $1 answers 200, or fails after $2 seconds showing the log $3.
wait_http() {
  local url="$1" seconds="$2" log="$3"
  for _ in $(seq 1 $((seconds * 4))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  echo "stack: $url did not come up within ${seconds}s; last lines of $log:" >&2
  tail -n 30 "$log" >&2 || true
  return 1
}

start_pool() {
  if curl -fsS -o /dev/null "$MEMSHADOW_POOL_URL/health" 2>/dev/null; then
    echo "stack: embedding pool already answers at $MEMSHADOW_POOL_URL"
    return
  fi
  # all-MiniLM-L6-v2 by default and all-mpnet-base-v2 by id, so either can
  # be the deployment's model (MEMSHADOW_EMBEDDING_MODEL).
  "$HOST_BIN" --listen "127.0.0.1:$MEMSHADOW_POOL_PORT" --wasm "$WASM" \
    --manifest "$REPO_ROOT/embed-wasm/model-manifest.json" \
    --extra-model "$REPO_ROOT/embed-wasm/model-manifest-mpnet.json" \
    --model-dir "$MEMSHADOW_MODEL_DIR" >"$RUN/pool.log" 2>&1 &
  echo $! >"$RUN/pool.pid"
  wait_http "$MEMSHADOW_POOL_URL/health" 300 "$RUN/pool.log"
}

# The dev signing key: generated once per checkout; the Worker trusts its
# public half, and `mint-token` signs tokens with it for the walk-through.
dev_keys() {
  mkdir -p "$DEV_KEYS"
  if [ ! -f "$DEV_KEYS/private.pem" ]; then
    "$CARGO_TARGET_DIR/release/mint-token" generate --out "$DEV_KEYS"
  fi
}

# The backup keys: an age identity (stays here; restores use it) whose
# recipient the Worker encrypts to, and the manifest signing key.
backup_keys() {
  if [ ! -f "$BACKUP_KEYS/signing-key.txt" ]; then
    "$CARGO_TARGET_DIR/release/sdap" keygen --dir "$BACKUP_KEYS" >/dev/null
  fi
}

start_api() {
  local base="http://127.0.0.1:$MEMSHADOW_API_PORT"
  if curl -fsS -o /dev/null "$base/health" 2>/dev/null; then
    echo "stack: API already answers at $base"
    return
  fi
  # wrangler reads local secrets from a .dev.vars file next to its config;
  # we pass ours explicitly so nothing in the clone holds them.
  {
    echo "MEMSHADOW_JWT_PUBLIC_KEYS=$(tr -d '\n' <"$DEV_KEYS/jwks.json")"
    # The same dev key signs the tokens the API issues at sign-in (PEM with
    # escaped newlines: one line per variable in a dotenv file).
    echo "MEMSHADOW_JWT_SIGNING_KEY=$(awk '{printf "%s\\n", $0}' "$DEV_KEYS/private.pem")"
    echo "MEMSHADOW_EMBEDDING_URL=$MEMSHADOW_POOL_URL"
    # The deployment's model: all-MiniLM-L6-v2 (wrangler.toml) unless the
    # caller's environment names another the pool serves.
    if [ -n "${MEMSHADOW_EMBEDDING_MODEL:-}" ]; then
      echo "MEMSHADOW_EMBEDDING_MODEL=$MEMSHADOW_EMBEDDING_MODEL"
    fi
    # Passkeys: relying party `localhost`, so the page must be opened as
    # http://localhost:<port> (browsers bind credentials to the RP id).
    echo "MEMSHADOW_WEBAUTHN_ORIGINS=http://localhost:$MEMSHADOW_API_PORT"
    # SDAP backups to the local R2 bucket (under --persist-to).
    echo "MEMSHADOW_BACKUP_RECIPIENTS=$(cat "$BACKUP_KEYS/recipient.txt")"
    echo "MEMSHADOW_BACKUP_SIGNING_KEY=$(cat "$BACKUP_KEYS/signing-key.txt")"
  } >"$RUN/dev.vars"
  rm -f "$RUN/api.stop"
  : >"$RUN/api.log"
  supervise_api >>"$RUN/api.log" 2>&1 &
  echo $! >"$RUN/api.pid"
  wait_http "$base/health" 120 "$RUN/api.log"
}

# The Spin build under `wasm-host serve`, configured like the Worker (the
# same dotenv file; flags override it) plus what only Spin needs: the
# Postgres URL and the hosts it may reach, and the scheduled route's secret
# (written to $RUN/spin.secret for whoever wants to call the route). Its
# timer calls that route as often as scheduler.sh fires the Worker's.
#
# Backups stay off here: both builds share one database, whose backup runs
# (and their retention) must all live in one object store, and the stack's
# store is the Worker's R2 bucket (the Spin build would write to its own
# key-value store; see edge-api/src/platform/spin/blob.rs).
start_spin() {
  local base="http://127.0.0.1:$MEMSHADOW_SPIN_PORT"
  if curl -fsS -o /dev/null "$base/health" 2>/dev/null; then
    echo "stack: Spin build already answers at $base"
    return
  fi
  [ -f "$RUN/spin.secret" ] || od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$RUN/spin.secret"
  "$HOST_BIN" serve --listen "127.0.0.1:$MEMSHADOW_SPIN_PORT" \
    --component "$CARGO_TARGET_DIR/wasm32-wasip2/release/edge_api.wasm" \
    --variables-file "$RUN/dev.vars" --data-dir "$RUN/spin" \
    --variable "memshadow_database_url=$DATABASE_URL" \
    --variable "memshadow_outbound_postgres=postgres://127.0.0.1:$MEMSHADOW_PG_PORT" \
    --variable "memshadow_outbound_pool=http://127.0.0.1:$MEMSHADOW_POOL_PORT" \
    --variable "memshadow_webauthn_origins=http://localhost:$MEMSHADOW_SPIN_PORT" \
    --variable "memshadow_scheduled_secret=$(cat "$RUN/spin.secret")" \
    --variable "memshadow_backup_recipients=" --variable "memshadow_backup_signing_key=" \
    --scheduled-every-s "${MEMSHADOW_SCHEDULER_SECONDS:-5}" \
    >"$RUN/spin.log" 2>&1 &
  echo $! >"$RUN/spin.pid"
  wait_http "$base/health" 180 "$RUN/spin.log"
}

# The timer that stands in for Cron Triggers (wrangler dev fires none).
start_scheduler() {
  if [ -f "$RUN/scheduler.pid" ] && kill -0 "$(cat "$RUN/scheduler.pid")" 2>/dev/null; then
    echo "stack: scheduler already running"
    return
  fi
  scripts/scheduler.sh "http://127.0.0.1:$MEMSHADOW_API_PORT" "${MEMSHADOW_SCHEDULER_SECONDS:-5}" \
    >>"$RUN/scheduler.log" 2>&1 &
  echo $! >"$RUN/scheduler.pid"
}

# Runs wrangler dev and starts it again whenever it exits without being
# asked to (`down` leaves $RUN/api.stop first), saying so in api.log.
# socket-guard.cjs keeps a reset Hyperdrive socket from killing it (see
# that file); this catches whatever else might.
supervise_api() {
  local restarts=0 base="http://127.0.0.1:$MEMSHADOW_API_PORT"
  while :; do
    local rc=0
    WRANGLER_SEND_METRICS=false node --require "$REPO_ROOT/scripts/node/socket-guard.cjs" \
      "$MEMSHADOW_NODE/node_modules/wrangler/bin/wrangler.js" dev \
      --local --ip 127.0.0.1 --port "$MEMSHADOW_API_PORT" --persist-to "$RUN/wrangler" \
      --inspector-port $((MEMSHADOW_API_PORT + 30000)) \
      --env-file "$RUN/dev.vars" --test-scheduled --show-interactive-dev-session=false || rc=$?
    [ -f "$RUN/api.stop" ] && return 0
    restarts=$((restarts + 1))
    echo "stack: $(date -u +%FT%TZ) the API process (wrangler dev) exited with status $rc; restarting it (restart $restarts)"
    # Its workerd may hold the port for a moment.
    for _ in $(seq 1 40); do
      curl -fsS -o /dev/null "$base/health" 2>/dev/null || break
      sleep 0.25
    done
    sleep 1
  done
}

up() {
  mkdir -p "$RUN"
  scripts/pg.sh start
  start_pool
  dev_keys
  backup_keys
  start_api
  start_spin
  start_scheduler
  cat <<EOF
MEMSHADOW is up:
  API (wrangler dev)   http://127.0.0.1:$MEMSHADOW_API_PORT   (OpenAPI at /openapi.json)
  API (Spin build)     http://127.0.0.1:$MEMSHADOW_SPIN_PORT   (wasm-host serve)
  embedding pool       $MEMSHADOW_POOL_URL   (/v1/embeddings, /health, /metrics)
  Postgres + pgvector  127.0.0.1:$MEMSHADOW_PG_PORT   (database memshadow)
  scheduled jobs       every ${MEMSHADOW_SCHEDULER_SECONDS:-5}s (scripts/scheduler.sh)
  logs                 $RUN/
Stop it with: scripts/stop.sh
EOF
}

# Every process below $1 (the API's supervisor runs node, which runs workerd).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

stop_pid() {
  local file="$1"
  [ -f "$file" ] || return 0
  local pid; pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    # Stop the whole tree this pid started (wrangler starts workerd).
    local tree; tree="$(descendants "$pid")"
    # shellcheck disable=SC2086 # one pid per word
    [ -n "$tree" ] && kill -TERM $tree 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  stop_pid "$RUN/scheduler.pid"
  # Tells the API's supervisor not to restart what stop_pid ends.
  [ -d "$RUN" ] && touch "$RUN/api.stop"
  stop_pid "$RUN/api.pid"
  stop_pid "$RUN/spin.pid"
  stop_pid "$RUN/pool.pid"
  if [ "${MEMSHADOW_KEEP_PG:-0}" != 1 ]; then scripts/pg.sh stop; fi
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 build|up|down" >&2; exit 2 ;;
esac
