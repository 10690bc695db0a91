"""Convergence: the validation split scored during training, and the rule that says whether a run was still improving.

Every ``every`` steps (and after the last) the trainer scores the validation split on a few modality subsets, with
the evaluation's sliding window (the model entry's ``eval_patch``, ``overlap``, uniform weighting) and the
unprocessed Dice of the three BraTS regions. The scoring never touches the training's random stream: the sampler
is a pure function of (seed, step), and the torch generator (dropout) is saved before and restored after, so the
weights after N steps are bitwise those of a run that never scores (tests/test_training.py). The evaluation, as in
the references, uses the last weights, not the best; the best is reported beside the last.

The rule (``trend``), applied to the mean Dice over the regions and the subsets: a least-squares line through
the validation points of the final ``TAIL`` of training; the run was **still rising** when that line gains more
than ``RISE`` Dice over the tail, **plateaued** otherwise, and **undetermined** with fewer than three points there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcseg import validate
from dcseg.subsets import SUBSETS, WMH_SUBSETS

TAIL = 0.3   # the share of the training steps the rule looks at: the final 30 %
RISE = 0.01  # Dice gained over the tail (by the fitted line) above which a run counts as still rising
TRENDS = ("still rising", "plateaued", "undetermined")
MEAN = "mean"  # the mean over regions and subsets: the curve the rule reads and the figure draws


def _subsets(key: str, value):
    # the names of every task's subsets (BraTS's 15, WMH's 3); the training checks them against its data's task
    names = list(dict.fromkeys(s.name for s in SUBSETS + WMH_SUBSETS))
    if not isinstance(value, (list, tuple)) or not value or any(v not in names for v in value):
        validate.fail(key, value, f"a non-empty list of subset names from {names}")
    if len(set(value)) != len(value):
        validate.fail(key, value, "distinct subset names")
    return tuple(value)


def _overlap(key: str, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        validate.fail(key, value, "a window overlap in [0, 1)")
    return float(value)


@dataclass(frozen=True)
class ValidationConfig:
    """params ``profiles.<p>.train.validation``."""

    every: int = field(default=0, metadata={"check": validate.non_negative_int})  # steps between scorings; 0: never
    # names as dcseg.subsets makes them (channel order): one weak and one strong single modality, and all four
    subsets: tuple[str, ...] = field(default=("flair", "t1ce", "flair+t1ce+t1+t2"), metadata={"check": _subsets})
    overlap: float = field(default=0.5, metadata={"check": _overlap})


def due(step: int, total: int, every: int) -> bool:
    """Whether the validation is scored after ``step`` steps (1-based) of ``total``: every ``every`` steps and after
    the last one; never when ``every`` is 0."""
    return every > 0 and (step % every == 0 or step == total)


def score_validation(model, preprocessed_dir: str | Path, cases: list[str], subsets: tuple[str, ...], settings,
                     device, task=None) -> dict[str, float]:
    """Mean Dice (unprocessed) over ``cases`` x ``subsets`` of each of the task's regions (default BraTS: WT, TC,
    ET), and their mean (``MEAN``). ``model`` must be in eval mode; ``settings``: the evaluation's
    ``InferenceSettings``. A label the task ignores is removed from the prediction first, as the scoring does."""
    from dcseg.data.preprocess import load_case
    from dcseg.inference import predict_labels
    from dcseg.metrics import dice
    from dcseg.subsets import subset_by_name
    from dcseg.tasks import BRATS

    task = task or BRATS
    masks = [subset_by_name(name, task.subsets).mask for name in subsets]
    scores = {r: [] for r in task.regions}
    for case in cases:
        image, label = load_case(preprocessed_dir, case)
        label = np.asarray(label)
        truth = task.region_masks(label)
        for prediction in predict_labels(model, np.array(image), settings, masks, device).numpy():
            predicted = task.region_masks(prediction, reference=label)
            for region in task.regions:
                scores[region].append(dice(predicted[region], truth[region]))
    result = {r: float(np.mean(v)) for r, v in scores.items()}
    result[MEAN] = float(np.mean([result[r] for r in task.regions]))
    return result


def trend(steps, values, total_steps: int) -> str:
    """One of ``TRENDS`` for a validation curve (``steps``, ``values``) of a run of ``total_steps`` steps."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    start = (1 - TAIL) * total_steps
    tail = steps >= start
    if tail.sum() < 3:
        return "undetermined"
    slope = np.polyfit(steps[tail], values[tail], 1)[0]
    return "still rising" if slope * (total_steps - start) > RISE else "plateaued"


def curve_summary(curve: list[dict], total_steps: int) -> dict:
    """``train_summary.json``'s ``validation`` entries from the logged curve (rows of ``step`` and the scores):
    the best and the last point (by ``MEAN``) and the rule's verdict."""
    if not curve:
        return {"best": None, "last": None, "trend": "undetermined"}
    best = max(curve, key=lambda row: (row[MEAN], -row["step"]))
    return {"best": best, "last": curve[-1],
            "trend": trend([row["step"] for row in curve], [row[MEAN] for row in curve], total_steps)}
