"""The prepared GPU check: the paper profile's three models, trained and evaluated by the project's own code on a
CUDA machine, with the figures a full paper-profile run needs (s/step, peak GPU memory, projected hours).

    python benchmarks/gpu_check.py [--steps 100] [--models dcseg rfnet mmformer] [--workdir DIR]
    python benchmarks/gpu_check.py --dry        # CPU, tiny sizes, 2 steps: the code path only (CI runs this)

1. Data: ``data/preprocessed`` of BraTS 2020 when this checkout has it (the real cases), else four synthetic cases
   of the BraTS 2020 size (240 x 240 x 155, 1 mm) with a brain-shaped box and a three-label tumour, written as
   NIfTI in the BraTS layout and preprocessed by ``dcseg.data.dataset.build_preprocessed``.
2. Per model: ``dcseg.training.train`` with the paper profile's settings (width, crop, batch, `network` options such
   as DC-Seg's official implementation, fp32 without TF32) for ``--steps`` steps; prints s/step (from the run's
   train_summary.json: the steps after the first), peak GPU memory, and the projected wall time of the profile's
   full schedule (s/step x steps).
3. Per model: one test case predicted on all 15 subsets with the profile's evaluation window and scored
   (``dcseg.evaluation.evaluate_model``); prints seconds and the all-four WT Dice (untrained: only a smoke check).
4. With two or more GPUs: ``torchrun --nproc_per_node 2 stages/train.py rfnet`` for a few steps (the DDP path).

Sized to finish in under 8 minutes on one modern GPU (100 steps of each model). Nothing here is asserted by the
tests, which run ``--dry``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BRATS_SHAPE = (240, 240, 155)  # BraTS 2020: 1 mm isotropic
DRY_SHAPE = (52, 52, 48)  # its brain fits one 48^3 window once cropped and padded to DRY_MIN_SIZE
DRY_MIN_SIZE = 48
DRY_BASE_CHANNELS = 4


def dry_sizes(model: str, network: dict) -> tuple[int, dict]:
    """The paper profile's code path at its smallest (``--dry``): the crop (official DC-Seg 48, the least its
    windowed SSIM takes; the others twice their downsampling) and the network options with 4 base channels."""
    from dcseg.registry import model_divisor

    crop = 48 if network.get("implementation") == "official" else 2 * model_divisor(model)
    return crop, {**network, "base_channels": DRY_BASE_CHANNELS}


def synthetic_case(shape, seed: int):
    """Four modalities and a seg in the BraTS label set (0, 1, 2, 4): an ellipsoid 'brain' with a nested tumour."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid ** 2).sum(0) < 0.7
    centre = rng.uniform(-0.25, 0.25, 3)[:, None, None, None]
    r = np.sqrt(((grid - centre) ** 2).sum(0))
    seg = np.zeros(shape, np.uint8)
    seg[brain & (r < 0.30)] = 2
    seg[brain & (r < 0.20)] = 4
    seg[brain & (r < 0.12)] = 1
    image = np.zeros((4,) + shape, np.float32)
    for k in range(4):
        tissue = 300 + 40 * k + 20 * rng.standard_normal(shape)
        image[k][brain] = tissue[brain] + 150 * (seg[brain] == (1, 2, 4, 2)[k])
    return image.round(), seg


def prepare_data(workdir: Path, shape, cases: int = 4) -> Path:
    """BraTS-layout NIfTI cases under ``workdir/raw``, preprocessed to ``workdir/data/preprocessed``."""
    import nibabel as nib

    from dcseg.data.brats import MODALITIES
    from dcseg.data.dataset import build_preprocessed
    from dcseg.data.splits import write_split

    ids = [f"BraTS20_Training_{i:03d}" for i in range(1, cases + 1)]
    for seed, case in enumerate(ids):
        image, seg = synthetic_case(shape, seed)
        folder = workdir / "raw" / case
        folder.mkdir(parents=True, exist_ok=True)
        for k, modality in enumerate(MODALITIES):
            nib.save(nib.Nifti1Image(image[k].astype(np.int16), np.eye(4)), str(folder / f"{case}_{modality}.nii.gz"))
        nib.save(nib.Nifti1Image(seg, np.eye(4)), str(folder / f"{case}_seg.nii.gz"))
    write_split(workdir / "split", {"train": ids[:-2], "val": ids[-2:-1], "test": ids[-1:]})
    out = workdir / "data" / "preprocessed"
    min_size = (128,) * 3 if shape == BRATS_SHAPE else (DRY_MIN_SIZE,) * 3  # the largest crop of the run
    build_preprocessed(workdir / "raw", workdir / "split", out, min_size=min_size, progress=False)
    return out


def paper_settings(model: str, steps: int, dry: bool):
    """The paper profile's training and evaluation settings of ``model``, run for ``steps`` steps (dry: the CPU
    width at ``dry_sizes``, batch 2 (the official L_ana needs two subjects), on the CPU)."""
    import dataclasses

    from dcseg.evaluation import evaluation_settings
    from dcseg.runs import load_run_params
    from dcseg.training import train_settings

    cfg = load_run_params(["profile=paper"])
    full = train_settings(cfg, model)
    inference, et_min_volume, device, _ = evaluation_settings(cfg, model, warn=False)
    changes = {"steps": steps, "checkpoint_every": 10 ** 9, "log_every": 1}
    if dry:
        crop, network = dry_sizes(model, full.network)
        # the validation scoring during training slides the evaluation's window: the dry crop (mmFormer's token grid
        # is fixed by it)
        changes.update(width="cpu", crop=crop, network=network, batch_size=2, device="cpu", eval_patch=crop)
        inference = dataclasses.replace(inference, patch=crop)
    return full, dataclasses.replace(full, **changes), inference, et_min_volume


def check_model(model: str, preprocessed: Path, workdir: Path, steps: int, dry: bool) -> dict:
    import torch

    from dcseg.data.splits import read_split
    from dcseg.evaluation import evaluate_model
    from dcseg.checkpoint import load_model
    from dcseg.subsets import SUBSETS

    full, settings, inference, et_min_volume = paper_settings(model, steps, dry)
    cuda = torch.cuda.is_available() and not dry
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    from dcseg.training import train
    start = time.perf_counter()
    summary = train(settings, preprocessed, workdir / "models" / model, workdir / "checkpoints" / model / "last.pt",
                    progress=False)
    train_s = time.perf_counter() - start
    peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan")
    net, _ = load_model(workdir / "models" / model / "model.pt")
    device = torch.device("cuda" if cuda else "cpu")
    net = net.to(device)
    case = read_split(preprocessed / "split")["test"][:1]
    start = time.perf_counter()
    rows = evaluate_model(net, preprocessed, case, inference, et_min_volume, device=device, progress=False)
    evaluate_s = time.perf_counter() - start
    every = max(SUBSETS, key=lambda subset: sum(subset.mask)).name  # all four modalities
    all_four = rows[(rows.subset == every) & (rows.region == "WT")].dice.iloc[0]
    s_per_step = summary["seconds_per_step"]
    return {"model": model, "s_per_step": s_per_step, "peak_gpu_gib": peak_gib, "train_s": train_s,
            "full_steps": full.steps, "projected_h": s_per_step * full.steps / 3600, "evaluate_s": evaluate_s,
            "wt_all_four": float(all_four), "batch": settings.batch_size, "crop": settings.crop,
            "window": inference.patch, "network": dict(settings.network)}


def check_ddp(preprocessed: Path, workdir: Path) -> str:
    """A few RFNet steps under torchrun on two GPUs, through the train stage itself."""
    stage_dir = workdir / "ddp"
    shutil.copytree(ROOT / "stages", stage_dir / "stages")
    shutil.copy(ROOT / "params.yaml", stage_dir / "params.yaml")
    (stage_dir / "data").mkdir(exist_ok=True)
    os.symlink(preprocessed.resolve(), stage_dir / "data" / "preprocessed")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "stages/train.py", "rfnet",
               "profile=paper", "train.steps=20", "train.log_every=5"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(command, cwd=stage_dir, env=env, capture_output=True, text=True)
    if p.returncode:
        return f"FAILED (exit {p.returncode}): {(p.stderr.strip().splitlines() or [''])[-1]}"
    summary = json.loads((stage_dir / "logs" / "rfnet" / "train_summary.json").read_text())
    return f"2 GPUs, batch 2 split 1 + 1: {summary['seconds_per_step']} s/step over {summary['steps']} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["dcseg", "rfnet", "mmformer"])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed at the end")
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes, 2 steps")
    args = parser.parse_args()
    import torch

    from dcseg.hardware import cpu_kind
    if not args.dry and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run with --dry to check the code path on the CPU")
    steps = 2 if args.dry else args.steps
    where = "CPU (dry)" if args.dry else f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
    print(f"gpu_check on {where}, CPU {cpu_kind()}, torch {torch.__version__}, {steps} steps per model")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        real = ROOT / "data" / "preprocessed"
        manifest = real / "manifest.csv"
        if not args.dry and manifest.is_file() and "BraTS20" in manifest.read_text()[:2000]:
            preprocessed, data = real, "the BraTS 2020 cases in data/preprocessed"
        else:
            start = time.perf_counter()
            preprocessed = prepare_data(workdir, DRY_SHAPE if args.dry else BRATS_SHAPE)
            data = f"4 synthetic cases, built in {time.perf_counter() - start:.0f} s"
        print(f"data: {data}")
        print(f"{'model':<10}{'batch':>6}{'crop':>6}{'s/step':>8}{'GPU GiB':>9}{'full steps':>11}{'projected':>10}"
              f"{'window':>7}{'eval s':>8}  notes")
        for name in args.models:
            r = check_model(name, preprocessed, workdir, steps, args.dry)
            notes = ", ".join(f"{k}={v}" for k, v in r["network"].items()) or "-"
            print(f"{name:<10}{r['batch']:>6}{r['crop']:>6}{r['s_per_step']:>8.3f}{r['peak_gpu_gib']:>9.1f}"
                  f"{r['full_steps']:>11,}{r['projected_h']:>9.1f}h{r['window']:>7}{r['evaluate_s']:>8.1f}  {notes}; "
                  f"untrained all-four WT {r['wt_all_four']:.3f}", flush=True)
        if not args.dry and torch.cuda.device_count() >= 2:
            print(f"torchrun: {check_ddp(preprocessed, workdir)}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
