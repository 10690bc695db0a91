#!/usr/bin/env bash
# README command 2 (and CI): install (if needed) and run the test suite, one pytest worker per CPU (pytest-xdist),
# each on one thread: two 1-thread processes do more than one 2-thread process here (dcseg/hardware.py). The slow
# end-to-end tests come first (tests/conftest.py) and `--dist loadgroup` hands out one test at a time (each test is
# its own unit), so they start on different workers; `--dist load` would send them all to the first worker in one
# chunk. Extra arguments go to pytest (`-n 0`: one process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec python -m pytest -n auto --dist loadgroup "$@"
