"""The project's speed and memory targets, measured in one run on this machine, each printed as met or missed.

    python benchmarks/bench_targets.py [--models dcseg rfnet mmformer] [--steps 3] [--threads N]
                                       [--skip training evaluation preprocessing threads]

Settings come from params.yaml's selected profile (crop, batch, evaluation window, subset batch, and the `auto`
settings resolved by dcseg/hardware.py), so the numbers describe what `dvc repro` runs on this machine. Untrained
weights: timing does not depend on them. Every table names the CPU (torch's capability, and whether bf16 is
native) next to its figures.

1. Training step (forward + loss + backward, batch of the profile) per model: fp32 and bf16 autocast, each
   contiguous and channels_last_3d, and the choice `auto` resolves to here. On a CPU without native bf16 the bf16
   columns are measured over one step (after a warm-up step): emulated bf16 costs seconds per step.
   Target: the resolved step is the fastest of the four (within 5 %: the timing noise of a shared VM).
2. Evaluation of one test case on all 15 subsets (prediction + scoring):
   - shared encoder features vs 15 independent passes (fp32), against the ideal 15(4E + D)/(4E + 15D) from the
     model's own per-window cost split (4E = all four encoders, D = one subset's fusion + decoder);
     target: >= 90% of the ideal;
   - the resolved precision and layout with the 15 subsets decoded as one batch vs the references' 15 independent
     fp32 passes; target >= 5x.
3. Preprocessing seconds per case (read NIfTI, crop, z-score, write), on the raw phantom when it exists.
4. Peak RSS: of this process, and of each training run recorded in logs/*/train_summary.json (target <= 4 GiB).
5. Threads: the resolved RFNet step with all CPUs' threads and with one fewer, on a quiet machine and beside one busy
   process, under libgomp's default wait policy and OMP_WAIT_POLICY=PASSIVE (each in a fresh process: the policy
   is read when torch loads); target: the stages' thread choice (one thread per idle CPU) never collapses.

Nothing here is asserted by the tests (timing asserts in unit tests are flaky by nature).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evaluation import cost_split, load_volume, timed_case  # noqa: E402
from bench_models import step_seconds  # noqa: E402

from dcseg import hardware  # noqa: E402
from dcseg.config import load_params  # noqa: E402
from dcseg.evaluation import evaluation_settings as eval_settings  # noqa: E402
from dcseg.models import MODEL_NAMES  # noqa: E402
from dcseg.registry import build_model  # noqa: E402
from dcseg.training import train_settings  # noqa: E402

GIB = 1024 ** 3


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def machine() -> str:
    """The CPU as every table names it."""
    return (f"{hardware.cpu_kind()} (torch capability {hardware.cpu_capability()}, native bf16: "
            f"{hardware.cpu_bf16_native()}), {torch.get_num_threads()} threads")


def bench_training(cfg, names, steps):
    native = hardware.cpu_bf16_native()
    bf16_steps = steps if native else 1
    print(f"\n## 1. Training step, s (forward + loss + backward; batch and crop of the profile) on {machine()}")
    if not native:
        print(f"(no native bf16: the bf16 columns are emulated, measured over {bf16_steps} step after a warm-up)")
    configs = {("fp32", False): "fp32", ("fp32", True): "fp32+CL", ("bf16", False): "bf16", ("bf16", True): "bf16+CL"}
    print(f"{'model':<10}{'crop':>5}" + "".join(f"{c:>9}" for c in configs.values())
          + f"{'auto ->':>18}{'s':>7}{'bf16/fp32':>10}  resolved is fastest (5 %)  cpu")
    for name in names:
        s = train_settings(cfg, name)
        _, resolved = hardware.resolve(s.device, s.precision, s.channels_last, warn=False)
        seconds = {key: step_seconds(name, s.width, s.crop, s.batch_size, bf16_steps if key[0] == "bf16" else steps,
                                     bf16=key[0] == "bf16", channels_last=key[1]) for key in configs}
        choice = (resolved.precision, resolved.channels_last)
        fastest = min(seconds.values())
        print(f"{name:<10}{s.crop:>5}" + "".join(f"{seconds[k]:>9.2f}" for k in configs)
              + f"{configs[choice]:>18}{seconds[choice]:>7.2f}{seconds[('bf16', False)] / seconds[('fp32', False)]:>9.1f}x"
              f"  {verdict(seconds[choice] <= 1.05 * fastest):<25}  {hardware.cpu_kind()}", flush=True)


def bench_evaluation(cfg, names, repeats):
    print(f"\n## 2. Evaluation of one test case on 15 subsets (prediction + scoring), s, on {machine()}")
    what, image, label, spacing, diagonal = load_volume((40, 48, 40), random=False)
    print(f"on {what}")
    print("shared-1: encoders once per window, the 15 subsets decoded one at a time (sharing alone, what the ideal "
          "models); shared-B: decoded in batches of the profile's subset_batch (fp32, contiguous); auto-15: the "
          "resolved precision and layout, all 15 in one batch")
    print(f"{'model':<10}{'patch':>6}{'4E':>7}{'D':>7}{'ideal':>7}{'indep':>8}{'shared-1':>9}{'ratio':>7}"
          f"{'of ideal':>9}  >=90%  {'shared-B':>9}{'ratio':>7}{'auto':>10}{'auto-15':>8}{'vs indep':>9}  >=5x  cpu")
    for name in names:
        settings, _, _, resolved = eval_settings(cfg, name, warn=False)
        torch.manual_seed(0)
        model = build_model(name, width=train_settings(cfg, name).width, crop_size=settings.patch).eval()
        encode, decode, _ = cost_split(model, settings.patch, False, repeats)
        ideal = 15 * (encode + decode) / (encode + 15 * decode)
        fp32 = dataclasses.replace(settings, precision="fp32", channels_last=False)
        independent = sum(timed_case(model, image, label, spacing, diagonal, dataclasses.replace(fp32, mode="independent")))
        shared_one = sum(timed_case(model, image, label, spacing, diagonal, dataclasses.replace(fp32, subset_batch=1)))
        shared = sum(timed_case(model, image, label, spacing, diagonal, fp32))
        auto = dataclasses.replace(settings, subset_batch=15)
        model = model.to(memory_format=hardware.memory_format(auto.channels_last))
        batched = sum(timed_case(model, image, label, spacing, diagonal, auto))
        model = model.to(memory_format=torch.contiguous_format)
        speedup = independent / shared_one
        label_auto = auto.precision + ("+CL" if auto.channels_last else "")
        print(f"{name:<10}{settings.patch:>6}{encode:>7.3f}{decode:>7.3f}{ideal:>6.2f}x{independent:>8.1f}"
              f"{shared_one:>9.1f}{speedup:>6.2f}x{speedup / ideal:>8.0%}  {verdict(speedup >= 0.9 * ideal):<6}"
              f"{shared:>9.1f}{independent / shared:>6.2f}x{label_auto:>10}{batched:>8.1f}{independent / batched:>8.2f}x"
              f"  {verdict(independent / batched >= 5):<6}{hardware.cpu_kind()}", flush=True)


def bench_preprocessing(cfg):
    print("\n## 3. Preprocessing, s per case")
    from dcseg.data.dataset import build_preprocessed
    from dcseg.data.splits import write_split

    raw = Path(cfg.data.root) / cfg.data.source
    cases = sorted(p.name for p in raw.glob("BraTS20_Training_*"))[:4] if raw.is_dir() else []
    if not cases:
        print(f"skipped: no raw cases under {raw} (run `dvc repro phantom`)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_split(Path(tmp) / "split", {"train": cases, "val": [], "test": []})
        start = time.perf_counter()
        build_preprocessed(raw, Path(tmp) / "split", Path(tmp) / "out", tuple(cfg.preprocess.min_size), progress=False,
                           workers=1)
        seconds = (time.perf_counter() - start) / len(cases)
    print(f"{seconds:.3f} s per case (one worker, {len(cases)} cases of {raw})")


def report_memory():
    print("\n## 4. Peak RSS")
    print(f"this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for summary in sorted(Path("logs").glob("*/train_summary.json")):
        rss = json.loads(summary.read_text()).get("peak_rss_mib")
        if rss is not None:
            print(f"training {summary.parent.name:<22} {rss:8.0f} MiB  target <= 4096 MiB: {verdict(rss <= 4096)}")


THREAD_PROBE = "--thread-probe"  # child mode: print the resolved RFNet step time, nothing else


def thread_probe(steps: int) -> None:
    cfg = load_params()
    s = train_settings(cfg, "rfnet")
    _, resolved = hardware.resolve(s.device, s.precision, s.channels_last, warn=False)
    print(step_seconds("rfnet", s.width, s.crop, s.batch_size, steps, bf16=resolved.precision == "bf16",
                       channels_last=resolved.channels_last))


def bench_threads(steps: int) -> None:
    """The resolved RFNet step per thread setting, quiet and beside one busy process, each in a fresh process."""
    cpus = len(os.sched_getaffinity(0))
    print(f"\n## 5. Threads: the resolved RFNet step, s, on {machine().rsplit(',', 1)[0]}; {cpus} CPUs")
    settings = {f"{cpus} threads, default wait": {"OMP_NUM_THREADS": str(cpus)},
                f"{cpus} threads, PASSIVE": {"OMP_NUM_THREADS": str(cpus), "OMP_WAIT_POLICY": "PASSIVE"},
                f"{max(cpus - 1, 1)} thread(s)": {"OMP_NUM_THREADS": str(max(cpus - 1, 1))}}

    def probe(extra: dict) -> float:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        out = subprocess.run([sys.executable, __file__, THREAD_PROBE, str(steps)], env={**env, **extra},
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[-1])

    results = {}
    for load in ("quiet", "1 busy process"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "quiet" else None
        try:
            results[load] = {name: probe(extra) for name, extra in settings.items()}
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print(f"{'setting':<28}" + "".join(f"{load:>16}" for load in results) + f"{'loaded/quiet':>14}")
    for name in settings:
        quiet, loaded = (results[load][name] for load in results)
        print(f"{name:<28}{quiet:>16.2f}{loaded:>16.2f}{loaded / quiet:>13.1f}x")
    # the stages' rule (dcseg.hardware.set_threads): every CPU when quiet, one per idle CPU beside the busy process
    chosen = (results["quiet"][f"{cpus} threads, default wait"], results["1 busy process"][f"{max(cpus - 1, 1)} thread(s)"])
    print(f"{'stages (one per idle CPU)':<28}{chosen[0]:>16.2f}{chosen[1]:>16.2f}{chosen[1] / chosen[0]:>13.1f}x  "
          f"collapse under 2x: {verdict(chosen[1] < 2 * chosen[0])}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == THREAD_PROBE:
        thread_probe(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the per-window cost split")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["training", "evaluation", "preprocessing", "threads"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_params()
    print(f"# dcseg-bench targets: profile {cfg.profile}, torch {torch.__version__}, numpy {np.__version__}, "
          f"CPU {machine()}")
    if "training" not in args.skip:
        bench_training(cfg, args.models, args.steps)
    if "evaluation" not in args.skip:
        bench_evaluation(cfg, args.models, args.repeats)
    if "preprocessing" not in args.skip:
        bench_preprocessing(cfg)
    report_memory()
    if "threads" not in args.skip:
        bench_threads(args.steps)
    print(f"\npeak RSS of this process at the end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
