"""Reports a reviewer holds against the DC-Seg paper (Li et al., MICCAI 2025).

- ``reports/table1.md``: the paper's Table 1 (Dice per modality subset for RFNet, mmFormer and DC-Seg, each the mean
  over its training seeds, next to the paper's DC-Seg), measured minus paper, mean ± seed SD with a hierarchical
  bootstrap CI, every DC-Seg vs baseline difference labelled significant or within noise (Wilcoxon + Holm + seed
  SD), the convergence of every run, and HD95;
- ``reports/table2.md``: the paper's Table 2 (DC-Seg with loss terms switched off; full = Table 1's DC-Seg), with the
  same statistics;
- ``reports/figures/dice_heatmap.png``, ``reports/figures/training_curves.png`` and
  ``reports/figures/example_case.png`` (the layout of the paper's Fig. 2);
- ``reports/summary.json``: the headline numbers that ``dvc metrics`` and ``dvc exp show`` display;
  ``reports/statistics.json``: every number of the tables' statistics (per seed, min–max, p, Holm p, labels).

One module per step, so that each can be read on its own: ``inputs`` (read and check), ``statistics`` (the numbers,
no torch), ``tables`` (markdown and provenance), ``figures`` (drawing), ``example`` (the trained models' predictions
for the example figure: the only module that imports torch) and ``build`` (all of them in order); ``layout`` names
the runs, rows and column orders they share.

Every input is read and checked, and every output rendered, before the first file is written: a bad input stops the
stage with a ``DataError`` / ``ConfigError`` that names the file or params key, and the previous reports stay as they
were. Input paths are relative to a working directory ``root`` (the repository when DVC runs the stage), so a test
can build one in a temporary folder.
"""

from dcseg.report.figures import plot_dice_heatmap, plot_example_case
from dcseg.report.inputs import (ReportSettings, load_case_metrics, load_manifest, load_paper_table1,
                                 load_paper_table2, load_run_metrics, load_train_summary, report_params_hash,
                                 report_settings)
from dcseg.report.layout import ABLATION_ROWS, AVERAGE, METHODS, PAPER_TABLE1_METHODS, ROWS
from dcseg.report.statistics import (Comparison, GroupStatistics, PairedTest, bootstrap_ci, compare_groups,
                                     dice_table, group_statistics, hd95_table, hierarchical_bootstrap_ci, holm,
                                     label_difference, paired_wilcoxon, per_case_average)
from dcseg.report.tables import (Provenance, best_keys, describe_commit, markdown_table, render_table1,
                                 render_table2, statistics_record, summary_metrics)

__all__ = ["ABLATION_ROWS", "AVERAGE", "METHODS", "PAPER_TABLE1_METHODS", "Comparison", "GroupStatistics",
           "PairedTest", "Provenance", "Report", "compare_groups", "group_statistics", "hierarchical_bootstrap_ci",
           "holm", "label_difference", "statistics_record",
           "ReportSettings", "ROWS", "best_keys", "bootstrap_ci", "build_report", "choose_example_case",
           "describe_commit", "dice_table", "hd95_table", "load_case_metrics", "load_manifest", "load_paper_table1",
           "load_paper_table2", "load_run_metrics", "load_train_summary", "markdown_table",
           "paired_wilcoxon", "per_case_average", "plot_dice_heatmap", "plot_example_case", "predict_example_case",
           "render_table1", "render_table2", "report_params_hash", "report_settings", "run_report",
           "summary_metrics", "write_report"]

# The orchestration and the example figure's inference import torch: they load on first use, so that importing the
# statistics or the tables (``import dcseg.report.statistics``) never does.
_LAZY = {"Report": "build", "build_report": "build", "run_report": "build", "write_report": "build",
         "choose_example_case": "example", "predict_example_case": "example"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"dcseg.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dcseg.report' has no attribute {name!r}")
