"""Reports a reviewer holds against the DC-Seg paper (Li et al., MICCAI 2025).

- ``reports/table1.md``: the paper's Table 1 (Dice per modality subset for RFNet, mmFormer and DC-Seg, next to the
  paper's DC-Seg), measured minus paper, a bootstrap CI and paired Wilcoxon tests over test cases, and HD95;
- ``reports/table2.md``: the paper's Table 2 (DC-Seg with loss terms switched off);
- ``reports/figures/dice_heatmap.png`` and ``reports/figures/example_case.png`` (the layout of the paper's Fig. 2);
- ``reports/summary.json``: the headline numbers that ``dvc metrics`` and ``dvc exp show`` display.

Every input is read and checked, and every output rendered, before the first file is written: a bad input stops the
stage with a ``DataError`` / ``ConfigError`` that names the file or params key, and the previous reports stay as they
were. Input paths are relative to a working directory ``root`` (the repository when DVC runs the stage), so a test
can build one in a temporary folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from omegaconf import DictConfig, ListConfig, OmegaConf
from scipy import stats

from dcseg.checkpoint import data_fingerprint, load_model
from dcseg.config import ConfigError, params_hash, require, to_dict
from dcseg.data.brats import MODALITIES
from dcseg.data.errors import DataError
from dcseg.data.preprocess import load_case
from dcseg.hardware import memory_format
from dcseg.evaluation import CASE_COLUMNS, METRICS, settings_from_params
from dcseg.figures import LABEL_COLOURS, LABEL_NAMES, axial, core_slice, save_figure_atomic, show_gray, show_labels_on
from dcseg.inference import InferenceSettings, check_patch, predict_labels
from dcseg.io import write_text_atomic
from dcseg.losses import ABLATIONS, LossTerms
from dcseg.metrics import REGIONS, brats_regions, dice
from dcseg.runs import ABLATION_VARIANTS, Run
from dcseg.subsets import MODALITY_LABELS, SUBSETS, Subset, subset_by_name

PREPROCESSED = Path("data/preprocessed")
PAPER_TABLE1 = Path("paper/table1_brats2020.csv")
PAPER_TABLE2 = Path("paper/table2_ablation.csv")
REPORTS = Path("reports")

# Our runs and the paper's names for them, in the paper's column order.
METHODS = {"rfnet": "RFNet", "mmformer": "mmFormer", "dcseg": "DC-Seg"}
PAPER_TABLE1_METHODS = ("RobustSeg", "RFNet", "mmFormer", "M3AE", "DC-Seg")
# The paper's modality columns; our channels (MODALITIES) put T1ce before T1.
PAPER_MODALITY_ORDER = ("flair", "t1", "t1ce", "t2")
# Table 2's rows (every one an ablation run, "full" included, trained under the ablation schedule) and the variants
# compared against "full".
ABLATION_ROWS = ABLATION_VARIANTS
REMOVED_VARIANTS = tuple(v for v in ABLATION_VARIANTS if v != "full")
PAPER_TERMS = ("ana", "mod", "rec", "reg")
ET_COLUMNS = ("dice_post", "dice")
AVERAGE = "average"
ROWS = tuple(s.name for s in SUBSETS) + (AVERAGE,)
REGION_TITLES = {"WT": "Complete (WT)", "TC": "Core (TC)", "ET": "Enhancing (ET)"}
PRESENT, ABSENT = "●", "○"
# Names of LossTerms fields that Table 2 has no column for, for its caption.
TERM_NAMES = {"fuse": "the fused segmentation loss", "deep_supervision": "deep supervision"}


# --------------------------------------------------------------------------------------------------------------------
# Params


@dataclass(frozen=True)
class ReportSettings:
    et_column: str  # "dice_post" (ET after the small-ET removal, as the paper) or "dice" (raw)
    bootstrap_samples: int
    seed: int
    figure_case: str | None  # None: the test case with the largest tumour core
    figure_subsets: tuple[Subset, ...]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def report_settings(cfg: DictConfig) -> ReportSettings:
    """The ``report`` section of params.yaml, checked; a bad value fails with its key."""
    et_column = require(cfg, "report.et_column", ET_COLUMNS)
    samples = require(cfg, "report.bootstrap_samples")
    if not _is_int(samples) or samples < 1:
        raise ConfigError(f"params key 'report.bootstrap_samples' is {samples!r}; expected an int >= 1")
    seed = require(cfg, "report.seed")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"params key 'report.seed' is {seed!r}; expected an int >= 0")
    figure_case = require(cfg, "report.figure_case")
    if figure_case is not None and not isinstance(figure_case, str):
        raise ConfigError(f"params key 'report.figure_case' is {figure_case!r}; expected null or a case id")
    names = require(cfg, "report.figure_subsets")
    names = OmegaConf.to_container(names) if isinstance(names, ListConfig) else names
    if not isinstance(names, list) or not names:
        raise ConfigError(f"params key 'report.figure_subsets' is {names!r}; expected a non-empty list of subset names")
    try:
        subsets = tuple(subset_by_name(str(name)) for name in names)
    except KeyError as e:
        raise ConfigError(f"params key 'report.figure_subsets': {e.args[0]}") from e
    return ReportSettings(et_column, samples, seed, figure_case, subsets)


def report_params_hash(cfg: DictConfig, trainings: dict[str, dict]) -> str:
    """Hash of exactly the params the stage reads plus each run's training settings (from its train_summary.json):
    the stage declares only these params in dvc.yaml, so the hash changes exactly when the report's inputs do."""
    profile = require(cfg, "profile")
    read = {
        "data.source": require(cfg, "data.source"),
        "profile": profile,
        f"profiles.{profile}.evaluate": to_dict(require(cfg, f"profiles.{profile}.evaluate")),
        "report": to_dict(require(cfg, "report")),
    }
    for model in METHODS:
        key = f"profiles.{profile}.models.{model}.eval_patch"
        read[key] = require(cfg, key)
    return params_hash(read, {run: summary["settings"] for run, summary in trainings.items()})


# --------------------------------------------------------------------------------------------------------------------
# Inputs: each loader checks what the report relies on and names the file when something is off


def _read_json(path: Path, produced_by: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path} is missing; run `dvc repro {produced_by}` first")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); rerun `dvc repro {produced_by}`") from e
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _number_at(data: dict, keys: tuple[str, ...], path: Path) -> float:
    """``data[k0][k1]...`` as a finite float; anything else fails naming the file and the dotted key."""
    value = data
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: {'.'.join(keys)} is {value!r}; expected a finite number")
    return float(value)


def load_run_metrics(path: str | Path, run: Run) -> dict:
    """An evaluate stage's summary (``metrics/<run>.json``), checked for all 15 subsets x metrics x regions."""
    path = Path(path)
    data = _read_json(path, run.evaluate_stage)
    subsets = data.get("subsets")
    if not isinstance(subsets, dict):
        raise DataError(f"{path} has no 'subsets' object; expected the evaluate stage's summary")
    for subset in SUBSETS:
        if subset.name not in subsets:
            raise DataError(f"{path}: subset {subset.name!r} is missing from 'subsets'; expected all 15 subsets "
                            f"({', '.join(s.name for s in SUBSETS)})")
        for metric in METRICS:
            for region in REGIONS:
                _number_at(data, ("subsets", subset.name, metric, region), path)
    n_cases = data.get("n_cases")
    if not _is_int(n_cases) or n_cases < 1:
        raise DataError(f"{path}: n_cases is {n_cases!r}; expected a positive int")
    return data


def load_case_metrics(path: str | Path, run: Run) -> pd.DataFrame:
    """An evaluate stage's per-case CSV, checked: every case has each of the 15 subsets x 3 regions exactly once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; run `dvc repro {run.evaluate_stage}` first")
    try:
        cases = pd.read_csv(path, dtype={"case": str, "subset": str, "region": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    missing = [c for c in CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; expected {list(CASE_COLUMNS)}")
    for metric in METRICS:
        values = pd.to_numeric(cases[metric], errors="coerce")
        if values.isna().any():
            line = int(values.isna().to_numpy().argmax()) + 2  # +1 for the header, +1 for 1-based lines
            raise DataError(f"{path}: column {metric!r} has a missing or non-numeric value (line {line})")
        cases[metric] = values
    found = pd.MultiIndex.from_frame(cases[["case", "subset", "region"]])
    if found.has_duplicates:
        raise DataError(f"{path}: duplicate rows for {list(found[found.duplicated()][:3])}; expected one row per "
                        "case, subset and region")
    expected = pd.MultiIndex.from_product([sorted(cases["case"].unique()), [s.name for s in SUBSETS], list(REGIONS)])
    for problem, rows in (("lacks rows", expected.difference(found)), ("has unknown rows", found.difference(expected))):
        if len(rows):
            raise DataError(f"{path} {problem} (case, subset, region) {list(rows[:3])}"
                            f"{' ...' if len(rows) > 3 else ''}; expected every case x 15 subsets x {list(REGIONS)}")
    if cases.empty:
        raise DataError(f"{path} has no rows")
    return cases


def load_train_summary(path: str | Path, run: Run) -> dict:
    """A training stage's ``train_summary.json``, checked for what the report headers show."""
    path = Path(path)
    data = _read_json(path, run.train_stage)
    _number_at(data, ("steps",), path)
    _number_at(data, ("seconds_per_step",), path)
    settings = data.get("settings")
    if not isinstance(settings, dict):
        raise DataError(f"{path} has no 'settings' object; expected the training stage's summary")
    missing = [k for k in ("crop", "precision", "batch_size", "lr") if k not in settings]
    if missing:
        raise DataError(f"{path}: settings lack {missing}")
    return data


def load_manifest(path: str | Path) -> pd.DataFrame:
    """The preprocess stage's manifest (one row per case), checked for the ``case`` and ``split`` columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; run `dvc repro preprocess` first")
    manifest = pd.read_csv(path, dtype={"case": str, "split": str})
    missing = [c for c in ("case", "split") if c not in manifest.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; rerun the preprocess stage")
    return manifest


def _paper_row(flags: tuple[str, ...], path: Path, line: int) -> str:
    """A row of the paper's Table 1 CSV -> our row name: a subset name (flags in the paper's column order
    FLAIR, T1, T1ce, T2) or ``average`` (flags "avg")."""
    if all(f == "avg" for f in flags):
        return AVERAGE
    if not all(f in ("0", "1") for f in flags):
        raise DataError(f"{path} line {line}: modality flags {flags} must be 0/1 (or all 'avg')")
    present = {m for m, f in zip(PAPER_MODALITY_ORDER, flags) if f == "1"}
    if not present:
        raise DataError(f"{path} line {line}: no modality is present")
    return Subset(tuple(m for m in MODALITIES if m in present)).name


def load_paper_table1(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """The paper's Table 1 (Dice %): method -> row (subset name or ``average``) -> region -> value."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; expected the paper's Table 1 as CSV")
    table = pd.read_csv(path, dtype=str)
    columns = list(PAPER_MODALITY_ORDER) + ["region", "method", "dice"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; expected {columns}")
    values: dict[str, dict[str, dict[str, float]]] = {}
    for index, record in table.iterrows():
        line = int(index) + 2
        method, region = record["method"], record["region"]
        if method not in PAPER_TABLE1_METHODS:
            raise DataError(f"{path} line {line}: unknown method {method!r}; expected one of {PAPER_TABLE1_METHODS}")
        if region not in REGIONS:
            raise DataError(f"{path} line {line}: unknown region {region!r}; expected one of {REGIONS}")
        try:
            value = float(record["dice"])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{path} line {line}: dice {record['dice']!r} is not a number")
        row = _paper_row(tuple(record[m] for m in PAPER_MODALITY_ORDER), path, line)
        cells = values.setdefault(method, {}).setdefault(row, {})
        if region in cells:
            raise DataError(f"{path} line {line}: a second {method} {region} value for {row}")
        cells[region] = value
    for method in METHODS.values():
        if method not in values:
            raise DataError(f"{path} has no rows for {method}; expected one per subset, region and the average")
    for method, rows in values.items():
        gaps = [(row, r) for row in ROWS for r in REGIONS if r not in rows.get(row, {})]
        if gaps:
            raise DataError(f"{path}: {method} lacks (row, region) {gaps[:3]}{' ...' if len(gaps) > 3 else ''}; "
                            "expected the 15 subsets and the average, each for WT, TC and ET")
    return values


def load_paper_table2(path: str | Path) -> dict[str, dict[str, float]]:
    """The paper's Table 2 (Dice %, 15-subset averages): variant -> region -> value. Its term flags must agree with
    ``dcseg.losses.ABLATIONS``, which the benchmark trains."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; expected the paper's Table 2 as CSV")
    table = pd.read_csv(path, dtype=str)
    columns = ["variant", *PAPER_TERMS, *REGIONS]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; expected {columns}")
    values: dict[str, dict[str, float]] = {}
    for index, record in table.iterrows():
        line, variant = int(index) + 2, record["variant"]
        if variant not in ABLATIONS:
            raise DataError(f"{path} line {line}: unknown variant {variant!r}; expected one of {tuple(ABLATIONS)}")
        if variant in values:
            raise DataError(f"{path} line {line}: a second row for {variant!r}")
        for term in PAPER_TERMS:
            if record[term] != str(int(getattr(ABLATIONS[variant], term))):
                raise DataError(f"{path} line {line}: {variant} has {term}={record[term]!r} but dcseg.losses.ABLATIONS "
                                f"has {term}={getattr(ABLATIONS[variant], term)}; one of them is wrong")
        try:
            values[variant] = {r: float(record[r]) for r in REGIONS}
        except (TypeError, ValueError) as e:
            raise DataError(f"{path} line {line}: a Dice value is not a number ({e})") from e
    absent = [v for v in ABLATION_ROWS if v not in values]
    if absent:
        raise DataError(f"{path} lacks variant(s) {absent}")
    return values


# --------------------------------------------------------------------------------------------------------------------
# Tables and statistics


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


def _check_same_cases(per_case: dict[str, pd.DataFrame], files: dict[str, Path]) -> None:
    """Paired tests compare the same cases: every run must have been evaluated on the same test cases."""
    names = list(per_case)
    reference = per_case[names[0]].index
    for name in names[1:]:
        if not per_case[name].index.equals(reference):
            differing = sorted(set(reference).symmetric_difference(per_case[name].index))
            raise DataError(f"{files[name]} and {files[names[0]]} cover different test cases (e.g. {differing[:3]}); "
                            "rerun the evaluate stages on the same data")


# --------------------------------------------------------------------------------------------------------------------
# Markdown


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
    others = [f.name for f in dataclasses.fields(LossTerms) if f.name not in PAPER_TERMS]
    return PAPER_TERMS + tuple(t for t in others if not all(getattr(ABLATIONS[v], t) for v in ABLATION_ROWS))


def render_table2(provenance: Provenance, trainings: dict[str, dict], measured: dict[str, dict[str, float]],
                  paper: dict[str, dict[str, float]], tests: dict[str, dict[str, PairedTest]]) -> str:
    """Table 2 markdown. ``measured`` / ``paper``: variant -> region -> 15-subset average Dice (%); ``tests``:
    variant -> region -> the variant vs full."""
    terms = ablation_term_columns()
    always_on = [TERM_NAMES.get(f.name, f.name) for f in dataclasses.fields(LossTerms) if f.name not in terms]
    lines = _header("Table 2: ablation of DC-Seg's loss terms (DC-Seg paper, MICCAI 2025, Table 2)", provenance,
                    trainings)
    lines += ["## 15-subset average Dice (%)", "",
              "✓ term on, ✗ off (dcseg/losses.py ABLATIONS). Ana / Mod: anatomical / modality contrastive loss, "
              "Rec: reconstruction, Reg: segmentation-based regulariser; "
              f"{' and '.join(always_on)} are on in every variant. "
              "Every row, full included, is its own training run under the profile's ablation schedule (see the "
              "header for its steps), so the rows compare like with like; the main DC-Seg run of Table 1 may be "
              "trained longer. The best measured value per region is **bold**.", ""]
    header = ["variant"] + [t.replace("_", " ").capitalize() for t in terms] + list(REGIONS) + \
        [f"{r} (paper)" for r in REGIONS]
    best = {r: best_keys({v: measured[v][r] for v in ABLATION_ROWS}, 2) for r in REGIONS}
    rows = [[variant] + ["✓" if getattr(ABLATIONS[variant], t) else "✗" for t in terms]
            + [_cell(measured[variant][r], 2, variant in best[r]) for r in REGIONS]
            + [_cell(paper[variant][r], 2) for r in REGIONS]
            for variant in ABLATION_ROWS]
    lines += [markdown_table(header, rows, ["l"] + ["c"] * len(terms) + ["r"] * 6), ""]

    lines += ["## Change from removing the component (variant minus full)", "",
              "In percentage points: measured, and the paper's for comparison. Then a paired Wilcoxon signed-rank test "
              "(two-sided) of each case's 15-subset average Dice, variant vs full.", ""]
    rows = []
    for variant in REMOVED_VARIANTS:
        removed = ", ".join(t for t in terms if not getattr(ABLATIONS[variant], t))
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


# --------------------------------------------------------------------------------------------------------------------
# Figures


def plot_dice_heatmap(tables: dict[str, dict[str, dict[str, float]]], et_column: str) -> Figure:
    """Dice (%) of each subset (rows, paper order) and method (columns), one panel per region.
    ``tables``: method label -> ``dice_table`` (its ET from ``et_column``, named in the title)."""
    methods = list(tables)
    fig, axes = plt.subplots(1, len(REGIONS), figsize=(2.2 + 1.3 * len(methods) * len(REGIONS), 6.6),
                             sharey=True, constrained_layout=True)
    for ax, region in zip(axes, REGIONS):
        grid = np.array([[tables[m][s.name][region] for m in methods] for s in SUBSETS])
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            # dark text on the bright (high) end of viridis, light text on the dark end
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if value >= 60 else "white")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(REGION_TITLES[region])
    axes[0].set_yticks(range(len(SUBSETS)), [s.label for s in SUBSETS])
    fig.colorbar(image, ax=axes, label="Dice (%)", shrink=0.8)
    fig.suptitle(f"Dice (%) per modality subset, mean over test cases (ET column: {et_column})")
    return fig


# the dvclive series the training-curve figure draws, relative to a run's log folder (dcseg.training logs them)
EPOCH_LOSS = Path("live/plots/metrics/epoch/loss.tsv")


def load_epoch_losses(log_dir: str | Path, run: Run) -> pd.DataFrame:
    """A run's logged epoch losses (columns ``step``, ``loss``), checked."""
    path = Path(log_dir) / EPOCH_LOSS
    if not path.is_file():
        raise DataError(f"{path} is missing; rerun `dvc repro {run.train_stage}`")
    try:
        curve = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path} is not a dvclive series ({e}); rerun `dvc repro {run.train_stage}`") from e
    if list(curve.columns) != ["step", "loss"] or curve.empty:
        raise DataError(f"{path} has columns {list(curve.columns)} and {len(curve)} rows; expected step and loss")
    return curve


def plot_training_curves(main: dict[str, pd.DataFrame], ablation: dict[str, pd.DataFrame]) -> Figure:
    """The epoch loss of every run against its step: the main runs, and DC-Seg's Table 2 variants."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for ax, curves, title in ((axes[0], main, "Table 1 runs"), (axes[1], ablation, "Table 2 runs (DC-Seg variants)")):
        for name, curve in curves.items():
            ax.plot(curve["step"], curve["loss"], label=name, linewidth=1.4)
        ax.set_xlabel("training step")
        ax.set_ylabel("epoch loss (mean over the epoch's steps)")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Training loss per epoch (logs/<run>/live, dvclive); each model's own total loss, so compare "
                 "shapes, not levels, across models", fontsize=10)
    return fig


def _case_dice(prediction: np.ndarray, label: np.ndarray) -> str:
    """Raw Dice (%) of one prediction over the whole volume, per region, for a panel title."""
    predicted, truth = brats_regions(prediction), brats_regions(label)
    return " ".join(f"{r} {100 * dice(predicted[r], truth[r]):.0f}" for r in REGIONS)


def plot_example_case(image: np.ndarray, label: np.ndarray, predictions: dict[str, np.ndarray],
                      subsets: tuple[Subset, ...], case: str, slice_index: int | None = None) -> Figure:
    """The paper's Fig. 2 layout for one case: row 1 the four inputs (paper order) and the ground truth on FLAIR;
    then per method its prediction on FLAIR under each of ``subsets``. ``image [4, X, Y, Z]`` in MODALITIES order,
    ``label`` and ``predictions[method] [len(subsets), X, Y, Z]`` in {0, 1, 2, 3}."""
    z = core_slice(label) if slice_index is None else slice_index
    n_columns = max(len(PAPER_MODALITY_ORDER) + 1, len(subsets))
    fig, axes = plt.subplots(1 + len(predictions), n_columns, squeeze=False,
                             figsize=(2.3 * n_columns, 2.5 * (1 + len(predictions)) + 0.6))
    flair = axial(image[MODALITIES.index("flair")], z)
    for ax, modality in zip(axes[0], PAPER_MODALITY_ORDER):
        show_gray(ax, axial(image[MODALITIES.index(modality)], z))
        ax.set_title(MODALITY_LABELS[modality])
    show_labels_on(axes[0, len(PAPER_MODALITY_ORDER)], flair, axial(label, z))
    axes[0, len(PAPER_MODALITY_ORDER)].set_title("ground truth")
    for row, (method, labels) in enumerate(predictions.items(), start=1):
        for column, subset in enumerate(subsets):
            show_labels_on(axes[row, column], flair, axial(labels[column], z))
            axes[row, column].set_title(f"{subset.label}\n{_case_dice(labels[column], label)}", fontsize=8)
        axes[row, 0].set_ylabel(method, fontsize=11)
    used = {(0, c) for c in range(len(PAPER_MODALITY_ORDER) + 1)}
    used |= {(r, c) for r in range(1, 1 + len(predictions)) for c in range(len(subsets))}
    for (r, c), ax in np.ndenumerate(axes):
        if (r, c) not in used:
            ax.set_visible(False)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    legend = [Patch(color=LABEL_COLOURS.colors[k], label=LABEL_NAMES[k]) for k in (1, 2, 3)]
    fig.legend(handles=legend, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(f"{case}, axial slice {z}: predictions on FLAIR per available-modality subset "
                 "(titles: this case's raw Dice %)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def choose_example_case(manifest: pd.DataFrame, figure_case: str | None, manifest_path: Path) -> str:
    """``figure_case`` (checked to be a test case), or the test case with the largest tumour core (NCR + ET voxels),
    among those with an enhancing tumour when any has one (the figure should show all three labels)."""
    test = manifest[manifest["split"] == "test"]
    if test.empty:
        raise DataError(f"{manifest_path} has no test cases")
    if figure_case is not None:
        if figure_case not in set(test["case"]):
            raise ConfigError(f"params key 'report.figure_case' is {figure_case!r}, not a test case of "
                              f"{manifest_path}; expected null or one of {sorted(test['case'])}")
        return figure_case
    missing = [c for c in ("n_ncr_net", "n_enhancing") if c not in manifest.columns]
    if missing:
        raise DataError(f"{manifest_path} lacks column(s) {missing} to find the largest tumour core; rerun the "
                        "preprocess stage or set report.figure_case")
    if (test["n_enhancing"] > 0).any():
        test = test[test["n_enhancing"] > 0]
    core = (test["n_ncr_net"] + test["n_enhancing"]).to_numpy()
    return str(test["case"].to_numpy()[int(core.argmax())])


def load_example_models(cfg: DictConfig, root: Path
                        ) -> tuple[dict[str, tuple[torch.nn.Module, InferenceSettings]], torch.device]:
    """The three trained models (checked against the preprocessed data) with their evaluation settings, on the
    evaluation's device (``profiles.<p>.evaluate.device``)."""
    data_hash = data_fingerprint(root / PREPROCESSED)
    models = {}
    for model_name in METHODS:
        settings, _, device, _ = settings_from_params(cfg, model_name, warn=not models)
        run = Run(model_name)
        model, _ = load_model(root / run.model_dir / "model.pt", expected={**run.identity(), "data_hash": data_hash})
        try:
            check_patch(model, settings.patch)
        except ValueError as e:
            raise ConfigError(f"profiles.{cfg.profile}.models.{model_name}.eval_patch: {e}") from e
        models[model_name] = (model.to(device=device, memory_format=memory_format(settings.channels_last)), settings)
    return models, device


def predict_example_case(models: dict[str, tuple[torch.nn.Module, InferenceSettings]], image: np.ndarray,
                         subsets: tuple[Subset, ...], device: torch.device) -> dict[str, np.ndarray]:
    """Method label -> label maps ``[len(subsets), X, Y, Z]`` of one case."""
    masks = [s.mask for s in subsets]
    image = np.array(image)  # a memory map -> an in-memory array, read once for all models
    with torch.no_grad():
        return {METHODS[name]: predict_labels(model, image, settings, masks, device).numpy()
                for name, (model, settings) in models.items()}


# --------------------------------------------------------------------------------------------------------------------
# The whole report


@dataclass
class Report:
    """Rendered outputs, paths relative to the reports folder: nothing is on disk until ``write_report``."""

    texts: dict[Path, str]
    figures: dict[Path, Figure]


def build_report(cfg: DictConfig, root: str | Path = ".", with_example_case: bool = True) -> Report:
    """Read and check every input under ``root``, compute the tables and statistics and render every output.
    ``with_example_case=False`` skips example_case.png (it needs the trained models and the preprocessed images)."""
    root = Path(root)
    settings = report_settings(cfg)
    profile = require(cfg, "profile")
    et_min_volume = require(cfg, f"profiles.{profile}.evaluate.et_min_volume_mm3")

    main_runs = {name: Run(name) for name in METHODS}
    ablation_runs = {v: Run("dcseg", v) for v in ABLATION_ROWS}
    runs = {run.name: run for run in [*main_runs.values(), *ablation_runs.values()]}
    metrics = {name: load_run_metrics(root / run.metrics_json, run) for name, run in runs.items()}
    cases_files = {name: root / run.cases_csv for name, run in runs.items()}
    cases = {name: load_case_metrics(cases_files[name], run) for name, run in runs.items()}
    trainings = {name: load_train_summary(root / run.train_summary, run)
                 for name, run in runs.items()}
    paper1 = load_paper_table1(root / PAPER_TABLE1)
    paper2 = load_paper_table2(root / PAPER_TABLE2)
    manifest_path = root / PREPROCESSED / "manifest.csv"
    manifest = load_manifest(manifest_path)

    for name in runs:
        n_csv = cases[name]["case"].nunique()
        if metrics[name]["n_cases"] != n_csv:
            raise DataError(f"{root / runs[name].metrics_json} says n_cases {metrics[name]['n_cases']} but "
                            f"{cases_files[name]} has {n_csv} cases; rerun `dvc repro {runs[name].evaluate_stage}`")
    per_case = {name: per_case_average(cases[name], settings.et_column) for name in runs}
    _check_same_cases(per_case, cases_files)

    dice = {name: dice_table(metrics[name], settings.et_column) for name in runs}
    statistics = {name: method_statistics(per_case[name], settings.bootstrap_samples, settings.seed)
                  for name in METHODS}
    dcseg_cases = per_case["dcseg"]
    main_tests = {other: {r: paired_wilcoxon(dcseg_cases[r], per_case[other][r]) for r in REGIONS}
                  for other in METHODS if other != "dcseg"}
    ablation = {v: dice[ablation_runs[v].name][AVERAGE] for v in ABLATION_ROWS}
    full_cases = per_case[ablation_runs["full"].name]
    ablation_tests = {v: {r: paired_wilcoxon(per_case[ablation_runs[v].name][r], full_cases[r]) for r in REGIONS}
                      for v in REMOVED_VARIANTS}

    provenance = Provenance(
        data_source=str(require(cfg, "data.source")), split_counts=split_counts(manifest),
        voxel_size=voxel_size(manifest), profile=str(profile), commit=describe_commit(root),
        params_hash=report_params_hash(cfg, trainings), et_column=settings.et_column,
        et_min_volume_mm3=float(et_min_volume), n_test_cases=len(dcseg_cases),
        evaluation_hardware=evaluation_hardware(metrics))
    main_trainings = {name: trainings[name] for name in METHODS}
    ablation_trainings = {ablation_runs[v].name: trainings[ablation_runs[v].name] for v in ABLATION_ROWS}
    texts = {
        Path("table1.md"): render_table1(provenance, main_trainings, {n: dice[n] for n in METHODS},
                                         {n: hd95_table(metrics[n]) for n in METHODS}, paper1, statistics,
                                         main_tests, settings),
        Path("table2.md"): render_table2(provenance, ablation_trainings, ablation, paper2, ablation_tests),
        Path("summary.json"): json.dumps(summary_metrics(provenance, statistics, ablation), indent=2) + "\n",
    }

    example = None
    if with_example_case:  # inference before any figure exists: a failure here leaves no open figure behind
        case = choose_example_case(manifest, settings.figure_case, manifest_path)
        image, label = load_case(root / PREPROCESSED, case)
        models, device = load_example_models(cfg, root)
        example = (image, np.asarray(label), predict_example_case(models, image, settings.figure_subsets, device), case)

    curves = {name: load_epoch_losses(root / run.log_dir, run) for name, run in runs.items()}
    figures = {Path("figures/dice_heatmap.png"): plot_dice_heatmap({METHODS[n]: dice[n] for n in METHODS},
                                                                      settings.et_column),
               Path("figures/training_curves.png"): plot_training_curves(
                   {METHODS[n]: curves[n] for n in METHODS},
                   {v: curves[ablation_runs[v].name] for v in ABLATION_ROWS})}
    if example is not None:
        image, label, predictions, case = example
        figures[Path("figures/example_case.png")] = plot_example_case(image, label, predictions,
                                                                      settings.figure_subsets, case)
    return Report(texts, figures)


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write every output through a temp file + rename; returns the paths written."""
    out_dir = Path(out_dir)
    written = []
    for relative, text in report.texts.items():
        write_text_atomic(out_dir / relative, text)
        written.append(out_dir / relative)
    for relative, figure in report.figures.items():
        save_figure_atomic(figure, out_dir / relative)
        written.append(out_dir / relative)
    return written


def run_report(cfg: DictConfig, root: str | Path = ".", out_dir: str | Path | None = None,
               with_example_case: bool = True) -> list[Path]:
    """Build the whole report from the inputs under ``root``, then write it to ``out_dir`` (default
    ``root/reports``)."""
    report = build_report(cfg, root, with_example_case)
    return write_report(report, Path(root) / REPORTS if out_dir is None else out_dir)


__all__ = ["ABLATION_ROWS", "AVERAGE", "METHODS", "PairedTest", "Provenance", "Report", "ReportSettings", "ROWS",
           "best_keys", "bootstrap_ci", "build_report", "choose_example_case", "describe_commit",
           "dice_table", "hd95_table", "load_case_metrics", "load_manifest", "load_paper_table1",
           "load_paper_table2", "load_run_metrics", "load_train_summary", "markdown_table", "method_statistics",
           "paired_wilcoxon", "per_case_average", "plot_dice_heatmap", "plot_example_case", "predict_example_case",
           "render_table1", "render_table2", "report_params_hash", "report_settings", "run_report",
           "summary_metrics", "write_report"]
