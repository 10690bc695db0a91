"""The whole report: read and check every input, compute the statistics, render every table and figure, and only
then write them, so that a bad input leaves the previous reports as they were."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig

from dcseg.config import require
from dcseg.data.errors import DataError
from dcseg.data.manifest import MANIFEST
from dcseg.data.preprocess import load_case
from dcseg.figures import save_figure_atomic
from dcseg.io import write_text_atomic
from dcseg.metrics import REGIONS
from dcseg.report.example import choose_example_case, load_example_models, predict_example_case
from dcseg.report.figures import plot_dice_heatmap, plot_example_case, plot_training_curves
from dcseg.report.inputs import (PAPER_TABLE1, PAPER_TABLE2, PREPROCESSED, load_case_metrics, load_epoch_losses,
                                 load_manifest, load_paper_table1, load_paper_table2, load_run_metrics,
                                 load_train_summary, report_params_hash, report_settings)
from dcseg.report.layout import ABLATION_ROWS, AVERAGE, METHODS, REMOVED_VARIANTS
from dcseg.report.statistics import (check_same_cases, dice_table, hd95_table, method_statistics, paired_wilcoxon,
                                     per_case_average)
from dcseg.report.tables import (Provenance, describe_commit, evaluation_hardware, render_table1, render_table2,
                                 split_counts, summary_metrics, voxel_size)
from dcseg.runs import Run

REPORTS = Path("reports")


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
    manifest_path = root / PREPROCESSED / MANIFEST
    manifest = load_manifest(root / PREPROCESSED)

    for name in runs:
        n_csv = cases[name]["case"].nunique()
        if metrics[name]["n_cases"] != n_csv:
            raise DataError(f"{root / runs[name].metrics_json} says n_cases {metrics[name]['n_cases']} but "
                            f"{cases_files[name]} has {n_csv} cases; rerun `dvc repro {runs[name].evaluate_stage}`")
    per_case = {name: per_case_average(cases[name], settings.et_column) for name in runs}
    check_same_cases(per_case, cases_files)

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
