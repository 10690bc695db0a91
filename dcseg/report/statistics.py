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


# --------------------------------------------------------------------------------------------------------------------
# Seeds: a table row is a group of runs (its seeds); the statistics below are the ones the tables' captions state


SIGNIFICANCE = 0.05  # Holm-adjusted p below this (and a difference beyond the seed spread): "significant"
LABELS = ("significant", "within noise")


def seed_case_values(per_case: dict[int, pd.DataFrame], region: str) -> np.ndarray:
    """``[seeds, cases]`` of each case's 15-subset average Dice (%) under each seed of a group (seed order)."""
    return np.stack([per_case[seed][region].to_numpy(dtype=float) for seed in sorted(per_case)])


def hierarchical_bootstrap_means(values, n_samples: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the grand mean of ``values [seeds, cases(, k)]``: each replicate resamples the seeds
    with replacement, then the test cases with replacement, and averages the picked cells. Every seed of a run was
    tested on the same cases (seeds and cases are crossed), so one case draw serves all picked seeds: the case-to-case
    variation then does not shrink with the number of seeds, as it does not in the data. Returns ``[n_samples(, k)]``;
    for ``values = a_seed + b_case`` their variance is ``var(a) / S + var(b) / C`` (population variances)."""
    values = np.asarray(values, dtype=float)
    if values.ndim < 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValueError(f"expected values [seeds, cases(, k)], got shape {values.shape}")
    n_seeds, n_cases = values.shape[:2]
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_samples, n_seeds))
    cases = rng.integers(0, n_cases, size=(n_samples, n_cases))
    picked = values[seeds[:, :, None], cases[:, None, :]]  # [n_samples, S, C(, k)]
    return picked.mean(axis=(1, 2))


def hierarchical_bootstrap_ci(values, n_samples: int, seed: int, level: float = 0.95):
    """Percentile CI of the grand mean from ``hierarchical_bootstrap_means``; (low, high), scalars or ``[k]``."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(hierarchical_bootstrap_means(values, n_samples, seed), [tail, 100 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class GroupStatistics:
    """A table row's seeds: per region, the mean over seeds of each seed's 15-subset average Dice (%), the SD across
    seeds (ddof 1; None with one seed), its min and max, and the hierarchical bootstrap 95% CI."""

    seeds: tuple[int, ...]
    per_seed: dict[int, dict[str, float]]
    mean: dict[str, float]
    sd: dict[str, float | None]
    low: dict[str, float]
    high: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


def group_statistics(per_case: dict[int, pd.DataFrame], n_samples: int, seed: int,
                     regions: tuple[str, ...] = REGIONS) -> GroupStatistics:
    """``per_case``: seed index -> ``per_case_average`` of that seed's run (the same cases for every seed);
    ``regions``: its columns (BraTS WT, TC, ET; WMH: WMH)."""
    seeds = tuple(sorted(per_case))
    values = np.stack([seed_case_values(per_case, r) for r in regions], axis=-1)  # [S, C, regions]
    per_seed = {s: {r: float(v) for r, v in zip(regions, values[i].mean(axis=0))} for i, s in enumerate(seeds)}
    seed_means = values.mean(axis=1)  # [S, regions]
    low, high = hierarchical_bootstrap_ci(values, n_samples, seed)
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    return GroupStatistics(
        seeds=seeds, per_seed=per_seed,
        mean={r: float(seed_means[:, i].mean()) for i, r in enumerate(regions)},
        sd={r: float(seed_means[:, i].std(ddof=1)) if len(seeds) > 1 else None for i, r in enumerate(regions)},
        low={r: float(seed_means[:, i].min()) for i, r in enumerate(regions)},
        high={r: float(seed_means[:, i].max()) for i, r in enumerate(regions)},
        ci_low={r: float(v) for r, v in zip(regions, low)},
        ci_high={r: float(v) for r, v in zip(regions, high)})


def seed_averaged_cases(per_case: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Each case's 15-subset average Dice (%) averaged over a group's seeds (rows: cases, columns: regions)."""
    frames = [per_case[s] for s in sorted(per_case)]
    return sum(frames[1:], frames[0]) / len(frames)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error) of a family of tests, in the input order; an undefined
    p (None) takes no part and stays None."""
    defined = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(defined)
    for rank, (p, i) in enumerate(defined):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One labelled difference of a table: ``first`` minus ``second`` in one region."""

    first: str
    second: str
    region: str
    difference: float         # difference of the groups' means over seeds (percentage points)
    test: PairedTest          # Wilcoxon over test cases of the seed-averaged per-case values
    p_holm: float | None      # Holm-adjusted over every comparison of the table
    seed_sd: float | None     # the larger of the two groups' across-seed SDs (None: neither has two seeds)
    label: str                # one of LABELS
    reason: str               # why: "p and seed SD", "Holm p >= 0.05", "|difference| <= seed SD", ...


def label_difference(difference: float, p_holm: float | None, seed_sd: float | None) -> tuple[str, str]:
    """The rule of every table: **significant** when Holm p < ``SIGNIFICANCE`` and the difference of means exceeds
    the larger across-seed SD; otherwise **within noise**, with the reason. A comparison of single-seed groups has
    no seed SD to exceed, so it is within noise (seed spread unknown)."""
    if p_holm is None:
        return "within noise", "test undefined"
    if p_holm >= SIGNIFICANCE:
        return "within noise", f"Holm p >= {SIGNIFICANCE:g}"
    if seed_sd is None:
        return "within noise", "seed spread unknown (one seed each)"
    if abs(difference) <= seed_sd:
        return "within noise", "|difference| <= seed SD"
    return "significant", f"Holm p < {SIGNIFICANCE:g} and |difference| > seed SD"


def compare_groups(pairs: list[tuple[str, str]], per_case: dict[str, dict[int, pd.DataFrame]],
                   statistics: dict[str, GroupStatistics], regions: tuple[str, ...] = REGIONS) -> list[Comparison]:
    """Every (first, second) pair in every region, Holm-corrected together (the family: one table)."""
    raw = []
    for first, second in pairs:
        a, b = seed_averaged_cases(per_case[first]), seed_averaged_cases(per_case[second])
        for region in regions:
            sds = [s for s in (statistics[first].sd[region], statistics[second].sd[region]) if s is not None]
            raw.append((first, second, region, statistics[first].mean[region] - statistics[second].mean[region],
                        paired_wilcoxon(a[region], b[region]), max(sds) if sds else None))
    adjusted = holm([test.p_value for *_, test, _ in raw])
    return [Comparison(first, second, region, difference, test, p, sd, *label_difference(difference, p, sd))
            for (first, second, region, difference, test, sd), p in zip(raw, adjusted)]
