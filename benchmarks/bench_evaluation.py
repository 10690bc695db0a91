"""Seconds to evaluate one case on all 15 modality subsets: shared encoder features vs 15 independent passes.

    python benchmarks/bench_evaluation.py [--models dcseg rfnet mmformer] [--patch 64] [--overlap 0.5]
                                          [--shape 76 92 78 --random] [--threads N] [--channels-last]

Per model (``build_model(name, width="cpu")``, untrained weights: timing only), on the first test case of
data/preprocessed when it exists, else a random phantom-sized volume with a synthetic label:

- cost split of one window: E4 = ``model.encode`` (all 4 modality encoders), D = ``model.decode`` for one subset,
  D15 = one batched decode of all 15 subsets;
- ideal speed-up of sharing the encoders = 15 (E4 + D) / (E4 + 15 D) (what is left when the encoders run once),
  and 15 (E4 + D) / (E4 + D15) with the batched decode (batching the 15 decodes is itself faster than 15 single ones);
- measured: prediction seconds (fp32 shared, fp32 independent, bf16 shared), scoring seconds (Dice, Dice with ET
  post-processing, HD95 for 15 subsets x 3 regions), and the ratios independent / shared and fp32 independent /
  bf16 shared, both on prediction + scoring (= one case of the evaluate stage).

Everything is measured in this one run; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.evaluation import case_geometry, manifest_by_case, score_case  # noqa: E402
from dcseg.inference import InferenceSettings, predict_labels, window_starts  # noqa: E402
from dcseg.metrics import image_diagonal_mm, mm3_to_voxels  # noqa: E402
from dcseg.models import MODEL_NAMES  # noqa: E402
from dcseg.registry import build_model  # noqa: E402
from dcseg.tasks import BRATS  # noqa: E402
from dcseg.runs import PREPROCESSED  # noqa: E402

ET_MIN_VOLUME_MM3 = 500


def load_volume(shape, random: bool) -> tuple[str, np.ndarray, np.ndarray, tuple, float]:
    """(description, image [4, X, Y, Z], label, spacing, empty-mask HD95 distance)."""
    test_split = PREPROCESSED / "split" / "test.txt"
    if not random and test_split.is_file() and test_split.read_text().split():
        from dcseg.data.preprocess import load_case
        case = test_split.read_text().split()[0]
        image, label = load_case(PREPROCESSED, case, mmap=False)
        spacing, diagonal = case_geometry(manifest_by_case(PREPROCESSED), case)
        return f"preprocessed case {case}", image, label, spacing, diagonal
    rng = np.random.default_rng(0)
    image = rng.standard_normal((4, *shape)).astype(np.float32)
    grid = np.stack(np.meshgrid(*[np.arange(s) - s / 2 for s in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    label = np.select([radius < 6, radius < 10, radius < 16], [1, 3, 2], 0).astype(np.uint8)  # NCR, ET rim, edema
    spacing = (1.0, 1.0, 1.0)
    return f"random volume {tuple(shape)}", image, label, spacing, image_diagonal_mm(shape, spacing)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitives)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost_split(model, patch: int, channels_last: bool, repeats: int) -> tuple[float, float, float]:
    """Seconds of (encode, decode of one subset, batched decode of 15 subsets) on one window, fp32."""
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    window = torch.randn(1, 4, patch, patch, patch).contiguous(memory_format=memory_format)
    masks = torch.tensor(BRATS.masks)
    with torch.inference_mode():
        features = model.encode(window)
        encode = median_seconds(lambda: model.encode(window), repeats)
        decode = median_seconds(lambda: model.decode(features, masks[-1:]), repeats)
        decode15 = median_seconds(
            lambda: model.decode([f.expand(len(masks), *f.shape[1:]) for f in features], masks), repeats)
    return encode, decode, decode15


def timed_case(model, image, label, spacing, diagonal, settings) -> tuple[float, float]:
    """(prediction seconds, scoring seconds) of one case, all 15 subsets."""
    start = time.perf_counter()
    predictions = predict_labels(model, image, settings, BRATS.masks).numpy()
    predicted = time.perf_counter()
    score_case("bench", predictions, label, spacing, diagonal, mm3_to_voxels(ET_MIN_VOLUME_MM3, spacing))
    return predicted - start, time.perf_counter() - predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--shape", type=int, nargs=3, default=(76, 92, 78),
                        help="random volume size (used with --random or when data/preprocessed has no test case)")
    parser.add_argument("--random", action="store_true", help="a random volume even if data/preprocessed exists")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the per-window cost split")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    what, image, label, spacing, diagonal = load_volume(args.shape, args.random)
    settings = InferenceSettings(patch=args.patch, overlap=args.overlap, channels_last=args.channels_last)
    windows = np.prod([len(window_starts(max(s, args.patch), args.patch, settings.stride))
                       for s in image.shape[1:]])
    print(f"{what}, patch {args.patch}, overlap {args.overlap} -> {windows} windows; profile cpu, untrained; "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, channels_last={args.channels_last}")
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, width="cpu", crop_size=args.patch).eval()
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        encode, decode, decode15 = cost_split(model, args.patch, args.channels_last, args.repeats)
        ideal = 15 * (encode + decode) / (encode + 15 * decode)
        runs = {
            "fp32 shared": settings,
            "fp32 independent": dataclasses.replace(settings, mode="independent"),
            "bf16 shared": dataclasses.replace(settings, precision="bf16"),
        }
        seconds = {}
        for label_, run_settings in runs.items():
            seconds[label_] = timed_case(model, image, label, spacing, diagonal, run_settings)
            print(f"  {name} {label_:<17} predict {seconds[label_][0]:8.1f} s  score {seconds[label_][1]:6.1f} s",
                  flush=True)
        total = {k: sum(v) for k, v in seconds.items()}
        print(f"{name}: per window E4 {encode:.2f} s, D {decode:.2f} s, D15 {decode15:.2f} s "
              f"(batched decode {15 * decode / decode15:.2f}x faster than 15 single ones)\n"
              f"{name}: case on 15 subsets: shared {total['fp32 shared']:.1f} s, independent "
              f"{total['fp32 independent']:.1f} s -> speed-up {total['fp32 independent'] / total['fp32 shared']:.2f}x "
              f"(prediction only {seconds['fp32 independent'][0] / seconds['fp32 shared'][0]:.2f}x; "
              f"ideal 15(E4+D)/(E4+15D) = {ideal:.2f}x, with the batched decode 15(E4+D)/(E4+D15) = "
              f"{15 * (encode + decode) / (encode + decode15):.2f}x); bf16 shared {total['bf16 shared']:.1f} s -> fp32 "
              f"independent / bf16 shared = {total['fp32 independent'] / total['bf16 shared']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
