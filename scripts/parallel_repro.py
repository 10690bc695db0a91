"""`dvc repro` of the whole pipeline with the runs' stages side by side, one job per CPU.

A training step here is compute-bound in oneDNN convolutions that scale poorly past one thread at these widths
(measured on 2 AVX2 cores: RFNet 0.64-0.72 s/step on 1 thread against 0.45-0.59 s on 2), so two 1-thread runs
finish more work per hour than one 2-thread run. DVC runs the stages of one `dvc repro` one after another, but it
releases the repository lock while a stage's command runs and guards each output with its own read/write lock,
so `dvc repro` processes on disjoint targets may run together. This script does that:

1. ``dvc repro preprocess``: the data stages every run reads, with every thread;
2. a pool of JOBS workers, each taking the next run of the matrix (every run and seed of params.yaml: the main runs
   seed by seed, then the variants, largest training first within each: steps x crop^3) and running ``dvc --wait-for-lock repro --single-item`` of its train stage, then
   its evaluate stage (``dcseg.runs.Run``), with CPUs / JOBS threads;
3. ``dvc repro``: what is left (the report), with every thread; it also proves nothing is out of date.

The end state is what a plain ``dvc repro`` gives: the same stages, the same dvc.lock. Each run's output goes to
``.dvc/tmp/repro/RUN.log`` and is printed whole when the run ends; a failed run stops the scheduling of new ones,
lets the running ones finish, and exits with its status.

    python scripts/parallel_repro.py               # JOBS = the CPUs this process may use (1 on a GPU)
    REPRO_JOBS=1 python scripts/parallel_repro.py  # one job: exactly `dvc repro`
    python scripts/parallel_repro.py report        # any argument: `dvc repro` with those arguments
    REPRO_PIPELINE=wmh python scripts/parallel_repro.py  # the WMH pipeline (wmh/dvc.yaml, wmh/params.yaml)
    REPRO_ALLOW_MISSING=1 python scripts/parallel_repro.py  # every `dvc repro` with --allow-missing: continue a
        # regeneration on a machine whose cache lacks finished runs' models (their git-tracked results stand)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOG_DIR = Path(".dvc/tmp/repro")

from dcseg.runs import Run, matrix_runs  # noqa: E402  (no torch: the import is cheap)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def job_count(env: dict, cpus: int, runs: int, cuda: bool) -> int:
    """REPRO_JOBS if set (a positive integer), else one job per CPU (at most one per run), or one job when the runs
    train on a GPU (they would share it)."""
    value = env.get("REPRO_JOBS", "").strip()
    if not value:
        return 1 if cuda else max(1, min(cpus, runs))
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"parallel_repro: REPRO_JOBS={value!r}: expected a positive integer")
    return int(value)


def threads_per_job(env: dict, cpus: int, jobs: int) -> str:
    """OMP_NUM_THREADS of each job: the user's, if set, else an equal share of the CPUs (at least one)."""
    return env.get("OMP_NUM_THREADS") or str(max(1, cpus // jobs))


def _section(node: dict, key: str) -> dict:
    return node.get(key) or {}


def training_cost(params: dict, model: str, ablation: bool) -> float:
    """Relative cost of a run's training for ordering the queue: steps x crop^3, under the precedence the training
    stage uses (protocol < model entry < ablation schedule). Only the order matters."""
    profile = _section(params["profiles"], params["profile"])
    settings = dict(_section(profile, "train"))
    settings.update(_section(_section(profile, "models"), model))
    if ablation:
        settings.update(_section(profile, "ablation"))
    return float(settings.get("steps", 1)) * float(settings.get("crop", 1)) ** 3


def queue(params: dict) -> list[Run]:
    """The runs of the experiment matrix under params.yaml's ``seeds``: the main runs seed by seed, then the Table 2
    variants, and within each of these waves the largest training first (longest-processing-time-first balancing).
    A regeneration cut short (it is restartable: `dvc repro` continues it) has then finished whole seeds of Table 1
    first, not three seeds of one model. Ties keep the matrix order."""
    runs = list(matrix_runs(params))
    costs = [training_cost(params, run.model, run.is_ablation) for run in runs]
    order = sorted(range(len(runs)), key=lambda i: (runs[i].is_ablation, runs[i].seed, -costs[i], i))
    return [runs[i] for i in order]


def trains_on_cuda(params: dict) -> bool:
    """Whether the selected profile's training runs on a GPU: ``device: cuda``, or ``auto`` where CUDA is there."""
    device = str(_section(_section(params["profiles"], params["profile"]), "train").get("device", "auto"))
    if device != "auto":
        return device.startswith("cuda")
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                           capture_output=True, text=True)
    return probe.stdout.strip() == "True"


def _dvc(args: list[str], env: dict, log: Path | None = None) -> int:
    """Run ``dvc ARGS``; its output goes to this process's, or is appended to ``log``."""
    command = [sys.executable, "-m", "dvc", *args]
    if log is None:
        return subprocess.run(command, env=env).returncode
    with open(log, "a") as out:
        return subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def repro_flags(env: dict) -> list[str]:
    """The flags of every `dvc repro` call: ``--allow-missing`` when REPRO_ALLOW_MISSING is 1 (a stage whose only
    change is outputs missing from the cache is then skipped, not rerun)."""
    value = env.get("REPRO_ALLOW_MISSING", "").strip()
    if value not in ("", "0", "1"):
        raise SystemExit(f"parallel_repro: REPRO_ALLOW_MISSING={value!r}: expected 0 or 1")
    return ["--allow-missing"] if value == "1" else []


def pipeline(env: dict) -> tuple[str, Path]:
    """REPRO_PIPELINE: "" (the BraTS pipeline, dvc.yaml) or a folder holding another (wmh) -> (the prefix of its
    stage names for `dvc repro` from the root, its params file)."""
    folder = env.get("REPRO_PIPELINE", "").strip().strip("/")
    if not folder:
        return "", Path("params.yaml")
    if not (Path(folder) / "dvc.yaml").is_file():
        raise SystemExit(f"parallel_repro: REPRO_PIPELINE={folder!r}: expected a folder holding dvc.yaml (e.g. wmh)")
    return f"{folder}/dvc.yaml:", Path(folder) / "params.yaml"


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    if argv:  # targets or flags: a plain `dvc repro` with them
        return _dvc(["repro", *argv], env)
    prefix, params_file = pipeline(env)
    flags = repro_flags(env)
    whole = [prefix.rstrip(":")] if prefix else []  # `dvc repro` of that pipeline only
    params = yaml.safe_load(params_file.read_text())
    runs = queue(params)
    cpus = available_cpus()
    jobs = job_count(env, cpus, len(runs), trains_on_cuda(params))
    if jobs == 1:
        return _dvc(["repro", *flags, *whole], env)
    started = time.monotonic()
    status = _dvc(["repro", *flags, prefix + "preprocess"], env)
    if status:
        return status
    log_dir = LOG_DIR / prefix.split("/")[0] if prefix else LOG_DIR  # the WMH runs' logs apart from BraTS's
    log_dir.mkdir(parents=True, exist_ok=True)
    job_env = dict(env, OMP_NUM_THREADS=threads_per_job(env, cpus, jobs))
    print(f"parallel_repro: {len(runs)} runs, {jobs} jobs of {job_env['OMP_NUM_THREADS']} thread(s) each on "
          f"{cpus} CPUs; each run's output: {log_dir}/RUN.log", flush=True)
    failed: list[tuple[str, int]] = []
    printing = threading.Lock()

    def reproduce(run: Run) -> None:
        if failed:
            return
        name = run.name
        log = log_dir / f"{name}.log"
        t0 = time.monotonic()
        # --single-item: a job must not check the data stages, which takes a write lock on their outputs while
        # the other jobs hold read locks on them (their dependency)
        log.write_text("")
        code = 0
        for stage in (run.train_stage, run.evaluate_stage):
            code = code or _dvc(["--wait-for-lock", "repro", *flags, "--single-item", prefix + stage], job_env,
                                 log)
        with printing:
            print(f"--- {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - t0:.0f} s",
                  flush=True)
            sys.stdout.write(log.read_text())
            sys.stdout.flush()
        if code:
            failed.append((run, code))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(reproduce, runs))
    if failed:
        run, code = failed[0]
        print(f"parallel_repro: {run.name} failed (exit {code}); see {log_dir}/{run.name}.log", file=sys.stderr)
        return code
    status = _dvc(["repro", *flags, *whole], env)
    print(f"parallel_repro: {'finished' if status == 0 else 'failed'} in {time.monotonic() - started:.0f} s",
          flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
