"""The report's inputs, each read and checked before anything is computed: the ``report`` params, the evaluate
stages' summaries and per-case CSVs, the training summaries and loss curves, the manifest and the paper's tables.
A loader fails with a one-line ``DataError`` / ``ConfigError`` that names the file (and line) or the params key."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from dcseg import validate
from dcseg.config import ConfigError, params_hash, require, to_dict
from dcseg.convergence import MEAN, TRENDS
from dcseg.data.brats import MODALITIES
from dcseg.data.errors import DataError
from dcseg.data.manifest import read_manifest
from dcseg.experiments import VARIANTS, term_on
from dcseg.metrics import CASE_COLUMNS, METRICS, REGIONS
from dcseg.report.layout import (ABLATION_ROWS, AVERAGE, METHODS, PAPER_MODALITY_ORDER, PAPER_TABLE1_METHODS,
                                 PAPER_TERMS, ROWS)
from dcseg.runs import Run
from dcseg.subsets import SUBSETS, Subset, subset_by_name

PREPROCESSED = Path("data/preprocessed")
PAPER_TABLE1 = Path("paper/table1_brats2020.csv")
PAPER_TABLE2 = Path("paper/table2_ablation.csv")
ET_COLUMNS = ("dice_post", "dice")


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
    et_column = validate.choice("report.et_column", require(cfg, "report.et_column"), ET_COLUMNS)
    samples = validate.positive_int("report.bootstrap_samples", require(cfg, "report.bootstrap_samples"))
    seed = validate.non_negative_int("report.seed", require(cfg, "report.seed"))
    figure_case = require(cfg, "report.figure_case")
    if figure_case is not None:
        validate.text("report.figure_case", figure_case)
    names = require(cfg, "report.figure_subsets")
    names = OmegaConf.to_container(names) if isinstance(names, ListConfig) else names
    if not isinstance(names, list) or not names:
        validate.fail("report.figure_subsets", names, "a non-empty list of subset names")
    try:
        subsets = tuple(subset_by_name(str(name)) for name in names)
    except KeyError as e:
        raise ConfigError(f"report.figure_subsets: {e.args[0]}") from e
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
        "seeds": to_dict(require(cfg, "seeds")),
    }
    for model in METHODS:
        key = f"profiles.{profile}.models.{model}.eval_patch"
        read[key] = require(cfg, key)
    return params_hash(read, {run: summary["settings"] for run, summary in trainings.items()})


# --------------------------------------------------------------------------------------------------------------------
# Files: each loader checks what the report relies on and names the file when something is off


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
    validation = data.get("validation")
    if not isinstance(validation, dict) or not isinstance(validation.get("curve"), list) \
            or validation.get("trend") not in TRENDS:
        raise DataError(f"{path} has no validation record (curve and trend); it predates the validation scoring: "
                        f"rerun `dvc repro {run.train_stage}`")
    for row in validation["curve"]:
        if not isinstance(row, dict) or "step" not in row or MEAN not in row:
            raise DataError(f"{path}: validation curve entry {row!r} lacks 'step' or {MEAN!r}")
    return data


def convergence_row(summary: dict, run: Run) -> dict:
    """What the tables show of a run's validation curve: the best and the last point (step, mean Dice %) and the
    convergence rule's verdict (``dcseg.convergence.trend``)."""
    validation = summary["validation"]

    def point(entry):
        return None if entry is None else {"step": int(entry["step"]), "dice": 100 * float(entry[MEAN])}

    return {"run": run.name, "steps": int(summary["steps"]), "every": validation.get("every"),
            "subsets": validation.get("subsets"), "best": point(validation.get("best")),
            "last": point(validation.get("last")), "trend": validation["trend"]}


def load_manifest(preprocessed_dir: str | Path) -> pd.DataFrame:
    """The preprocess stage's manifest (one row per case), checked for the ``case`` and ``split`` columns."""
    return read_manifest(preprocessed_dir, ("case", "split"))


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
    ``dcseg.experiments.VARIANTS``, which the benchmark trains."""
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
        if variant not in VARIANTS:
            raise DataError(f"{path} line {line}: unknown variant {variant!r}; expected one of {tuple(VARIANTS)}")
        if variant in values:
            raise DataError(f"{path} line {line}: a second row for {variant!r}")
        for term in PAPER_TERMS:
            if record[term] != str(int(term_on(variant, term))):
                raise DataError(f"{path} line {line}: {variant} has {term}={record[term]!r} but dcseg.experiments "
                                f"has {term}={term_on(variant, term)}; one of them is wrong")
        try:
            values[variant] = {r: float(record[r]) for r in REGIONS}
        except (TypeError, ValueError) as e:
            raise DataError(f"{path} line {line}: a Dice value is not a number ({e})") from e
    absent = [v for v in ABLATION_ROWS if v not in values]
    if absent:
        raise DataError(f"{path} lacks variant(s) {absent}")
    return values


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
