"""Forward + backward seconds per training step of every model, fp32 vs bf16 autocast.

    python benchmarks/bench_models.py [--width cpu] [--crop 64] [--batch 2] [--steps 3] [--channels-last]
                                      [--threads N] [--models dcseg rfnet mmformer]

One step = train-mode forward with a random per-sample modality mask, ``dcseg.losses.total_loss`` (all terms the
model has), backward. No optimiser step. The first step of every configuration is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from dcseg.losses import total_loss
from dcseg.models import MODEL_NAMES, count_parameters
from dcseg.registry import build_model


def step_seconds(name: str, width: str, crop: int, batch: int, steps: int, bf16: bool, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = build_model(name, width=width, crop_size=crop).train()
    m = model.config.num_modalities
    x = torch.randn(batch, m, crop, crop, crop)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, model.config.num_classes, (batch, crop, crop, crop))
    times = []
    for i in range(steps + 1):
        mask = torch.rand(batch, m) < 0.5
        mask[torch.arange(batch), torch.randint(0, m, (batch,))] = True  # never empty
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = total_loss(model(x, mask), labels, x)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", default="cpu", help="network widths (dcseg.registry.WIDTHS)")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"width {args.width}, crop {args.crop}^3, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, channels_last={args.channels_last}")
    print(f"{'model':<10}{'params':>12}{'fp32 s/step':>14}{'bf16 s/step':>14}")
    for name in args.models:
        params = count_parameters(build_model(name, width=args.width, crop_size=args.crop))
        fp32, bf16 = (step_seconds(name, args.width, args.crop, args.batch, args.steps, b, args.channels_last)
                      for b in (False, True))
        print(f"{name:<10}{params:>12,}{fp32:>14.2f}{bf16:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
