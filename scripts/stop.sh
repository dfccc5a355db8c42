#!/usr/bin/env bash
# Stops everything scripts/start.sh started (API, embedding pool, Postgres).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/stack.sh down
