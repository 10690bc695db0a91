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
from dcseg.report.layout import ABLATION_ROWS, AVERAGE, METHODS, PAPER_MODALITY_ORDER, PAPER_TERMS, ROWS
from dcseg.convergence import RISE, TAIL
from dcseg.experiments import FULL
from dcseg.report.statistics import Comparison, GroupStatistics, PairedTest
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


# What the two pipelines themselves rewrite in git-tracked paths (relative to the repository root) while they run:
# DVC updates a dvc.lock after each stage and deletes a stage's outputs before running it, so these differ from HEAD
# during any `dvc repro` (of either pipeline) and say nothing about the code.
PIPELINE_RESULTS = ("dvc.lock", "metrics", "logs", "reports",
                    "wmh/dvc.lock", "wmh/metrics", "wmh/logs", "wmh/splits", "wmh/reports")


def describe_commit(directory: str | Path) -> str:
    """``git rev-parse --short HEAD``, plus "+ uncommitted changes" when tracked files anywhere in the repository
    other than the pipelines' own results (``PIPELINE_RESULTS``) differ; "unknown" without git or outside a
    repository."""
    try:
        run = dict(cwd=directory, capture_output=True, text=True, check=True, timeout=30)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
        excluded = [f":(top,exclude){path}" for path in PIPELINE_RESULTS]
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded],
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
    """One phrase for what the evaluations ran on, e.g. ``fp32 + channels_last on CPU AVX2, 1 threads (all 14 runs)``."""
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


def _sd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _mean_sd(stats: GroupStatistics, region: str) -> str:
    """``76.1 ± 1.3`` (mean over seeds ± across-seed SD), or the mean alone for one seed."""
    sd = stats.sd[region]
    return f"{stats.mean[region]:.2f}" if sd is None else f"{stats.mean[region]:.2f} ± {sd:.2f}"


def _bold_label(label: str) -> str:
    return f"**{label}**" if label == "significant" else label


def statistics_caption(report: ReportSettings, n_cases: int) -> str:
    """The one statement of how the tables' numbers are made (both tables print it)."""
    return (f"Statistics (dcseg/report/statistics.py). A run's score is its 15-subset average Dice (%), i.e. the mean "
            f"over the {n_cases} test cases of each case's mean over the 15 subsets. A row's value is the mean of that "
            "score over the row's training seeds (one run per seed index of params `seeds`; seed index r trains with "
            "the profile's seed + r), ± the SD across seeds (ddof 1; n/a with one seed), with the min–max over seeds. "
            f"The 95% CI is a hierarchical percentile bootstrap ({report.bootstrap_samples} resamples, seed "
            f"{report.seed}): resample the seeds with replacement, then the test cases (one draw for all picked seeds, "
            "as every seed was tested on the same cases), average; with 3 seeds its seed part is coarse. A difference "
            "(first minus second, difference of the means over seeds) is **significant** when a two-sided paired "
            "Wilcoxon signed-rank test over test cases of each case's value averaged over seeds gives p < 0.05 after "
            "Holm's correction across every comparison of the table (all rows and regions), *and* the difference "
            "exceeds the larger of the two rows' across-seed SDs; otherwise it is **within noise**, with the reason. "
            "A difference between single-seed rows has no seed SD to exceed and stays within noise. Bold marks the "
            "best value as displayed; it is not a ranking unless the difference is labelled significant.")


def _comparison_rows(comparisons: list[Comparison], names: dict[str, str]) -> list[list[str]]:
    return [[f"{names[c.first]} − {names[c.second]}", c.region, _cell(c.difference, 2, signed=True), _sd(c.seed_sd),
             _format_test(c.test)[1], "n/a" if c.p_holm is None else f"{c.p_holm:.3g}", _bold_label(c.label),
             c.reason] for c in comparisons]


COMPARISON_HEADER = ["comparison", "region", "difference", "larger seed SD", "Wilcoxon p", "Holm p", "label", "why"]


def convergence_lines(convergence: dict[str, dict], regions: tuple[str, ...] = REGIONS,
                      logs: str = "logs", figure: str | None = "reports/figures/training_curves.png") -> list[str]:
    """The validation curve of every run: best and last (step, mean Dice %) and the convergence rule's verdict;
    ``logs``: where the runs' summaries are, ``figure``: the figure that draws the curves (None: no figure)."""
    first = next(iter(convergence.values()))
    subsets = ", ".join(first["subsets"] or [])
    dice = f"mean over {'/'.join(regions)}" if len(regions) > 1 else f"{regions[0]} Dice"
    where = f"{logs}/<run>/train_summary.json" + (f", and {figure}" if figure else "")
    lines = ["## Convergence (validation split, during training)", "",
             f"Validation Dice (%, unprocessed, {dice}, over the validation cases and the subsets {subsets}) "
             f"scored every {first['every']} steps and after the last (dcseg/convergence.py; "
             f"{where}). The evaluation uses the last "
             "weights, as the references do. Rule: a least-squares line through the validation points of the final "
             f"{TAIL:.0%} of training; **still rising** when it gains more than {RISE:g} Dice over that span, "
             "**plateaued** otherwise, **undetermined** with fewer than three points there.", ""]
    rows = []
    for name, row in convergence.items():
        best, last = row["best"], row["last"]
        rows.append([name, str(row["steps"]), "n/a" if best is None else f"{best['dice']:.2f} @ {best['step']}",
                     "n/a" if last is None else f"{last['dice']:.2f} @ {last['step']}", row["trend"]])
    rising = [name for name, row in convergence.items() if row["trend"] == "still rising"]
    lines += [markdown_table(["run", "steps", "best (Dice @ step)", "last", "verdict"], rows,
                             ["l", "r", "r", "r", "l"]), ""]
    lines += [f"Still rising at the end: {', '.join(rising)}: these runs were stopped on the slope, so their rows "
              "understate what the method reaches with more training." if rising else
              "No run was still rising at the end by this rule.", ""]
    return lines


def render_table1(provenance: Provenance, trainings: dict[str, dict], dice: dict[str, dict], hd95: dict[str, dict],
                  paper: dict[str, dict], statistics: dict[str, GroupStatistics], comparisons: list[Comparison],
                  convergence: dict[str, dict], report: ReportSettings) -> str:
    """Table 1 markdown. ``dice`` / ``hd95``: method -> its seeds' mean ``dice_table`` / ``hd95_table``; ``paper``:
    ``load_paper_table1``; ``statistics``: method -> ``GroupStatistics``; ``comparisons``: DC-Seg vs each baseline
    (``compare_groups``); ``convergence``: run -> ``convergence_row``."""
    labels = list(METHODS.values())
    seeds = {METHODS[m]: statistics[m].n_seeds for m in METHODS}
    lines = _header("Table 1: Dice per modality subset (DC-Seg paper, MICCAI 2025, Table 1)", provenance, trainings)
    lines += [statistics_caption(report, provenance.n_test_cases), ""]

    lines += ["## Mean ± seed SD and labelled differences", "",
              "15-subset average Dice (%): mean over seeds ± across-seed SD, [min – max] over seeds, and the "
              "hierarchical 95% CI.", ""]
    rows = [[METHODS[m], str(statistics[m].n_seeds)]
            + [f"{_mean_sd(statistics[m], r)} [{statistics[m].low[r]:.2f} – {statistics[m].high[r]:.2f}] "
               f"({statistics[m].ci_low[r]:.2f}, {statistics[m].ci_high[r]:.2f})" for r in REGIONS] for m in METHODS]
    lines += [markdown_table(["method", "seeds"] + [f"{r} mean ± SD [min – max] (95% CI)" for r in REGIONS], rows,
                             ["l", "r", "r", "r", "r"]), ""]
    lines += [markdown_table(COMPARISON_HEADER, _comparison_rows(comparisons, METHODS),
                             ["l", "l", "r", "r", "r", "r", "l", "l"]), ""]
    significant = [c for c in comparisons if c.label == "significant"]
    lines += ["Read: " + ("; ".join(f"{METHODS[c.first]} {'above' if c.difference > 0 else 'below'} "
                                    f"{METHODS[c.second]} on {c.region} ({c.difference:+.2f})" for c in significant)
                         + " (significant); every other difference is within noise." if significant else
                         "every difference between DC-Seg and a baseline is within noise: this run does not rank "
                         "them."), ""]

    lines += ["## Per seed", "", "Each seed's 15-subset average Dice (%): the spread behind the SDs above.", ""]
    rows = [[METHODS[m], str(seed)] + [f"{values[r]:.2f}" for r in REGIONS]
            for m in METHODS for seed, values in statistics[m].per_seed.items()]
    lines += [markdown_table(["method", "seed index"] + list(REGIONS), rows, ["l", "r", "r", "r", "r"]), ""]

    lines += ["## Dice (%) per modality subset", "",
              f"{PRESENT} modality present, {ABSENT} absent (columns in the paper's order FLAIR, T1, T1ce, T2). "
              "WT / TC / ET = the paper's Complete / Core / Enhancing. Each value is the mean over the method's seeds "
              f"({', '.join(f'{k}: {v}' for k, v in seeds.items())}) of the mean over test cases. In each row and "
              "region the best measured value is **bold** (as displayed; see the labels above before reading a "
              "ranking into it); \"DC-Seg (paper)\" is the paper's number, for reference.", ""]
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
              "Per method, measured Dice (mean over seeds) minus the paper's Dice for the same method (percentage "
              "points).", ""]
    header = MODALITY_HEADER + [f"{r} {label}" for r in REGIONS for label in labels]
    rows = [_row_label_cells(row) + [_cell(dice[run][row][region] - paper[label][row][region], 2, signed=True)
                                     for region in REGIONS for run, label in METHODS.items()]
            for row in ROWS]
    lines += [markdown_table(header, rows, ["c"] * 4 + ["r"] * (len(header) - 4)), ""]

    lines += convergence_lines(convergence)

    lines += ["## HD95 (mm)", "",
              "95th-percentile Hausdorff distance, mean over seeds of the mean over test cases; the lowest per row and "
              "region is **bold**. ET HD95 is of the raw prediction (the evaluation records HD95 only before the "
              "small-ET removal). A missed or spurious region counts as the image diagonal.", ""]
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


def render_table2(provenance: Provenance, trainings: dict[str, dict], statistics: dict[str, GroupStatistics],
                  paper: dict[str, dict[str, float]], comparisons: list[Comparison], convergence: dict[str, dict],
                  report: ReportSettings) -> str:
    """Table 2 markdown. ``statistics``: variant -> ``GroupStatistics`` (``full``: the main DC-Seg runs);
    ``paper``: variant -> region -> Dice (%); ``comparisons``: each variant vs full."""
    terms = ablation_term_columns()
    always_on = [TERM_NAMES.get(t, t) for t in LOSS_TERMS if t not in terms]
    lines = _header("Table 2: ablation of DC-Seg's loss terms (DC-Seg paper, MICCAI 2025, Table 2)", provenance,
                    trainings)
    lines += [statistics_caption(report, provenance.n_test_cases), ""]
    rows_present = [v for v in ABLATION_ROWS if v in statistics]  # full, and the variants trained under a seed
    counts = sorted({statistics[v].n_seeds for v in rows_present if v != FULL})
    trained = (f"The other variants have {' or '.join(map(str, counts))} seed{'s' if counts != [1] else ''} each "
               "(params `seeds.ablation`): what the CPU budget left after the main runs, so their own seed spread is "
               "unmeasured and a comparison uses full's." if counts else
               "**No variant was trained** (params `seeds.ablation` is empty): the table has its full row only.")
    lines += ["## 15-subset average Dice (%)", "",
              "✓ term on, ✗ off (dcseg/experiments.py VARIANTS). Ana / Mod: anatomical / modality contrastive loss, "
              "Rec: reconstruction, Reg: segmentation-based regulariser; "
              f"{' and '.join(always_on)} are on in every variant. "
              "Every variant trains like Table 1's DC-Seg (the same schedule: see the header's steps), and the full "
              f"row *is* Table 1's DC-Seg ({statistics[FULL].n_seeds} seeds). {trained} The best measured value per "
              "region is **bold**.", ""]
    header = ["variant", "seeds"] + [t.replace("_", " ").capitalize() for t in terms] + \
        [f"{r} mean ± SD" for r in REGIONS] + [f"{r} (paper)" for r in REGIONS]
    best = {r: best_keys({v: statistics[v].mean[r] for v in rows_present}, 2) for r in REGIONS}
    rows = [[variant, str(statistics[variant].n_seeds)] + ["✓" if term_on(variant, t) else "✗" for t in terms]
            + [f"**{_mean_sd(statistics[variant], r)}**" if variant in best[r] else _mean_sd(statistics[variant], r)
               for r in REGIONS]
            + [_cell(paper[variant][r], 2) for r in REGIONS]
            for variant in rows_present]
    lines += [markdown_table(header, rows, ["l", "r"] + ["c"] * len(terms) + ["r"] * 6), ""]

    lines += ["## Change from removing the component (variant minus full)", "",
              "Measured (labelled by the rule above) and, for comparison, the paper's difference.", ""]
    paper_delta = {(v, r): paper[v][r] - paper[FULL][r] for v in rows_present for r in REGIONS}
    rows = [row + [_cell(paper_delta[(c.first, c.region)], 2, signed=True)]
            for row, c in zip(_comparison_rows(comparisons, {v: v for v in ABLATION_ROWS}), comparisons)]
    lines += [markdown_table(COMPARISON_HEADER + ["paper difference"], rows,
                             ["l", "l", "r", "r", "r", "r", "l", "l", "r"]), ""]
    significant = [c for c in comparisons if c.label == "significant"]
    lines += ["Read: " + ("; ".join(f"removing {c.first.removeprefix('no_')} "
                                    f"{'raises' if c.difference > 0 else 'lowers'} {c.region} ({c.difference:+.2f})"
                                    for c in significant) + " (significant); every other change is within noise."
                         if significant else "no variant differs from full beyond noise: this run cannot say which "
                         "component matters." if comparisons else "no variant was trained."), ""]
    lines += convergence_lines(convergence)
    return "\n".join(lines)


def _group_record(stats: GroupStatistics) -> dict:
    return {r: {"dice": round(stats.mean[r], 2), "sd": None if stats.sd[r] is None else round(stats.sd[r], 2),
                "min": round(stats.low[r], 2), "max": round(stats.high[r], 2), "ci_low": round(stats.ci_low[r], 2),
                "ci_high": round(stats.ci_high[r], 2), "n_seeds": stats.n_seeds,
                "per_seed": {str(seed): round(values[r], 2) for seed, values in stats.per_seed.items()}}
            for r in REGIONS}


def _comparison_record(comparisons: list[Comparison]) -> dict:
    record: dict[str, dict] = {}
    for c in comparisons:
        record.setdefault(f"{c.first}_vs_{c.second}", {})[c.region] = {
            "difference": round(c.difference, 2), "seed_sd": None if c.seed_sd is None else round(c.seed_sd, 2),
            "p": None if c.test.p_value is None else round(c.test.p_value, 4),
            "p_holm": None if c.p_holm is None else round(c.p_holm, 4), "label": c.label, "why": c.reason}
    return record


def statistics_record(provenance: Provenance, main: dict[str, GroupStatistics], main_comparisons: list[Comparison],
                      ablation: dict[str, GroupStatistics], ablation_comparisons: list[Comparison],
                      convergence: dict[str, dict]) -> dict:
    """Every number the tables' statistics show (reports/statistics.json): per row and region the mean over seeds,
    SD, min, max, CI and per-seed values; per comparison the difference, SD, p, Holm p and label; per run the
    convergence verdict."""
    return {
        "et_column": provenance.et_column,
        "n_test_cases": provenance.n_test_cases,
        "table1": {m: _group_record(s) for m, s in main.items()},
        "table1_comparisons": _comparison_record(main_comparisons),
        "table2": {v: _group_record(s) for v, s in ablation.items()},
        "table2_comparisons": _comparison_record(ablation_comparisons),
        "convergence": {name: row["trend"] for name, row in convergence.items()},
    }


def summary_metrics(statistics: dict) -> dict:
    """The headline subset of ``statistics_record`` (reports/summary.json) for ``dvc metrics show`` / ``dvc exp
    show``: Table 1's mean, seed SD and CI, Table 2's means, every comparison's label."""
    def labels(comparisons):
        return {pair: {r: values["label"] for r, values in by_region.items()} for pair, by_region in comparisons.items()}

    return {
        "et_column": statistics["et_column"],
        "n_test_cases": statistics["n_test_cases"],
        "table1": {m: {r: {k: v[k] for k in ("dice", "sd", "ci_low", "ci_high")} for r, v in rows.items()}
                   for m, rows in statistics["table1"].items()},
        "table1_labels": labels(statistics["table1_comparisons"]),
        "table2": {v: {r: values["dice"] for r, values in rows.items()} for v, rows in statistics["table2"].items()},
        "table2_labels": labels(statistics["table2_comparisons"]),
    }
