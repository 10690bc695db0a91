"""The numbers behind the tables, computed from the checked inputs (``dcseg.report.inputs``): per-subset Dice and
HD95 tables, each case's 15-subset average, the bootstrap CI of the mean over cases and the paired Wilcoxon tests.
No torch and no formatting here, so that a reviewer can audit the statistics on their own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dcseg.data.errors import DataError
from dcseg.metrics import REGIONS
from dcseg.report.layout import AVERAGE
from dcseg.subsets import SUBSETS


def dice_column(region: str, et_column: str) -> str:
    """The cases CSV / summary column shown for ``region``: the ET post-processing changes only ET."""
    return et_column if region == "ET" else "dice"


def dice_table(metrics: dict, et_column: str) -> dict[str, dict[str, float]]:
    """Dice (%) per row (the 15 subsets, then ``average``: their mean) and region, from a run's summary JSON."""
    table = {s.name: {r: 100 * metrics["subsets"][s.name][dice_column(r, et_column)][r] for r in REGIONS}
             for s in SUBSETS}
    table[AVERAGE] = {r: float(np.mean([table[s.name][r] for s in SUBSETS])) for r in REGIONS}
    return table


def hd95_table(metrics: dict) -> dict[str, dict[str, float]]:
    """HD95 (mm, of the raw prediction: the evaluation stores no post-processed HD95) per row and region."""
    table = {s.name: {r: float(metrics["subsets"][s.name]["hd95"][r]) for r in REGIONS} for s in SUBSETS}
    table[AVERAGE] = {r: float(np.mean([table[s.name][r] for s in SUBSETS])) for r in REGIONS}
    return table


def per_case_average(cases: pd.DataFrame, et_column: str) -> pd.DataFrame:
    """Per test case (rows, sorted), each region's Dice (%) averaged over the 15 subsets (columns ``REGIONS``)."""
    columns = {}
    for region in REGIONS:
        rows = cases[cases["region"] == region]
        columns[region] = 100 * rows.groupby("case")[dice_column(region, et_column)].mean()
    return pd.DataFrame(columns).sort_index()


def bootstrap_ci(values, n_samples: int, seed: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the mean over cases. ``values``: ``[n_cases]`` or ``[n_cases, k]``; returns
    (low, high), each a scalar or ``[k]``. All resamples are drawn at once; the same seed gives the same resampled
    cases for every call, so the CIs of different methods come from the same resamples."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("no cases to bootstrap")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(n_samples, len(values)))
    means = values[picks].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class PairedTest:
    """A two-sided Wilcoxon signed-rank test of paired per-case values; ``p_value`` is None when it is undefined,
    and ``reason`` then says why."""

    n_cases: int
    median_difference: float
    p_value: float | None
    reason: str | None = None


def paired_wilcoxon(a, b) -> PairedTest:
    """Wilcoxon signed-rank test of ``a - b`` (paired by position), two-sided."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    median = float(np.median(differences)) if n else math.nan
    if n < 2:
        return PairedTest(n, median, None, f"{n} paired case{'s' if n != 1 else ''}, need at least 2")
    if not np.any(differences):
        return PairedTest(n, median, None, "all differences are zero")
    return PairedTest(n, median, float(stats.wilcoxon(differences, alternative="two-sided").pvalue))


def check_same_cases(per_case: dict[str, pd.DataFrame], files: dict[str, Path]) -> None:
    """Paired tests compare the same cases: every run must have been evaluated on the same test cases."""
    names = list(per_case)
    reference = per_case[names[0]].index
    for name in names[1:]:
        if not per_case[name].index.equals(reference):
            differing = sorted(set(reference).symmetric_difference(per_case[name].index))
            raise DataError(f"{files[name]} and {files[names[0]]} cover different test cases (e.g. {differing[:3]}); "
                            "rerun the evaluate stages on the same data")


@dataclass(frozen=True)
class MethodStatistics:
    """A run's 15-subset average Dice (%) per region, with its bootstrap CI over test cases."""

    mean: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]


def method_statistics(per_case: pd.DataFrame, n_samples: int, seed: int) -> MethodStatistics:
    low, high = bootstrap_ci(per_case[list(REGIONS)].to_numpy(), n_samples, seed)
    return MethodStatistics(
        mean={r: float(per_case[r].mean()) for r in REGIONS},
        ci_low={r: float(v) for r, v in zip(REGIONS, low)},
        ci_high={r: float(v) for r, v in zip(REGIONS, high)},
    )
