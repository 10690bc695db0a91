"""Evaluation of a trained model on the test split: every case x the task's modality subsets x its regions
(``dcseg.tasks``: BraTS 15 subsets x WT, TC, ET; WMH 3 subsets x WMH).

BraTS, per (case, subset, region): Dice, Dice after the ET post-processing (``dice_post``; only ET can differ) and
HD95 of the unprocessed prediction. WMH: the challenge's five metrics (``dcseg.wmh_metrics``: Dice, HD95, AVD, lesion
recall, lesion F1; label 2 masked out). Both on the preprocessed (cropped) grid, in mm from the manifest's spacing.
Results: ``metrics/<model>_cases.csv`` (one row per case, subset and region) and ``metrics/<model>.json``: per subset
the mean over cases, and their mean over the subsets (the numbers of the paper's Tables 1 and 3).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from dcseg import validate
from dcseg.checkpoint import data_fingerprint, load_model
from dcseg.io import write_text_atomic
from dcseg.config import ConfigError, require
from dcseg.data.errors import DataError
from dcseg.data.manifest import read_manifest
from dcseg.data.preprocess import load_case
from dcseg.hardware import DEVICES, PRECISIONS, Hardware, memory_format, resolve
from dcseg.inference import WEIGHTINGS, InferenceSettings, check_patch, predict_labels
from dcseg.metrics import (CASE_COLUMNS, REGIONS, dice, hd95, image_diagonal_mm, mm3_to_voxels,
                           remove_small_et)
from dcseg.subsets import SUBSETS, Subset
from dcseg.tasks import BRATS, Task, task_of
from dcseg.wmh_metrics import WMH_METRICS, wmh_scores

AXES = "xyz"
MANIFEST_COLUMNS = ("case",) + tuple(f"spacing_{a}" for a in AXES) + tuple(f"orig_{a}" for a in AXES)


def evaluation_settings(cfg: DictConfig, model_name: str, warn: bool = True
                         ) -> tuple[InferenceSettings, float, torch.device, Hardware]:
    """Inference settings, the ET post-processing volume (mm^3), the device and what the ``auto`` settings resolved
    to (dcseg.hardware), for the selected profile; a bad value fails with its key."""
    profile = require(cfg, "profile")
    section = f"profiles.{profile}.evaluate"
    require(cfg, section)  # names the profile when it has no evaluate section
    patch_key = f"profiles.{profile}.models.{model_name}.eval_patch"
    precision = validate.choice(f"{section}.precision", require(cfg, f"{section}.precision"), PRECISIONS)
    # Optional: they change speed and memory, not the metrics (beyond float rounding).
    device_spec = OmegaConf.select(cfg, f"{section}.device", default="auto")
    validate.choice(f"{section}.device", device_spec, DEVICES)
    channels_last = OmegaConf.select(cfg, f"{section}.channels_last", default="auto")
    try:
        device, hardware = resolve(device_spec, precision, channels_last, warn=warn)
    except ValueError as e:
        raise ConfigError(f"{section}: {e}") from e
    values = {
        "patch": require(cfg, patch_key),
        "overlap": require(cfg, f"{section}.overlap"),
        "weighting": validate.choice(f"{section}.weighting", require(cfg, f"{section}.weighting"), WEIGHTINGS),
        "precision": hardware.precision,
        "channels_last": hardware.channels_last,
        "subset_batch": OmegaConf.select(cfg, f"{section}.subset_batch", default=len(SUBSETS)),
    }
    try:
        settings = InferenceSettings(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section} / {patch_key}: {e}") from e
    et_key = f"{section}.et_min_volume_mm3"
    et_min_volume = require(cfg, et_key)
    if not isinstance(et_min_volume, (int, float)) or et_min_volume < 0:
        raise ConfigError(f"params key {et_key!r} must be a volume >= 0 in mm^3, got {et_min_volume!r}")
    return settings, float(et_min_volume), device, hardware


def load_trained_model(path: str | Path, identity: dict, preprocessed_dir: str | Path, settings: InferenceSettings,
                       device: torch.device, patch_key: str) -> tuple[nn.Module, dict]:
    """The one loader of a trained model for evaluation (the evaluate stage and the report's example figure): the
    file must belong to the run (``identity``, dcseg.runs.Run.identity) and to the preprocessed data, take the
    evaluation window (``patch_key`` names its param), and ends up on ``device`` in the settings' memory format."""
    model, meta = load_model(path, expected={**identity, "data_hash": data_fingerprint(preprocessed_dir)})
    try:
        check_patch(model, settings.patch)
    except ValueError as e:
        raise ConfigError(f"{patch_key}: {e}") from e
    return model.to(device=device, memory_format=memory_format(settings.channels_last)), meta


def manifest_by_case(preprocessed_dir: str | Path) -> pd.DataFrame:
    """The preprocessed manifest indexed by case, checked for the columns the evaluation needs."""
    return read_manifest(preprocessed_dir, MANIFEST_COLUMNS).set_index("case")


def case_geometry(manifest: pd.DataFrame, case: str) -> tuple[tuple[float, ...], float]:
    """(voxel spacing in mm, diagonal in mm of the original image grid) of a case."""
    if case not in manifest.index:
        raise DataError(f"case {case} is in the test split but not in manifest.csv; rerun the preprocess stage")
    row = manifest.loc[case]
    spacing = tuple(float(row[f"spacing_{a}"]) for a in AXES)
    if not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise DataError(f"case {case}: manifest.csv spacing {spacing} is not positive")
    return spacing, image_diagonal_mm([int(row[f"orig_{a}"]) for a in AXES], spacing)


def score_case(case: str, predictions: np.ndarray, label: np.ndarray, spacing, empty_distance: float,
               et_min_voxels: float, subsets: tuple[Subset, ...] = SUBSETS) -> list[dict]:
    """Rows (``CASE_COLUMNS``) for one case: ``predictions [S, X, Y, Z]`` label maps, one per subset."""
    truth = BRATS.region_masks(label)
    rows = []
    for subset, prediction in zip(subsets, predictions, strict=True):
        raw = BRATS.region_masks(prediction)
        post = BRATS.region_masks(remove_small_et(prediction, et_min_voxels))
        for region in REGIONS:
            rows.append({
                "case": case, "subset": subset.name, "region": region,
                "dice": dice(raw[region], truth[region]),
                "dice_post": dice(post[region], truth[region]),
                "hd95": hd95(raw[region], truth[region], spacing, empty_distance),
            })
    return rows


def evaluate_model(model: nn.Module, preprocessed_dir: str | Path, cases: list[str], settings: InferenceSettings,
                   et_min_volume_mm3: float, device: str | torch.device = "cpu", progress: bool = True
                   ) -> pd.DataFrame:
    """Predict every case for the task's subsets and score it; one row per (case, subset, region)."""
    manifest = manifest_by_case(preprocessed_dir)
    task = task_of(preprocessed_dir)
    rows = []
    bar = tqdm(cases, desc="evaluate", unit="case", disable=not progress)
    for case in bar:
        spacing, diagonal = case_geometry(manifest, case)
        image, label = load_case(preprocessed_dir, case)
        predictions = predict_labels(model, np.array(image), settings, task.masks, device).numpy()
        if task is BRATS:
            rows += score_case(case, predictions, np.asarray(label), spacing, diagonal,
                               mm3_to_voxels(et_min_volume_mm3, spacing))
        else:
            rows += score_wmh_case(case, predictions, np.asarray(label), spacing, diagonal, task)
        done = pd.DataFrame(rows)
        bar.set_postfix({f"dice_{r}": f"{done.loc[done.region == r, 'dice'].mean():.3f}" for r in task.regions})
    return pd.DataFrame(rows, columns=list(case_columns(task)))


def case_columns(task: Task) -> tuple[str, ...]:
    """The columns of metrics/<run>_cases.csv for a task."""
    return CASE_COLUMNS if task is BRATS else ("case", "subset", "region") + WMH_METRICS


def score_wmh_case(case: str, predictions: np.ndarray, label: np.ndarray, spacing, empty_distance: float,
                   task: Task) -> list[dict]:
    """Rows of one WMH case: per subset, the challenge's five metrics (label 2 of ``label`` masked out; an empty mask
    against a non-empty one has the original image's diagonal as HD95, as for BraTS)."""
    affine = np.diag([*map(float, spacing), 1.0])  # distances need the voxel size only
    rows = []
    for subset, prediction in zip(task.subsets, predictions, strict=True):
        for region, classes in task.regions.items():
            scores = wmh_scores(label, np.isin(prediction, classes).astype(np.uint8), affine, empty_distance)
            rows.append({"case": case, "subset": subset.name, "region": region, **scores})
    return rows


def summarise(case_metrics: pd.DataFrame, task: Task = BRATS) -> dict:
    """Per-subset means over cases (NaN values left out: an undefined WMH AVD), and the mean of those over the
    subsets, of every metric and region."""
    if case_metrics.empty:
        raise ValueError("no case metrics to summarise")
    metrics = [c for c in case_columns(task) if c not in ("case", "subset", "region")]
    regions = list(task.regions)
    means = case_metrics.groupby(["subset", "region"])[metrics].mean()
    names = [s.name for s in task.subsets if s.name in means.index.get_level_values("subset")]
    per_subset = {name: {m: {r: float(means.loc[(name, r), m]) for r in regions} for m in metrics}
                  for name in names}
    average = {m: {r: float(np.mean([per_subset[n][m][r] for n in names])) for r in regions} for m in metrics}
    summary = {"average": average, "subsets": per_subset, "n_cases": int(case_metrics["case"].nunique())}
    return summary


def write_results(case_metrics: pd.DataFrame, summary: dict, cases_csv: str | Path, summary_json: str | Path) -> None:
    """Write the per-case CSV and the summary JSON, each through a temp file + rename."""
    write_text_atomic(Path(cases_csv), case_metrics.to_csv(index=False, float_format="%.6f"))
    write_text_atomic(Path(summary_json), json.dumps(summary, indent=2) + "\n")


def run_evaluation(model: nn.Module, preprocessed_dir: str | Path, cases: list[str], settings: InferenceSettings,
                   et_min_volume_mm3: float, cases_csv: str | Path, summary_json: str | Path,
                   device: str | torch.device = "cpu", progress: bool = True, hardware: Hardware | None = None
                   ) -> dict:
    """Evaluate, write both outputs, return the summary. ``hardware``: recorded in the summary, so a reader knows
    what produced the numbers."""
    if not cases:
        raise DataError(f"the test split of {preprocessed_dir} is empty; nothing to evaluate")
    start = time.perf_counter()
    case_metrics = evaluate_model(model, preprocessed_dir, cases, settings, et_min_volume_mm3, device, progress)
    # the written summary holds results only, so two runs with the same inputs give byte-identical metrics files
    # (and `dvc metrics diff` shows only real changes); the wall time is returned and printed instead
    summary = summarise(case_metrics, task_of(preprocessed_dir))
    if hardware is not None:  # the thread count is left out: it follows the machine's load, not the settings
        summary["hardware"] = {k: v for k, v in hardware.record().items() if k != "threads"}
    write_results(case_metrics, summary, cases_csv, summary_json)
    return {**summary, "seconds": round(time.perf_counter() - start, 1)}


def format_summary(summary: dict) -> str:
    """A small text table: per subset and on average, Dice / Dice (ET post-processed) / HD95 per region."""
    metrics = list(summary["average"])
    regions = list(summary["average"][metrics[0]])
    header = f"{'subset':<22}" + "".join(f"{m + ' ' + r:>14}" for m in metrics for r in regions)
    lines = [header]
    for name, values in list(summary["subsets"].items()) + [("average", summary["average"])]:
        lines.append(f"{name:<22}" + "".join(f"{values[m][r]:>14.4f}" for m in metrics for r in regions))
    return "\n".join(lines)
