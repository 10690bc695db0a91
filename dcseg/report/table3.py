"""The paper's Table 3 (WMH segmentation with FLAIR and T1): our runs of the WMH pipeline (``wmh/``) beside the
paper's numbers, with the statistics of Table 1 (``dcseg.report.statistics``: mean over seeds, across-seed SD and
min-max, hierarchical bootstrap CI, Holm-corrected labelled differences), the challenge's other four metrics, and
each run's validation curve with the convergence rule's verdict (``dcseg.convergence``), as Table 1 shows them.

Per scan, the value is its Dice (%) averaged over the three subsets (T1, FLAIR, both), as Table 1 uses the 15-subset
average; the statistics then average each subject's scans (the phantom has two time points per subject, which are
not independent) and resample and test over subjects (``splits/<data.source>/subjects.csv``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dcseg.config import require
from dcseg.data.errors import DataError
from dcseg.data.wmh import SUBJECTS_FILE, read_subjects
from dcseg.report.inputs import convergence_row, load_train_summary
from dcseg.report.layout import METHODS
from dcseg.report.statistics import compare_groups, group_statistics
from dcseg.report.tables import convergence_lines
from dcseg.runs import matrix_runs
from dcseg.tasks import WMH
from dcseg.wmh_metrics import WMH_METRICS

PAPER_TABLE3 = Path("paper/table3_wmh.csv")
PAPER_METHODS = ("RobustSeg", "RFNet", "mmFormer", "DC-Seg")
REGION = "WMH"
SOURCE_NAMES = {"wmh_phantom": "the WMH phantom", "wmh2017": "the MICCAI 2017 WMH challenge's training data"}
OTHER_METRICS = {"hd95": "HD95 (mm)", "avd": "AVD (%)", "recall": "lesion recall", "f1": "lesion F1"}


def load_paper_table3(path: str | Path) -> dict[str, dict[str, float]]:
    """Row (a subset name, or ``average``) -> paper method -> Dice (%)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; expected the paper's Table 3 (paper/README.md)")
    frame = pd.read_csv(path, dtype=str)
    names = {("0", "1"): "t1", ("1", "0"): "flair", ("1", "1"): "flair+t1", ("avg", "avg"): "average"}
    table = {}
    for _, row in frame.iterrows():
        key = names.get((row["flair"], row["t1"]))
        if key is None:
            raise DataError(f"{path}: row flags flair={row['flair']} t1={row['t1']}; expected 0/1 flags or avg")
        table[key] = {m: float(row[m]) for m in PAPER_METHODS}
    if set(table) != set(names.values()):
        raise DataError(f"{path}: rows {sorted(table)}; expected {sorted(names.values())}")
    return table


def load_cases(path: Path, run_name: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} is missing; run the WMH pipeline's evaluation of {run_name} first")
    frame = pd.read_csv(path)
    missing = [c for c in ("case", "subset", "region", *WMH_METRICS) if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; expected the WMH evaluation's columns")
    subsets = {s.name for s in WMH.subsets}
    if set(frame["subset"]) != subsets:
        raise DataError(f"{path}: subsets {sorted(set(frame['subset']))}; expected {sorted(subsets)}")
    return frame


def build_table3(cfg, root: str | Path = ".", paper_path: str | Path | None = None) -> dict:
    """Every number of Table 3 from the WMH runs under ``root`` (the WMH pipeline's folder)."""
    root = Path(root)
    source = str(require(cfg, "data.source"))
    subjects = read_subjects(root / "splits" / source / SUBJECTS_FILE)
    runs = [run for run in matrix_runs(cfg) if not run.is_ablation]
    samples, seed = int(require(cfg, "report.bootstrap_samples")), int(require(cfg, "report.seed"))
    cases = {run.name: load_cases(root / run.cases_csv, run.name) for run in runs}
    convergence = {run.name: convergence_row(load_train_summary(root / run.train_summary, run), run) for run in runs}
    groups = {model: {run.seed: run for run in runs if run.model == model} for model in METHODS}
    subset_names = [s.name for s in WMH.subsets]
    per_case, per_subset, others = {}, {}, {}
    for model, group in groups.items():
        per_case[model], per_subset[model], others[model] = {}, {}, {}
        for r, run in group.items():
            frame = cases[run.name]
            # each scan's 3-subset average Dice (%), averaged over the subject's scans: the statistics' unit
            scans = 100 * frame.groupby("case")["dice"].mean()
            unknown = sorted(set(scans.index) - set(subjects))
            if unknown:
                raise DataError(f"{root / run.cases_csv}: scans {unknown[:3]} are not in {SUBJECTS_FILE}")
            per_case[model][r] = scans.groupby(scans.index.map(subjects)).mean().to_frame(REGION)
            means = frame.groupby("subset")[list(WMH_METRICS)].mean()  # NaN (undefined AVD) left out
            per_subset[model][r] = {s: 100 * float(means.loc[s, "dice"]) for s in subset_names}
            others[model][r] = {m: float(means[m].mean()) for m in OTHER_METRICS}
    case_sets = {name: set(frame["case"]) for name, frame in cases.items()}
    if len({frozenset(c) for c in case_sets.values()}) > 1:
        raise DataError(f"the WMH runs were scored on different test cases: {case_sets}")
    statistics = {m: group_statistics(per_case[m], samples, seed, regions=(REGION,)) for m in METHODS}
    comparisons = compare_groups([("dcseg", "rfnet"), ("dcseg", "mmformer")], per_case, statistics,
                                 regions=(REGION,))
    scanned = next(iter(case_sets.values()))
    return {
        "source": source,
        "subsets": subset_names,
        "cases": len(scanned),
        "subjects": len({subjects[c] for c in scanned}),
        "seeds": {m: list(statistics[m].seeds) for m in METHODS},
        "per_subset": {m: {s: _mean_sd([per_subset[m][r][s] for r in per_subset[m]]) for s in subset_names}
                       for m in METHODS},
        "statistics": {m: {"mean": statistics[m].mean[REGION], "sd": statistics[m].sd[REGION],
                           "min": statistics[m].low[REGION], "max": statistics[m].high[REGION],
                           "ci": [statistics[m].ci_low[REGION], statistics[m].ci_high[REGION]],
                           "per_seed": {str(r): v[REGION] for r, v in statistics[m].per_seed.items()}}
                       for m in METHODS},
        "comparisons": [{"first": c.first, "second": c.second, "difference": c.difference,
                         "p": c.test.p_value, "p_holm": c.p_holm, "seed_sd": c.seed_sd, "label": c.label,
                         "reason": c.reason} for c in comparisons],
        "other_metrics": {m: {k: _mean_sd([others[m][r][k] for r in others[m]]) for k in OTHER_METRICS}
                          for m in METHODS},
        "convergence": convergence,
        "paper": load_paper_table3(paper_path or root / PAPER_TABLE3),
    }


def _mean_sd(values: list[float]) -> dict:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None}


def _pm(cell: dict, digits: int = 2) -> str:
    return f"{cell['mean']:.{digits}f}" + ("" if cell["sd"] is None else f" ± {cell['sd']:.{digits}f}")


def render_table3(t: dict) -> str:
    """Markdown: the paper's layout (rows T1, FLAIR, both, average) with ours beside the paper's, then the
    statistics, the labelled differences and the other metrics."""
    flags = {"t1": ("", "●"), "flair": ("●", ""), "flair+t1": ("●", "●")}
    ours = [METHODS[m] for m in METHODS]
    seeds = ", ".join(f"{METHODS[m]} {len(t['seeds'][m])}" for m in METHODS)
    lines = ["# Table 3: WMH segmentation (Dice %), FLAIR and T1", "",
             f"Ours: {SOURCE_NAMES.get(t['source'], t['source'])}, test split ({t['cases']} scans of "
             f"{t['subjects']} subjects), mean ± SD over seeds ({seeds}); the paper: SAHZU-WMH (private), "
             "its own split. Different data: hold the columns against each other for the ranking, not the values.", "",
             "| FLAIR | T1 | " + " | ".join(f"{name} (ours)" for name in ours) + " | "
             + " | ".join(f"{m} (paper)" for m in PAPER_METHODS) + " |",
             "|---|---|" + "---|" * (len(ours) + len(PAPER_METHODS))]
    for s in t["subsets"]:
        cells = [_pm(t["per_subset"][m][s]) for m in METHODS] + [f"{t['paper'][s][m]:.2f}" for m in PAPER_METHODS]
        lines.append(f"| {flags[s][0]} | {flags[s][1]} | " + " | ".join(cells) + " |")
    average = [_pm({"mean": t["statistics"][m]["mean"], "sd": t["statistics"][m]["sd"]}) for m in METHODS]
    lines.append("| Average | | " + " | ".join(f"**{c}**" for c in average) + " | "
                 + " | ".join(f"{t['paper']['average'][m]:.2f}" for m in PAPER_METHODS) + " |")
    lines += ["", "Statistics of the 3-subset average (as Table 1's): mean over seeds, across-seed SD, min-max, "
              "95 % CI from a hierarchical bootstrap (seeds, then test subjects, each the mean of its scans; coarse with "
              "few seeds).", "",
              "| method | seeds | mean ± SD | min-max | 95 % CI |", "|---|---|---|---|---|"]
    for m in METHODS:
        st = t["statistics"][m]
        sd = "" if st["sd"] is None else f" ± {st['sd']:.2f}"
        lines.append(f"| {METHODS[m]} | {len(t['seeds'][m])} | {st['mean']:.2f}{sd} | {st['min']:.2f}-{st['max']:.2f}"
                     f" | {st['ci'][0]:.2f}-{st['ci'][1]:.2f} |")
    lines += ["", "Differences (DC-Seg minus each baseline): **significant** when the paired Wilcoxon test over test "
              "subjects of the seed-averaged values has Holm p < 0.05 (over these comparisons) and the difference "
              "exceeds the larger across-seed SD; otherwise within noise.", "",
              "| comparison | difference | Holm p | label (reason) |", "|---|---|---|---|"]
    for c in t["comparisons"]:
        p = "n/a" if c["p_holm"] is None else f"{c['p_holm']:.3g}"
        lines.append(f"| {METHODS[c['first']]} - {METHODS[c['second']]} | {c['difference']:+.2f} | {p} | "
                     f"{c['label']} ({c['reason']}) |")
    lines += ["", "The challenge's other metrics (3-subset average; mean ± SD over seeds; label 2 masked, "
              "docs/wmh.md):", "", "| method | " + " | ".join(OTHER_METRICS.values()) + " |",
              "|---|" + "---|" * len(OTHER_METRICS)]
    for m in METHODS:
        lines.append(f"| {METHODS[m]} | " + " | ".join(_pm(t["other_metrics"][m][k]) for k in OTHER_METRICS) + " |")
    lines += [""] + convergence_lines(t["convergence"], regions=(REGION,), logs="wmh/logs", figure=None)
    return "\n".join(lines).rstrip("\n") + "\n"


def to_json(t: dict) -> str:
    return json.dumps(t, indent=2) + "\n"
