#!/usr/bin/env bash
# One command, no configuration: install what is missing, build, and start
# the whole local stack in the background; prints where each part listens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
scripts/stack.sh build
scripts/stack.sh up
