#!/usr/bin/env bash
# README command 1: install (if needed) and run the whole pipeline, the runs side by side, one job per CPU
# (scripts/parallel_repro.py). With arguments, a plain `dvc repro` with them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
exec python scripts/parallel_repro.py "$@"
