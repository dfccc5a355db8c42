#!/usr/bin/env bash
# Fires the Worker's scheduled entry point every few seconds, as Cron
# Triggers do for a deployed Worker: wrangler dev fires no cron by itself,
# so without this a pending memory would stay pending in the local stack.
#
#   scripts/scheduler.sh BASE_URL [SECONDS]
#
# Each call waits for its run to finish (a run embeds everything due, within
# MEMSHADOW_EMBED_JOB_BUDGET_MS), then the loop sleeps SECONDS (default 5),
# so runs never pile up. scripts/stack.sh starts it on `up` (log:
# <run dir>/scheduler.log) and stops it on `down`; the job's own report of
# each run is in the API's log. This log has one line whenever the answer
# changes (the API went away, came back), so it stays small.
set -uo pipefail
base="${1:?usage: scheduler.sh BASE_URL [SECONDS]}"
interval="${2:-5}"
cron='*/5+*+*+*+*'
last=""
while true; do
  status="$(curl -s -o /dev/null -w '%{http_code}' -m 900 "$base/__scheduled?cron=$cron")"
  if [ "$status" != "$last" ]; then
    echo "$(date -u +%FT%TZ) $base/__scheduled answered $status"
    last="$status"
  fi
  sleep "$interval"
done
