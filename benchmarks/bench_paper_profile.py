"""Paper-profile smoke benchmark on the CPU: can each model, at the paper's widths and crops, train one step and
slide one evaluation window here, how long does it take and how much memory does it need?

    python benchmarks/bench_paper_profile.py [--models dcseg rfnet mmformer] [--limit-gib 20] [--threads N]

Per model, from params.yaml's paper profile (width, crop, `network` options such as DC-Seg's implementation,
evaluation window, subset batch; fp32 as the profile says):

1. one training step at batch 1 (train-mode forward with a random non-empty modality mask, every loss term the
   model has, backward, an Adam step);
2. one evaluation window: ``dcseg.inference.predict_probabilities`` on a volume of one window, all 15 subsets (the
   four encoders once, the subsets decoded from the shared features in chunks of the profile's subset batch).

Each runs in a subprocess with its address space limited to ``--limit-gib`` (RLIMIT_AS), so a model that does not
fit fails alone instead of taking the machine down. A failed run is retried at half the crop (and window), and the
memory the full size would need is extrapolated from it: model and optimiser state, plus the activations scaled by
the voxel ratio. Prints seconds and peak RSS (or the limit hit and the estimate), naming the CPU. Nothing here is
asserted by the tests; ``--dry`` runs tiny sizes (the CI check that the code path works).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's dcseg, also in the child processes
sys.path.insert(1, str(ROOT / "benchmarks"))  # gpu_check's reading of the paper profile

GIB = 2 ** 30


def _settings(model: str, dry: bool) -> dict:
    """The paper profile's settings of ``model`` that the smoke runs use (gpu_check's reading of the profile, and its
    dry sizes)."""
    from gpu_check import paper_settings

    _, train, inference, _ = paper_settings(model, steps=1, dry=dry)
    return {"model": model, "width": train.width, "network": dict(train.network), "crop": train.crop,
            "window": inference.patch, "subset_batch": inference.subset_batch, "lr": train.lr,
            "weight_decay": train.weight_decay}


def child(spec: dict, limit_bytes: int) -> dict:
    """One training step and one evaluation window (run in a subprocess under the memory limit)."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    import torch

    from dcseg.losses import total_loss
    from dcseg.models import count_parameters
    from dcseg.registry import build_model
    from dcseg.inference import InferenceSettings, predict_probabilities
    from dcseg.tasks import BRATS

    torch.manual_seed(0)
    options = dict(spec["network"])
    if spec["model"] == "mmformer":
        options["crop_size"] = spec["crop"]
    model = build_model(spec["model"], width=spec["width"], **options)
    m, k, crop = model.config.num_modalities, model.config.num_classes, spec["crop"]
    optimiser = torch.optim.Adam(model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"], amsgrad=True)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x = torch.randn(1, m, crop, crop, crop)
    labels = torch.randint(0, k, (1, crop, crop, crop))
    mask = torch.tensor([[True, False, True, True]])
    start = time.perf_counter()
    model.train()
    loss, _ = total_loss(model(x, mask), labels, x)
    loss.backward()
    optimiser.step()
    train_s = time.perf_counter() - start
    train_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del x, labels, loss
    optimiser.zero_grad(set_to_none=True)
    model.eval()
    # a volume of exactly one window: dcseg.inference's own path (shared features, subsets in chunks)
    image = torch.randn(m, spec["window"], spec["window"], spec["window"])
    settings = InferenceSettings(patch=spec["window"], subset_batch=spec["subset_batch"])
    start = time.perf_counter()
    with torch.no_grad():
        predict_probabilities(model, image, settings, BRATS.masks)
    window_s = time.perf_counter() - start
    return {"parameters": count_parameters(model), "train_s": train_s, "window_s": window_s,
            "base_rss": base_rss, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "train_rss": train_rss}


def run_child(spec: dict, limit_gib: float, threads: int | None) -> dict:
    """``child(spec)`` in a fresh interpreter; {"error": ...} when it fails (the memory limit, most likely)."""
    argv = [sys.executable, __file__, "--child", json.dumps(spec), "--limit-gib", str(limit_gib)]
    if threads:
        argv += ["--threads", str(threads)]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        return {"error": last[:160]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def estimate_bytes(small: dict, scale: float) -> float:
    """Peak memory at full size from a run at a smaller crop: the fixed part (interpreter, weights, optimiser) plus
    the activations scaled by the voxel ratio ``scale``."""
    return small["base_rss"] + (small["peak_rss"] - small["base_rss"]) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["dcseg", "rfnet", "mmformer"])
    parser.add_argument("--limit-gib", type=float, default=20.0, help="address-space limit of each run (GiB)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dry", action="store_true", help="tiny sizes: check the code path only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        print(json.dumps(child(json.loads(args.child), int(args.limit_gib * GIB))))
        return

    from dcseg.hardware import cpu_kind
    print(f"paper profile, fp32, batch 1, on {cpu_kind()}; each run limited to {args.limit_gib:g} GiB"
          + (" (dry: tiny sizes)" if args.dry else ""))
    print(f"{'model':<10}{'params':>12}{'crop':>6}{'train s':>9}{'window':>8}{'window s':>10}{'peak RSS':>10}  note")
    for name in args.models:
        spec = _settings(name, args.dry)
        result = run_child(spec, args.limit_gib, args.threads)
        note = ", ".join(f"{k}={v}" for k, v in spec["network"].items())
        if "error" in result:
            from dcseg.registry import model_divisor
            divisor = model_divisor(name)
            half = dict(spec, crop=max(divisor, spec["crop"] // 2 // divisor * divisor),
                        window=max(divisor, spec["window"] // 2 // divisor * divisor))
            small = run_child(half, args.limit_gib, args.threads)
            if "error" in small:
                print(f"{name:<10}{'-':>12}{spec['crop']:>6}  failed at full and half size: {result['error']}")
                continue
            need = estimate_bytes(small, (spec["crop"] / half["crop"]) ** 3) / GIB
            print(f"{name:<10}{small['parameters']:>12,}{spec['crop']:>6}{'-':>9}{spec['window']:>8}{'-':>10}"
                  f"{'> limit':>10}  needs about {need:.0f} GiB (from {half['crop']}^3: {small['peak_rss'] / GIB:.1f} "
                  f"GiB); {result['error']}")
            continue
        print(f"{name:<10}{result['parameters']:>12,}{spec['crop']:>6}{result['train_s']:>9.1f}{spec['window']:>8}"
              f"{result['window_s']:>10.1f}{result['peak_rss'] / GIB:>9.1f}G  {note}")


if __name__ == "__main__":
    main()
