#!/usr/bin/env bash
# Create .venv/ at the repository root and install the project into it. Idempotent: a second run with
# pyproject.toml and the install scripts unchanged returns at once.
#
# torch is installed first, pinned to 2.13.0, so that the torch range in pyproject is already satisfied when
# the project is installed. Which build: scripts/torch_choice.py lets pip resolve the pin (dry run) and adds
# the PyTorch CPU index only if pip would take a CUDA build and there is no NVIDIA GPU; otherwise pip's own
# index settings stand (a local wheel, an offline mirror, the CUDA build on a GPU machine).
# TORCH_SPEC overrides that choice and is passed to pip unchanged
# (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=torch==2.13.0
stamp=.venv/.bootstrap-stamp
want=$(cat pyproject.toml scripts/bootstrap.sh scripts/torch_choice.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "${TORCH_SPEC:-}" ]; then
    torch_args=$TORCH_SPEC
else
    # Prints the extra pip arguments (none, or the CPU index) and one line on stderr saying why.
    choice=$(.venv/bin/python scripts/torch_choice.py "$TORCH_PIN")
    torch_args="$TORCH_PIN $choice"
fi
# shellcheck disable=SC2086
if ! .venv/bin/python -m pip install --quiet $torch_args; then
    if [ -n "${choice:-}" ]; then
        # the CPU index could not be reached: pip's own resolution still installs (a larger CUDA build)
        echo "bootstrap: warning: installing $TORCH_PIN with '$choice' failed; retrying with pip's own index" >&2
        .venv/bin/python -m pip install --quiet "$TORCH_PIN"
    else
        exit 1
    fi
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "$want" > "$stamp"
echo "bootstrap: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
