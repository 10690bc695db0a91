#!/usr/bin/env bash
# The quick profile: a first Table 1 from one seed of each model at 300 steps, no Table 2 variants. It is the
# default `cpu` profile with these `dvc exp run -S` overrides (the seed lists are top-level params, because
# dvc.yaml's matrices read them, so a `profiles.*` section cannot change them); on a GPU (`device: auto`) it runs
# the same overrides. `dvc exp run` leaves the experiment in the workspace: `git checkout params.yaml` and
# `dvc checkout` (or `dvc exp apply` of another experiment) go back. Extra arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
exec dvc exp run \
  -S 'seeds.main=[0]' -S 'seeds.ablation=[]' \
  -S profiles.cpu.train.steps=300 -S profiles.cpu.train.validation.every=100 \
  "$@"
