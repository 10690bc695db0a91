"""The report's text outputs: Table 1 and Table 2 as markdown, each under a provenance header (data, profile, ET
column, code commit, params hash, training and evaluation hardware), and summary.json's headline numbers. Rendering
only: every number comes from ``dcseg.report.statistics``."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcseg.experiments import LOSS_TERMS, term_on
from dcseg.metrics import REGIONS
from dcseg.report.layout import (ABLATION_ROWS, AVERAGE, METHODS, PAPER_MODALITY_ORDER, PAPER_TERMS, REMOVED_VARIANTS,
                                 ROWS)
from dcseg.report.statistics import MethodStatistics, PairedTest
from dcseg.subsets import MODALITY_LABELS, subset_by_name

if TYPE_CHECKING:  # annotations only: the manifest and the settings arrive already loaded
    import pandas as pd

    from dcseg.report.inputs import ReportSettings

PRESENT, ABSENT = "●", "○"
# Names of LossTerms fields that Table 2 has no column for, for its caption.
TERM_NAMES = {"fuse": "the fused segmentation loss", "deep_supervision": "deep supervision"}


def markdown_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    """A pipe table; ``align`` per column: "l", "c" or "r"."""
    rules = {"l": ":--", "c": ":-:", "r": "--:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def best_keys(values: dict[str, float], decimals: int, lowest: bool = False) -> set[str]:
    """Keys whose value is best as displayed (rounded to ``decimals``): a tie at that precision bolds all."""
    shown = {k: round(v, decimals) for k, v in values.items() if math.isfinite(v)}
    if not shown:
        return set()
    target = min(shown.values()) if lowest else max(shown.values())
    return {k for k, v in shown.items() if v == target}


def _cell(value: float, decimals: int, bold: bool = False, signed: bool = False) -> str:
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    return f"**{text}**" if bold else text


def _row_label_cells(row: str) -> list[str]:
    """The four modality columns (paper order): a dot per modality, or "Average" in the first one."""
    if row == AVERAGE:
        return ["**Average**", "", "", ""]
    subset = subset_by_name(row)
    return [PRESENT if m in subset.modalities else ABSENT for m in PAPER_MODALITY_ORDER]


MODALITY_HEADER = [MODALITY_LABELS[m] for m in PAPER_MODALITY_ORDER]


@dataclass(frozen=True)
class Provenance:
    """What produced a report; shown at the top of each table file."""

    data_source: str
    split_counts: dict[str, int]
    voxel_size: str
    profile: str
    commit: str
    params_hash: str
    et_column: str
    et_min_volume_mm3: float
    n_test_cases: int
    evaluation_hardware: str = "not recorded"  # what each evaluation resolved `auto` to (metrics/<run>.json)


# What the pipeline itself rewrites while it runs: DVC updates dvc.lock after each stage and deletes a stage's
# outputs before running it, so these differ from HEAD during any `dvc repro` and say nothing about the code.
PIPELINE_RESULTS = ("dvc.lock", "metrics", "reports")


def describe_commit(directory: str | Path) -> str:
    """``git rev-parse --short HEAD``, plus "+ uncommitted changes" when tracked files other than the pipeline's
    own results (``PIPELINE_RESULTS``) differ; "unknown" without git or outside a repository."""
    try:
        run = dict(cwd=directory, capture_output=True, text=True, check=True, timeout=30)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
        excluded = [f":(exclude){path}" for path in PIPELINE_RESULTS]
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
                                 **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if changed else commit


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    counts = manifest["split"].value_counts()
    return {split: int(counts.get(split, 0)) for split in ("train", "val", "test")}


def voxel_size(manifest: pd.DataFrame) -> str:
    """The voxel size in mm from the manifest's spacing columns (a range when cases differ)."""
    columns = [c for c in ("spacing_x", "spacing_y", "spacing_z") if c in manifest.columns]
    if not columns:
        return "unknown"
    spacing = manifest[columns].to_numpy(dtype=float)
    low, high = float(np.nanmin(spacing)), float(np.nanmax(spacing))
    return f"{low:g} mm" if low == high else f"{low:g}-{high:g} mm"


def _et_description(provenance: Provenance) -> str:
    if provenance.et_column == "dice_post":
        return (f"`dice_post`: ET after removing a predicted ET smaller than {provenance.et_min_volume_mm3:g} mm^3 "
                "(the references' \"enhancing_postpro\", as in the paper's numbers)")
    return "`dice`: raw ET, without the small-ET removal the paper's numbers use"


def _comparability(provenance: Provenance) -> str:
    where = "the phantom's" if provenance.data_source == "phantom" else f"this benchmark's {provenance.data_source}"
    text = (f"Values are Dice in % on {where} test split ({provenance.n_test_cases} cases, voxel size "
            f"{provenance.voxel_size}), each row the mean over test cases. The paper's numbers are BraTS 2020 at 1 mm")
    if provenance.data_source == "phantom":
        return text + ", so on the phantom only the ordering of methods and subsets and the trends are comparable, " \
                      "not the values."
    return text + " on the paper's own split and training budget: compare values only under profile `paper`."


def training_hardware(summary: dict) -> tuple[str, str]:
    """(precision, device) cells of a training run: what it resolved ``auto`` to, from its train_summary.json (an
    older summary has only its settings)."""
    hardware = summary.get("hardware")
    if not isinstance(hardware, dict):
        return str(summary["settings"]["precision"]), str(summary.get("device", "not recorded"))
    return (str(hardware["precision"]) + (" + channels_last" if hardware.get("channels_last") else ""),
            describe_device(hardware))


def describe_device(hardware: dict) -> str:
    """``CPU AVX2, 2 threads`` or the GPU's name."""
    if hardware.get("device") == "cuda":
        return str(hardware.get("gpu") or "CUDA")
    kind = hardware.get("cpu_kind", hardware.get("cpu_capability", "?"))
    return f"CPU {kind}, {hardware['threads']} threads" if "threads" in hardware else f"CPU {kind}"


def evaluation_hardware(metrics: dict[str, dict]) -> str:
    """One phrase for what the evaluations ran on, e.g. ``fp32 + channels_last on CPU AVX2, 2 threads (all 9 runs)``."""
    described: dict[str, list[str]] = {}
    for run, data in metrics.items():
        hardware = data.get("hardware")
        text = "not recorded" if not isinstance(hardware, dict) else (
            f"{hardware['precision']}{' + channels_last' if hardware.get('channels_last') else ''} on "
            f"{describe_device(hardware)}")
        described.setdefault(text, []).append(run)
    if len(described) == 1:
        return f"{next(iter(described))} (all {len(metrics)} runs)"
    return "; ".join(f"{text} ({', '.join(runs)})" for text, runs in described.items())


def _header(title: str, provenance: Provenance, trainings: dict[str, dict]) -> list[str]:
    counts = provenance.split_counts
    lines = [
        f"# {title}",
        "",
        "Produced by `python stages/report.py` (DVC stage `report`) from:",
        "",
        f"- data: `{provenance.data_source}` (params `data.source`), {counts['train']} train / {counts['val']} val / "
        f"{counts['test']} test cases (data/preprocessed/manifest.csv)",
        f"- profile: `{provenance.profile}`; test cases evaluated: {provenance.n_test_cases}, each under the 15 "
        "modality subsets",
        f"- ET column: {_et_description(provenance)}",
        f"- code: git `{provenance.commit}`; params hash `{provenance.params_hash}` (the report's params and each "
        "run's training settings)",
        "",
    ]
    if provenance.n_test_cases != counts["test"]:
        lines += [f"**Note:** the metrics cover {provenance.n_test_cases} cases but the manifest's test split has "
                  f"{counts['test']}: the metrics may be stale.", ""]
    rows = [[name, f"{t['steps']:g}", f"{t['settings']['crop']}^3", f"{t['settings']['batch_size']}",
             f"{t['settings']['lr']:g}", *training_hardware(t), f"{t['seconds_per_step']:.3f}"]
            for name, t in trainings.items()]
    lines += ["Training (logs/<run>/train_summary.json; precision and device as the run resolved `auto`, see "
              "dcseg/hardware.py):", "",
              markdown_table(["run", "steps", "crop", "batch", "lr", "precision", "device", "s/step"], rows,
                             ["l", "r", "r", "r", "r", "l", "l", "r"]),
              "", f"Evaluation (metrics/<run>.json): {provenance.evaluation_hardware}.", "",
              _comparability(provenance), ""]
    return lines


def _format_test(test: PairedTest) -> tuple[str, str]:
    """(median difference, p) cells of a paired test."""
    median = "n/a" if math.isnan(test.median_difference) else _cell(test.median_difference, 2, signed=True)
    p = f"n/a ({test.reason})" if test.p_value is None else f"{test.p_value:.3g}"
    return median, p


def render_table1(provenance: Provenance, trainings: dict[str, dict], dice: dict[str, dict], hd95: dict[str, dict],
                  paper: dict[str, dict], statistics: dict[str, MethodStatistics],
                  tests: dict[str, dict[str, PairedTest]], report: ReportSettings) -> str:
    """Table 1 markdown. ``dice`` / ``hd95``: run -> ``dice_table`` / ``hd95_table``; ``paper``:
    ``load_paper_table1``; ``statistics``: run -> its CI; ``tests``: other run -> region -> DC-Seg vs it."""
    labels = list(METHODS.values())
    lines = _header("Table 1: Dice per modality subset (DC-Seg paper, MICCAI 2025, Table 1)", provenance, trainings)

    lines += ["## Dice (%) per modality subset", "",
              f"{PRESENT} modality present, {ABSENT} absent (columns in the paper's order FLAIR, T1, T1ce, T2). "
              "WT / TC / ET = the paper's Complete / Core / Enhancing. In each row and region the best measured value "
              "is **bold**; \"DC-Seg (paper)\" is the paper's number, for reference.", ""]
    header = MODALITY_HEADER + [f"{r} {label}" for r in REGIONS for label in labels + ["DC-Seg (paper)"]]
    rows = []
    for row in ROWS:
        cells = _row_label_cells(row)
        for region in REGIONS:
            values = {run: dice[run][row][region] for run in METHODS}
            best = best_keys(values, 2)
            cells += [_cell(values[run], 2, run in best) for run in METHODS]
            cells.append(_cell(paper["DC-Seg"][row][region], 2))
        rows.append(cells)
    lines += [markdown_table(header, rows, ["c"] * 4 + ["r"] * (len(header) - 4)), ""]

    lines += ["## Measured minus paper", "",
              "Per method, measured Dice minus the paper's Dice for the same method (percentage points).", ""]
    header = MODALITY_HEADER + [f"{r} {label}" for r in REGIONS for label in labels]
    rows = [_row_label_cells(row) + [_cell(dice[run][row][region] - paper[label][row][region], 2, signed=True)
                                     for region in REGIONS for run, label in METHODS.items()]
            for row in ROWS]
    lines += [markdown_table(header, rows, ["c"] * 4 + ["r"] * (len(header) - 4)), ""]

    n_cases = provenance.n_test_cases
    lines += ["## Uncertainty over test cases", "",
              f"15-subset average Dice (%) with a 95% percentile bootstrap CI: {report.bootstrap_samples} resamples "
              f"(with replacement) of the {n_cases} test cases, seed {report.seed}; the statistic is the mean over "
              "cases of each case's mean over the 15 subsets (= the Average row above).", ""]
    rows = []
    for run, label in METHODS.items():
        s = statistics[run]
        rows.append([label] + [f"{s.mean[r]:.2f} [{s.ci_low[r]:.2f}, {s.ci_high[r]:.2f}]" if n_cases > 1
                               else f"{s.mean[r]:.2f} (n/a: 1 case)" for r in REGIONS])
    lines += [markdown_table(["method"] + [f"{r} mean [95% CI]" for r in REGIONS], rows, ["l", "r", "r", "r"]), ""]
    lines += ["Paired Wilcoxon signed-rank test (two-sided, scipy.stats.wilcoxon) over test cases of each case's "
              "15-subset average Dice; difference = DC-Seg minus the other method, in percentage points.", ""]
    rows = []
    for other, by_region in tests.items():
        for region, test in by_region.items():
            rows.append([f"DC-Seg vs {METHODS[other]}", region, str(test.n_cases), *_format_test(test)])
    lines += [markdown_table(["comparison", "region", "cases", "median difference", "p"], rows,
                             ["l", "l", "r", "r", "r"]), ""]

    lines += ["## HD95 (mm)", "",
              "95th-percentile Hausdorff distance, mean over test cases; the lowest per row and region is **bold**. "
              "ET HD95 is of the raw prediction (the evaluation records HD95 only before the small-ET removal). A "
              "missed or spurious region counts as the image diagonal.", ""]
    header = MODALITY_HEADER + [f"{r} {label}" for r in REGIONS for label in labels]
    rows = []
    for row in ROWS:
        cells = _row_label_cells(row)
        for region in REGIONS:
            values = {run: hd95[run][row][region] for run in METHODS}
            best = best_keys(values, 1, lowest=True)
            cells += [_cell(values[run], 1, run in best) for run in METHODS]
        rows.append(cells)
    lines += [markdown_table(header, rows, ["c"] * 4 + ["r"] * (len(header) - 4)), ""]
    return "\n".join(lines)


def ablation_term_columns() -> tuple[str, ...]:
    """Table 2's check-mark columns: the paper's four, plus any other LossTerms field some variant switches off."""
    others = [t for t in LOSS_TERMS if t not in PAPER_TERMS]
    return PAPER_TERMS + tuple(t for t in others if not all(term_on(v, t) for v in ABLATION_ROWS))


def render_table2(provenance: Provenance, trainings: dict[str, dict], measured: dict[str, dict[str, float]],
                  paper: dict[str, dict[str, float]], tests: dict[str, dict[str, PairedTest]]) -> str:
    """Table 2 markdown. ``measured`` / ``paper``: variant -> region -> 15-subset average Dice (%); ``tests``:
    variant -> region -> the variant vs full."""
    terms = ablation_term_columns()
    always_on = [TERM_NAMES.get(t, t) for t in LOSS_TERMS if t not in terms]
    lines = _header("Table 2: ablation of DC-Seg's loss terms (DC-Seg paper, MICCAI 2025, Table 2)", provenance,
                    trainings)
    lines += ["## 15-subset average Dice (%)", "",
              "✓ term on, ✗ off (dcseg/experiments.py VARIANTS). Ana / Mod: anatomical / modality contrastive loss, "
              "Rec: reconstruction, Reg: segmentation-based regulariser; "
              f"{' and '.join(always_on)} are on in every variant. "
              "Every row, full included, is its own training run under the profile's ablation schedule (see the "
              "header for its steps), so the rows compare like with like; the main DC-Seg run of Table 1 may be "
              "trained longer. The best measured value per region is **bold**.", ""]
    header = ["variant"] + [t.replace("_", " ").capitalize() for t in terms] + list(REGIONS) + \
        [f"{r} (paper)" for r in REGIONS]
    best = {r: best_keys({v: measured[v][r] for v in ABLATION_ROWS}, 2) for r in REGIONS}
    rows = [[variant] + ["✓" if term_on(variant, t) else "✗" for t in terms]
            + [_cell(measured[variant][r], 2, variant in best[r]) for r in REGIONS]
            + [_cell(paper[variant][r], 2) for r in REGIONS]
            for variant in ABLATION_ROWS]
    lines += [markdown_table(header, rows, ["l"] + ["c"] * len(terms) + ["r"] * 6), ""]

    lines += ["## Change from removing the component (variant minus full)", "",
              "In percentage points: measured, and the paper's for comparison. Then a paired Wilcoxon signed-rank test "
              "(two-sided) of each case's 15-subset average Dice, variant vs full.", ""]
    rows = []
    for variant in REMOVED_VARIANTS:
        removed = ", ".join(t for t in terms if not term_on(variant, t))
        rows.append([variant, removed]
                    + [_cell(measured[variant][r] - measured["full"][r], 2, signed=True) for r in REGIONS]
                    + [_cell(paper[variant][r] - paper["full"][r], 2, signed=True) for r in REGIONS]
                    + [_format_test(tests[variant][r])[1] for r in REGIONS])
    header = ["variant", "removed"] + [f"Δ{r}" for r in REGIONS] + [f"Δ{r} (paper)" for r in REGIONS] + \
        [f"p {r}" for r in REGIONS]
    lines += [markdown_table(header, rows, ["l", "l"] + ["r"] * 9), ""]
    return "\n".join(lines)


def summary_metrics(provenance: Provenance, statistics: dict[str, MethodStatistics],
                    ablation: dict[str, dict[str, float]]) -> dict:
    """The headline numbers (Dice %, 2 decimals) for ``dvc metrics show`` / ``dvc exp show``."""
    return {
        "et_column": provenance.et_column,
        "n_test_cases": provenance.n_test_cases,
        "table1": {run: {r: {"dice": round(s.mean[r], 2), "ci_low": round(s.ci_low[r], 2),
                             "ci_high": round(s.ci_high[r], 2)} for r in REGIONS}
                   for run, s in statistics.items()},
        "table2": {variant: {r: round(values[r], 2) for r in REGIONS} for variant, values in ablation.items()},
    }
