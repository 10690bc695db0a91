"""The whole report: read and check every input, compute the statistics, render every table and figure, and only
then write them, so that a bad input leaves the previous reports as they were."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
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
from dcseg.experiments import FULL, VARIANT_MODEL
from dcseg.report.inputs import (PAPER_TABLE1, PAPER_TABLE2, PREPROCESSED, convergence_row, load_case_metrics,
                                 load_epoch_losses, load_manifest, load_paper_table1, load_paper_table2,
                                 load_run_metrics, load_train_summary, report_params_hash, report_settings)
from dcseg.report.layout import METHODS, REMOVED_VARIANTS
from dcseg.report.statistics import (check_same_cases, compare_groups, dice_table, group_statistics, hd95_table,
                                     per_case_average)
from dcseg.report.tables import (Provenance, describe_commit, evaluation_hardware, render_table1, render_table2,
                                 split_counts, statistics_record, summary_metrics, voxel_size)
from dcseg.runs import Run, matrix_runs

REPORTS = Path("reports")


@dataclass
class Report:
    """Rendered outputs, paths relative to the reports folder: nothing is on disk until ``write_report``."""

    texts: dict[Path, str]
    figures: dict[Path, Figure]


def _seed_mean(tables: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The mean over a group's seeds of per-row, per-region tables (``dice_table`` / ``hd95_table``)."""
    return {row: {r: float(np.mean([t[row][r] for t in tables])) for r in REGIONS} for row in tables[0]}


def build_report(cfg: DictConfig, root: str | Path = ".", with_example_case: bool = True) -> Report:
    """Read and check every input under ``root``, compute the tables and statistics and render every output.
    ``with_example_case=False`` skips example_case.png (it needs the trained models and the preprocessed images)."""
    root = Path(root)
    settings = report_settings(cfg)
    profile = require(cfg, "profile")
    et_min_volume = require(cfg, f"profiles.{profile}.evaluate.et_min_volume_mm3")

    # the matrix under params.yaml's seeds; a table row is a group of runs, one per seed
    runs = {run.name: run for run in matrix_runs(cfg)}
    main_groups = {model: {run.seed: run for run in runs.values() if run.model == model and not run.is_ablation}
                   for model in METHODS}
    # Table 2's rows: full, then every variant trained under at least one seed (`seeds.ablation: []` trains none)
    ablation_groups = {FULL: main_groups[VARIANT_MODEL],
                       **{v: group for v in REMOVED_VARIANTS
                          if (group := {run.seed: run for run in runs.values() if run.variant == v})}}
    metrics = {name: load_run_metrics(root / run.metrics_json, run) for name, run in runs.items()}
    cases_files = {name: root / run.cases_csv for name, run in runs.items()}
    cases = {name: load_case_metrics(cases_files[name], run) for name, run in runs.items()}
    trainings = {name: load_train_summary(root / run.train_summary, run) for name, run in runs.items()}
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

    def grouped(group: dict[int, Run]) -> dict[int, pd.DataFrame]:
        return {seed: per_case[run.name] for seed, run in group.items()}

    main_cases = {model: grouped(group) for model, group in main_groups.items()}
    ablation_cases = {variant: grouped(group) for variant, group in ablation_groups.items()}
    samples, seed = settings.bootstrap_samples, settings.seed
    main_statistics = {m: group_statistics(main_cases[m], samples, seed) for m in METHODS}
    ablation_statistics = {v: group_statistics(ablation_cases[v], samples, seed) for v in ablation_groups}
    main_comparisons = compare_groups([(VARIANT_MODEL, other) for other in METHODS if other != VARIANT_MODEL],
                                      main_cases, main_statistics)
    ablation_comparisons = compare_groups([(v, FULL) for v in ablation_groups if v != FULL], ablation_cases,
                                          ablation_statistics)
    dice = {m: _seed_mean([dice_table(metrics[run.name], settings.et_column) for run in group.values()])
            for m, group in main_groups.items()}
    hd95 = {m: _seed_mean([hd95_table(metrics[run.name]) for run in group.values()]) for m, group in main_groups.items()}
    convergence = {name: convergence_row(trainings[name], run) for name, run in runs.items()}

    provenance = Provenance(
        data_source=str(require(cfg, "data.source")), split_counts=split_counts(manifest),
        voxel_size=voxel_size(manifest), profile=str(profile), commit=describe_commit(root),
        params_hash=report_params_hash(cfg, trainings), et_column=settings.et_column,
        et_min_volume_mm3=float(et_min_volume), n_test_cases=len(per_case[next(iter(runs))]),
        evaluation_hardware=evaluation_hardware(metrics))
    main_names = [run.name for group in main_groups.values() for run in group.values()]
    table2_names = [run.name for group in ablation_groups.values() for run in group.values()]
    texts = {
        Path("table1.md"): render_table1(provenance, {n: trainings[n] for n in main_names}, dice, hd95, paper1,
                                         main_statistics, main_comparisons,
                                         {n: convergence[n] for n in main_names}, settings),
        Path("table2.md"): render_table2(provenance, {n: trainings[n] for n in table2_names}, ablation_statistics,
                                         paper2, ablation_comparisons, {n: convergence[n] for n in table2_names},
                                         settings),
    }
    statistics_json = statistics_record(provenance, main_statistics, main_comparisons, ablation_statistics,
                                        ablation_comparisons, convergence)
    texts[Path("summary.json")] = json.dumps(summary_metrics(statistics_json), indent=2) + "\n"
    texts[Path("statistics.json")] = json.dumps(statistics_json, indent=2) + "\n"

    example = None
    if with_example_case:  # inference before any figure exists: a failure here leaves no open figure behind
        case = choose_example_case(manifest, settings.figure_case, manifest_path)
        image, label = load_case(root / PREPROCESSED, case)
        models, device = load_example_models(cfg, root)
        example = (image, np.asarray(label), predict_example_case(models, image, settings.figure_subsets, device), case)

    losses = {name: load_epoch_losses(root / run.log_dir, run) for name, run in runs.items()}

    def curves(groups: dict[str, dict[int, Run]], labels: dict[str, str]) -> dict:
        return {labels[key]: {seed: (losses[run.name], trainings[run.name]["validation"]["curve"])
                              for seed, run in group.items()} for key, group in groups.items()}

    figures = {Path("figures/dice_heatmap.png"): plot_dice_heatmap({METHODS[n]: dice[n] for n in METHODS},
                                                                      settings.et_column),
               Path("figures/training_curves.png"): plot_training_curves(
                   curves(main_groups, METHODS), curves(ablation_groups, {v: v for v in ablation_groups}),
                   trainings[main_names[0]]["validation"])}
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
