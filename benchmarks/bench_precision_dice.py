"""Does bf16 autocast keep Dice? Train one model at the CPU profile in fp32 and compare its test Dice with the
profile's bf16 run, measured in one run of this script.

    python benchmarks/bench_precision_dice.py [--model rfnet] [--steps N] [--reuse]

Trains ``--model`` with the profile's settings twice, differing only in ``precision`` (fp32 and the profile's
bf16), evaluates both on the test split x 15 subsets with the profile's evaluation settings, and prints the
15-subset average Dice per region, the difference in points and the seconds per step. ``--reuse`` takes the bf16
run from the pipeline's ``models/MODEL`` (and ``metrics/MODEL.json``) when its settings equal the ones asked for,
instead of training it again. Target (issue 6): |Dice(bf16) - Dice(fp32)| <= 1 point for every region.
Outputs go to a temporary folder; nothing in the repository changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.checkpoint import load_model  # noqa: E402
from dcseg.config import load_params  # noqa: E402
from dcseg.data.splits import read_split  # noqa: E402
from dcseg.evaluation import evaluation_settings, run_evaluation  # noqa: E402
from dcseg.metrics import REGIONS  # noqa: E402
from dcseg.training import train, train_settings  # noqa: E402
from dcseg.runs import PREPROCESSED, Run  # noqa: E402



def train_and_evaluate(settings, cfg, out: Path) -> tuple[dict, dict]:
    summary = train(settings, PREPROCESSED, out / "model", out / "ckpt.pt", progress=True)
    model, _ = load_model(out / "model" / "model.pt")
    inference, et_min, device, hardware = evaluation_settings(cfg, settings.model)
    cases = read_split(PREPROCESSED / "split")["test"]
    metrics = run_evaluation(model.to(device), PREPROCESSED, cases, inference, et_min, out / "cases.csv",
                             out / "metrics.json", device, hardware=hardware)
    return summary, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="rfnet")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the profile's)")
    parser.add_argument("--reuse", action="store_true", help="reuse the pipeline's bf16 run when it matches")
    args = parser.parse_args()
    cfg = load_params()
    bf16 = train_settings(cfg, args.model)
    if args.steps:
        bf16 = dataclasses.replace(bf16, steps=args.steps)
    bf16 = dataclasses.replace(bf16, precision="bf16")
    fp32 = dataclasses.replace(bf16, precision="fp32")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Run(args.model).train_summary
        if args.reuse and pipeline.is_file() and json.loads(pipeline.read_text())["settings"] == bf16.identity():
            results["bf16"] = (json.loads(pipeline.read_text()),
                               json.loads(Run(args.model).metrics_json.read_text()))
            print(f"bf16: reusing the pipeline's run ({pipeline})")
        else:
            results["bf16"] = train_and_evaluate(bf16, cfg, Path(tmp) / "bf16")
        results["fp32"] = train_and_evaluate(fp32, cfg, Path(tmp) / "fp32")

    column = "dice_post"
    print(f"\n{args.model}, {bf16.steps} steps, crop {bf16.crop}^3, batch {bf16.batch_size}; 15-subset average "
          f"Dice (%), ET post-processed")
    print(f"{'precision':<10}{'s/step':>8}" + "".join(f"{r:>8}" for r in REGIONS))
    for name, (summary, metrics) in results.items():
        print(f"{name:<10}{summary['seconds_per_step']:>8.3f}"
              + "".join(f"{100 * metrics['average'][column][r]:>8.2f}" for r in REGIONS))
    diff = {r: 100 * (results["bf16"][1]["average"][column][r] - results["fp32"][1]["average"][column][r])
            for r in REGIONS}
    print(f"{'bf16-fp32':<18}" + "".join(f"{diff[r]:>+8.2f}" for r in REGIONS))
    worst = max(abs(v) for v in diff.values())
    print(f"target |bf16 - fp32| <= 1 point: {'met' if worst <= 1 else 'MISSED'} (largest {worst:.2f} points); "
          f"speed-up fp32/bf16 {results['fp32'][0]['seconds_per_step'] / results['bf16'][0]['seconds_per_step']:.2f}x")


if __name__ == "__main__":
    main()
