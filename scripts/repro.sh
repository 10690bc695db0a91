#!/usr/bin/env bash
# README command 1: install (if needed) and run the whole pipeline. Extra arguments go to `dvc repro`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
exec dvc repro "$@"
