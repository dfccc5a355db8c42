#!/usr/bin/env bash
# Backup throughput: seeds a scratch database with N memories (default
# 100000; 384-d vectors, tags, metadata) for a handful of users, then times
#  - the API's own scheduled backup: the real Worker under wrangler dev on
#    the scratch database, its daily trigger, then the `*/5` trigger that
#    resumes a run cut at its chunk cap, until /ready shows the backup done
#    (chunks encrypted, uploaded to miniflare's local R2, read back and
#    compared, manifest signed);
#  - `sdap export` (the same format, encrypt + sign into a folder);
#  - `sdap restore` of that export (verify, load in one transaction,
#    re-check every chunk's hash) into a fresh database.
# Prints memories per second; asserts nothing. Needs Postgres
# (scripts/pg.sh start), the Worker build and the release `sdap` and
# `migrate` binaries (scripts/stack.sh build), and the dev keys that
# scripts/start.sh makes. The scratch databases are dropped afterwards.
#
#   scripts/bench-backup.sh [N]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

N="${1:-100000}"
SDAP="$CARGO_TARGET_DIR/release/sdap"
MIGRATE="$CARGO_TARGET_DIR/release/migrate"
PSQL=("$MEMSHADOW_PG_BIN/psql" -h 127.0.0.1 -p "$MEMSHADOW_PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
base="${MEMSHADOW_ADMIN_DATABASE_URL%/*}"
SRC=bench_backup_src DST=bench_backup_dst
WORK="$(mktemp -d)"
WORKER_PID=""
# wrangler runs workerd as its child: stop both.
stop_worker() {
  [ -n "$WORKER_PID" ] || return 0
  pkill -TERM -P "$WORKER_PID" 2>/dev/null || true
  kill "$WORKER_PID" 2>/dev/null || true
  WORKER_PID=""
}
cleanup() {
  stop_worker
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $SRC WITH (FORCE)" -c "DROP DATABASE IF EXISTS $DST WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for db in $SRC $DST; do
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  "$MIGRATE" "$base/$db" >/dev/null
done

echo "seeding $N memories…"
"${PSQL[@]}" -d $SRC <<SQL
INSERT INTO users (id, email, username, password_hash, created_at)
SELECT ('00000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 'user' || u || '@bench.example',
       'user' || u, '\$argon2id\$v=19\$m=19456,t=2,p=1\$c2FsdHNhbHQ\$aGFzaA', now()
FROM generate_series(1, 10) u;
INSERT INTO memories (user_id, content, content_hash, metadata, tags, embedding, embedding_model, embedding_status)
SELECT ('00000000-0000-4000-8000-' || lpad((1 + g % 10)::text, 12, '0'))::uuid,
       'benchmark memory ' || g || ': ' || md5(g::text) || ' ' || md5((g * 7)::text),
       encode(sha256(('b' || g)::bytea), 'hex'),
       jsonb_build_object('n', g, 'source', 'bench'), ARRAY['bench', 't' || (g % 20)],
       (SELECT array_agg(sin(g + i)::real) FROM generate_series(1, 384) i)::vector,
       'all-MiniLM-L6-v2', 'ready'
FROM generate_series(1, $N) g;
SQL

"$SDAP" keygen --dir "$WORK/keys" >/dev/null

# The API's scheduled backup: a Worker of its own on the scratch database.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
  echo "MEMSHADOW_JWT_PUBLIC_KEYS=$(tr -d '\n' <"$MEMSHADOW_DATA/dev-keys/jwks.json")"
  echo "MEMSHADOW_DEV_DATABASE_URL=postgres://memshadow_app:memshadow_app@127.0.0.1:$MEMSHADOW_PG_PORT/$SRC"
  echo "MEMSHADOW_BACKUP_RECIPIENTS=$(cat "$WORK/keys/recipient.txt")"
  echo "MEMSHADOW_BACKUP_SIGNING_KEY=$(cat "$WORK/keys/signing-key.txt")"
} >"$WORK/dev.vars"
WRANGLER_SEND_METRICS=false node "$MEMSHADOW_NODE/node_modules/wrangler/bin/wrangler.js" dev \
  --local --ip 127.0.0.1 --port "$port" --persist-to "$WORK/wrangler" --env-file "$WORK/dev.vars" \
  --test-scheduled --show-interactive-dev-session=false >"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
api="http://127.0.0.1:$port"
for _ in $(seq 1 240); do curl -fsS -o /dev/null "$api/health" 2>/dev/null && break; sleep 0.5; done
curl -fsS -o /dev/null "$api/health" || { cat "$WORK/worker.log"; exit 1; }
# The run's state as the job records it (postgres bypasses row security).
run_state() { "${PSQL[@]}" -d $SRC -c "SELECT coalesce(string_agg(backup_id || ' ' || status, ','), 'none') FROM backup_runs"; }
tw0=$(date +%s.%N)
curl -fsS -o /dev/null "$api/__scheduled?cron=0+3+*+*+*"
invocations=1
while :; do
  state="$(run_state)"
  case "$state" in
    *" done") break ;;
    *failed*) echo "the Worker's backup failed: $state"; tail -20 "$WORK/worker.log"; exit 1 ;;
  esac
  # Cut at its chunk cap: the next */5 run resumes it (as in production).
  sleep 1
  curl -fsS -o /dev/null "$api/__scheduled?cron=*/5+*+*+*+*"
  invocations=$((invocations + 1))
  [ "$invocations" -le 200 ] || { echo "the Worker's backup did not finish"; tail -20 "$WORK/worker.log"; exit 1; }
done
tw1=$(date +%s.%N)
worker_backup="${state%% *}"
stop_worker

t0=$(date +%s.%N)
"$SDAP" export --database "$base/$SRC" --to "$WORK/store" --recipient "$(cat "$WORK/keys/recipient.txt")" \
  --signing-key "$WORK/keys/signing-key.txt" --rows-per-chunk 1000 >/dev/null
t1=$(date +%s.%N)
"$SDAP" restore --from "$WORK/store" --backup latest --identity "$WORK/keys/identity.txt" \
  --trusted-key "$WORK/keys/signing-key.pub" --database "$base/$DST" >/dev/null
t2=$(date +%s.%N)
size=$(du -sb "$WORK/store" | cut -f1)
python3 - "$N" "$t0" "$t1" "$t2" "$size" "$tw0" "$tw1" "$invocations" "$worker_backup" <<'PY'
import sys
n, t0, t1, t2, size, tw0, tw1 = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5]), *map(float, sys.argv[6:8])
invocations, backup_id = int(sys.argv[8]), sys.argv[9]
print(f"memories: {n}  backup size: {size / 2**20:.1f} MiB")
print(f"API's scheduled backup (Worker -> local R2): {tw1 - tw0:7.1f} s  {n / (tw1 - tw0):8.0f} memories/s"
      f"  ({invocations} invocations, backup {backup_id})")
print(f"export : {t1 - t0:7.1f} s  {n / (t1 - t0):8.0f} memories/s")
print(f"restore: {t2 - t1:7.1f} s  {n / (t2 - t1):8.0f} memories/s (verify + load with indexes + re-check)")
PY
