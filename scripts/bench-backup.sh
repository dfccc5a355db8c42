#!/usr/bin/env bash
# Backup throughput: seeds a scratch database with N memories (default
# 100000; 384-d vectors, tags, metadata) for a handful of users, then times
# `sdap export` (encrypt + sign into a folder) and `sdap restore` (verify,
# load in one transaction, re-check every chunk's hash) into a fresh
# database. Prints memories per second; asserts nothing. Needs Postgres
# (scripts/pg.sh start) and the release `sdap` and `migrate` binaries
# (scripts/stack.sh build). The scratch databases are dropped afterwards.
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
cleanup() {
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
t0=$(date +%s.%N)
"$SDAP" export --database "$base/$SRC" --to "$WORK/store" --recipient "$(cat "$WORK/keys/recipient.txt")" \
  --signing-key "$WORK/keys/signing-key.txt" --rows-per-chunk 1000 >/dev/null
t1=$(date +%s.%N)
"$SDAP" restore --from "$WORK/store" --backup latest --identity "$WORK/keys/identity.txt" \
  --trusted-key "$WORK/keys/signing-key.pub" --database "$base/$DST" >/dev/null
t2=$(date +%s.%N)
size=$(du -sb "$WORK/store" | cut -f1)
python3 - "$N" "$t0" "$t1" "$t2" "$size" <<'PY'
import sys
n, t0, t1, t2, size = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5])
print(f"memories: {n}  backup size: {size / 2**20:.1f} MiB")
print(f"export : {t1 - t0:7.1f} s  {n / (t1 - t0):8.0f} memories/s")
print(f"restore: {t2 - t1:7.1f} s  {n / (t2 - t1):8.0f} memories/s (verify + load with indexes + re-check)")
PY
