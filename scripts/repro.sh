#!/usr/bin/env bash
# README command 1: install (if needed) and run both pipelines: the BraTS pipeline (dvc.yaml; its runs side by side,
# one job per CPU: scripts/parallel_repro.py), then the WMH pipeline (wmh/dvc.yaml, paper Table 3). With arguments,
# a plain `dvc repro` with them (e.g. `scripts/repro.sh wmh/dvc.yaml` for the WMH pipeline alone, `-P` for both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
if [ "$#" -gt 0 ]; then
  exec python scripts/parallel_repro.py "$@"
fi
python scripts/parallel_repro.py
REPRO_PIPELINE=wmh exec python scripts/parallel_repro.py
