"""The default `dvc repro`'s wall time on this machine, projected from a few real steps of every kind of run.

    python benchmarks/bench_budget.py [--pipeline wmh] [--steps 30] [--cases 2] [--jobs N] [--target-min 150]

A full regeneration takes hours; this takes minutes, so a machine of another CPU kind (the budgets are set for
AVX2) can say whether the committed params fit before anyone starts one. For each kind of run in the experiment
matrix (a model, or a Table 2 variant: their costs differ), a worker process with one thread trains it for
``--steps`` steps with the training stage's own code and settings (``train_settings`` + ``train``: the sampler,
the optimiser, the checkpoints) into a temporary folder, the validation scored once at the end, then evaluates
``--cases`` test cases on all subsets. ``--jobs`` workers run side by side (default: one per CPU, as
``scripts/parallel_repro.py`` runs the pipeline), so the figures include the two jobs' contention.

Per run: steps x s/step + scorings x s/scoring + test cases x s/case, at the run's real schedule. The projection
sums the matrix (every seed of params.yaml's ``seeds``), packs it on ``--jobs`` lanes longest first, and prints
it beside the target with the CPU kind. Not included: install, data stages, report (seconds to a minute each),
and each stage's own overhead (DVC, process start, model load: 10-25 s a stage).

It is a lower bound. Checked on AVX-512-BF16 (2026-12-02; 60 steps and 3 cases, 4 min; WMH 30 steps, 2 cases,
2 min): projected 10,350 job-seconds for BraTS and 5,030 for WMH, where the committed regenerations (on earlier
machines of the same kind) took 14,300 and 5,800 (1.38x, 1.15x). The short runs' s/step matched full-length
stages' 40-step runs on the same machine (DC-Seg 0.39), while the committed 1400-step runs ran at 0.49-0.52: a
slower machine of the same kind or a slowdown over long runs; neither was separated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dcseg.runs import PREPROCESSED, Run, matrix_runs  # noqa: E402  (no torch: the import is cheap)


def scorings(steps: int, every: int) -> int:
    """How many times the training scores the validation (``dcseg.convergence.due``: every ``every`` steps and
    after the last one)."""
    from dcseg.convergence import due
    return sum(due(step, steps, every) for step in range(1, steps + 1))


def lpt_wall(costs: list[float], lanes: int) -> float:
    """Wall time of ``costs`` packed on ``lanes`` workers, each taking the largest job left when it frees."""
    loads = [0.0] * max(1, lanes)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def measure(model: str, variant: str | None, steps: int, cases: int) -> dict:
    """Worker: train ``steps`` steps of the run kind and evaluate ``cases`` test cases; the run's real schedule."""
    import torch

    from dcseg.data.splits import read_split
    from dcseg.evaluation import evaluation_settings, load_trained_model, run_evaluation
    from dcseg.hardware import cpu_kind
    from dcseg.runs import command_line_keys, load_run_params
    from dcseg.training import train, train_settings

    run = Run(model, variant, 0)
    real = train_settings(load_run_params([]), model, variant=variant, seed_index=0, **run.train_options())
    overrides = [f"train.steps={steps}", f"train.validation.every={steps}"]
    cfg = load_run_params(overrides)
    settings = train_settings(cfg, model, variant=variant, command_line=command_line_keys(overrides, cfg.profile),
                              seed_index=0, **run.train_options())
    split = read_split(PREPROCESSED / "split")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        summary = train(settings, PREPROCESSED, tmp / "model", tmp / "last.pt", progress=False, log_dir=tmp / "log")
        evaluation, et_min_volume, device, hardware = evaluation_settings(cfg, model, warn=False)
        network, _ = load_trained_model(tmp / "model" / "model.pt", run.identity(), PREPROCESSED, evaluation, device,
                                        f"profiles.{cfg.profile}.models.{model}.eval_patch")
        scored = run_evaluation(network, PREPROCESSED, split["test"][:cases], evaluation, et_min_volume,
                                tmp / "cases.csv", tmp / "metrics.json", device, hardware=hardware)
    return {"run": run.name.removesuffix("_seed0"), "seconds_per_step": summary["seconds_per_step"],
            "seconds_per_scoring": summary["validation_seconds_this_run"],
            "seconds_per_case": scored["seconds"] / scored["n_cases"], "steps": real.steps,
            "scorings": scorings(real.steps, real.validation.every), "test_cases": len(split["test"]),
            "cpu_kind": cpu_kind(), "threads": torch.get_num_threads()}


def run_worker(model: str, variant: str | None, args, folder: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", model, variant or "-",
               "--steps", str(args.steps), "--cases", str(args.cases)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench_budget: {model} {variant or ''} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="", help="folder of another pipeline (wmh); default the BraTS one")
    parser.add_argument("--steps", type=int, default=30, help="training steps measured per kind of run")
    parser.add_argument("--cases", type=int, default=2, help="test cases evaluated per kind of run")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="workers side by side")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--target-min", type=float, default=None, help="the budget (default: 150, WMH 45)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, variant = args.worker
        print(json.dumps(measure(model, None if variant == "-" else variant, args.steps, args.cases)))
        return

    import yaml

    folder = ROOT / args.pipeline if args.pipeline else ROOT
    if not (folder / PREPROCESSED / "manifest.csv").is_file():
        raise SystemExit(f"bench_budget: {folder / PREPROCESSED} has no manifest.csv; run the data stages first "
                         f"(dvc repro {'wmh/dvc.yaml:' if args.pipeline else ''}preprocess)")
    target = args.target_min or (45.0 if args.pipeline == "wmh" else 150.0)
    runs = matrix_runs(yaml.safe_load((folder / "params.yaml").read_text()))
    kinds = list(dict.fromkeys((run.model, run.variant) for run in runs))
    with ThreadPoolExecutor(args.jobs) as pool:
        measured = dict(zip(kinds, pool.map(lambda kind: run_worker(*kind, args, folder), kinds)))

    first = next(iter(measured.values()))
    print(f"{args.pipeline or 'BraTS'} pipeline, CPU {first['cpu_kind']}, {args.jobs} jobs x {first['threads']} "
          f"thread(s); measured over {args.steps} steps and {args.cases} test cases per kind of run")
    print(f"{'run':<24}{'s/step':>8}{'steps':>7}{'s/scoring':>11}{'scorings':>10}{'s/case':>8}{'cases':>7}"
          f"{'run s':>8}{'seeds':>7}")
    costs = []
    for kind, m in measured.items():
        seconds = (m["steps"] * m["seconds_per_step"] + m["scorings"] * m["seconds_per_scoring"]
                   + m["test_cases"] * m["seconds_per_case"])
        seeds = sum((run.model, run.variant) == kind for run in runs)
        costs += [seconds] * seeds
        print(f"{m['run']:<24}{m['seconds_per_step']:>8.3f}{m['steps']:>7}{m['seconds_per_scoring']:>11.1f}"
              f"{m['scorings']:>10}{m['seconds_per_case']:>8.1f}{m['test_cases']:>7}{seconds:>8.0f}{seeds:>7}")
    wall = lpt_wall(costs, args.jobs) / 60
    print(f"projected: {sum(costs):,.0f} job-seconds, {wall:.0f} min wall on {args.jobs} lanes (longest first); "
          f"target {target:.0f} min: {'met' if wall <= target else 'missed'} "
          f"({wall / target:.2f}x the target; a lower bound: install, data stages, report and per-stage overheads not "
          f"included, and the committed full runs took 1.15-1.38x such a projection)")


if __name__ == "__main__":
    main()
