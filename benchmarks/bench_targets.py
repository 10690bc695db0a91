"""Issue 6's speed and memory targets, measured in one run on this machine, each printed as met or missed.

    python benchmarks/bench_targets.py [--models dcseg rfnet mmformer] [--steps 3] [--threads N]

Settings come from params.yaml's selected profile (crop, batch, precision, evaluation window, subset batch), so
the numbers describe what `dvc repro` runs. Untrained weights: timing does not depend on them.

1. Training step (forward + loss + backward, batch of the profile) per model: fp32, bf16 autocast, bf16 +
   channels_last_3d; target: the profile's step >= 3x faster than the fp32 step of the same model.
2. Evaluation of one test case on all 15 subsets (prediction + scoring):
   - shared encoder features vs 15 independent passes (fp32), against the ideal 15(4E + D)/(4E + 15D) from the
     model's own per-window cost split (4E = all four encoders, D = one subset's fusion + decoder);
     target: >= 90% of the ideal;
   - bf16 with the 15 subsets decoded as one batch vs the references' 15 independent fp32 passes; target >= 5x.
3. Preprocessing seconds per case (read NIfTI, crop, z-score, write), on the raw phantom when it exists.
4. Peak RSS: of this process, and of each training run recorded in models/*/train_summary.json (target <= 4 GiB).

Nothing here is asserted by the tests (timing asserts in unit tests are flaky by nature).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
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

from dcseg.config import load_params  # noqa: E402
from dcseg.evaluation import settings_from_params as eval_settings  # noqa: E402
from dcseg.models import MODEL_NAMES, build_model  # noqa: E402
from dcseg.training import settings_from_params as train_settings  # noqa: E402

GIB = 1024 ** 3


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def bench_training(cfg, names, steps):
    print("\n## 1. Training step, s (forward + loss + backward; batch and crop of the profile)")
    print(f"{'model':<10}{'crop':>5}{'fp32':>8}{'bf16':>8}{'bf16+CL':>9}{'profile':>9}{'fp32/profile':>14}  target >= 3x")
    for name in names:
        s = train_settings(cfg, name)
        fp32 = step_seconds(name, s.width, s.crop, s.batch_size, steps, bf16=False, channels_last=False)
        bf16 = step_seconds(name, s.width, s.crop, s.batch_size, steps, bf16=True, channels_last=False)
        bf16_cl = step_seconds(name, s.width, s.crop, s.batch_size, steps, bf16=True, channels_last=True)
        profile = {("bf16", False): bf16, ("bf16", True): bf16_cl, ("fp32", False): fp32}.get(
            (s.precision, s.channels_last), fp32)
        ratio = fp32 / profile
        print(f"{name:<10}{s.crop:>5}{fp32:>8.2f}{bf16:>8.2f}{bf16_cl:>9.2f}{profile:>9.2f}{ratio:>13.2f}x  "
              f"{verdict(ratio >= 3)}", flush=True)


def bench_evaluation(cfg, names, repeats):
    print("\n## 2. Evaluation of one test case on 15 subsets (prediction + scoring), s")
    what, image, label, spacing, diagonal = load_volume((40, 48, 40), random=False)
    print(f"on {what}")
    print("shared-1: encoders once per window, the 15 subsets decoded one at a time (sharing alone, what the ideal "
          "models); shared-B: decoded in batches of the profile's subset_batch; bf16-15: bf16, all 15 in one batch")
    print(f"{'model':<10}{'patch':>6}{'4E':>7}{'D':>7}{'ideal':>7}{'indep':>8}{'shared-1':>9}{'ratio':>7}"
          f"{'of ideal':>9}  >=90%  {'shared-B':>9}{'ratio':>7}{'bf16-15':>8}{'vs indep':>9}  >=5x")
    for name in names:
        settings, _ = eval_settings(cfg, name)
        torch.manual_seed(0)
        model = build_model(name, profile=train_settings(cfg, name).width, crop_size=settings.patch).eval()
        encode, decode, _ = cost_split(model, settings.patch, False, repeats)
        ideal = 15 * (encode + decode) / (encode + 15 * decode)
        fp32 = dataclasses.replace(settings, precision="fp32", channels_last=False)
        independent = sum(timed_case(model, image, label, spacing, diagonal, dataclasses.replace(fp32, mode="independent")))
        shared_one = sum(timed_case(model, image, label, spacing, diagonal, dataclasses.replace(fp32, subset_batch=1)))
        shared = sum(timed_case(model, image, label, spacing, diagonal, fp32))
        batched = sum(timed_case(model, image, label, spacing, diagonal,
                                 dataclasses.replace(fp32, precision="bf16", subset_batch=15)))
        speedup = independent / shared_one
        print(f"{name:<10}{settings.patch:>6}{encode:>7.3f}{decode:>7.3f}{ideal:>6.2f}x{independent:>8.1f}"
              f"{shared_one:>9.1f}{speedup:>6.2f}x{speedup / ideal:>8.0%}  {verdict(speedup >= 0.9 * ideal):<6}"
              f"{shared:>9.1f}{independent / shared:>6.2f}x{batched:>8.1f}{independent / batched:>8.2f}x  "
              f"{verdict(independent / batched >= 5)}", flush=True)


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
    for summary in sorted(Path("models").glob("*/train_summary.json")):
        rss = json.loads(summary.read_text()).get("peak_rss_mib")
        if rss is not None:
            print(f"training {summary.parent.name:<22} {rss:8.0f} MiB  target <= 4096 MiB: {verdict(rss <= 4096)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the per-window cost split")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["training", "evaluation", "preprocessing"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_params()
    print(f"# dcseg-bench targets: profile {cfg.profile}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"numpy {np.__version__}")
    if "training" not in args.skip:
        bench_training(cfg, args.models, args.steps)
    if "evaluation" not in args.skip:
        bench_evaluation(cfg, args.models, args.repeats)
    if "preprocessing" not in args.skip:
        bench_preprocessing(cfg)
    report_memory()
    print(f"\npeak RSS of this process at the end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
