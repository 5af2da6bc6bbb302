#!/usr/bin/env bash
# The main job on embedded defaults: set up (idempotent), then run `edgefleet demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edgefleet demo "$@"
