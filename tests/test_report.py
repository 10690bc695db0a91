"""The report stage (dcseg/report/, stages/report.py) on synthetic evaluation results: no training."""

import importlib.util
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dcseg.checkpoint import data_fingerprint, model_record, save_atomic
from dcseg.cli import run_stage
from dcseg.config import ConfigError, load_params
from dcseg.data.dataset import build_preprocessed
from dcseg.data.errors import DataError
from dcseg.data.splits import write_split
from dcseg.evaluation import write_results, summarise
from dcseg.losses import ABLATIONS
from dcseg.metrics import REGIONS
from dcseg.registry import build_model
from dcseg.report import (ABLATION_ROWS, AVERAGE, METHODS, PAPER_TABLE1_METHODS, ROWS, bootstrap_ci, build_report,
                          load_paper_table1, paired_wilcoxon, per_case_average, plot_example_case, report_settings,
                          run_report)
from dcseg.runs import Run, matrix_runs
from dcseg.subsets import SUBSETS, subset_by_name

from .conftest import REPO, make_arrays, write_case

PAPER_ORDER = ("flair", "t1", "t1ce", "t2")  # the paper's modality columns, written out independently here
FAST = ["report.bootstrap_samples=500"]
RUNS = list(matrix_runs(load_params(path=REPO / "params.yaml")))  # every run and seed of the default matrix
SEEDS = sorted({run.seed for run in RUNS if not run.is_ablation})


def seed_runs(model):
    """The runs (one per seed) of a main model."""
    return [Run(model, seed=seed) for seed in SEEDS]


def _cfg(overrides=()):
    return load_params(FAST + list(overrides), path=REPO / "params.yaml")


def _case_metrics(cases, level, rng):
    """Per case x subset x region metrics around a run-specific ``level``; ET post-processing lowers ET a bit so
    that the two ET columns differ."""
    rows = []
    for case in cases:
        case_effect = rng.normal(0, 0.08)
        for k, subset in enumerate(SUBSETS):
            for region in REGIONS:
                value = float(np.clip(level + case_effect + 0.01 * k + rng.normal(0, 0.05), 0, 1))
                post = max(value - 0.03, 0.0) if region == "ET" else value
                rows.append({"case": case, "subset": subset.name, "region": region, "dice": value,
                             "dice_post": post, "hd95": float(rng.uniform(2, 40))})
    return pd.DataFrame(rows)


def write_results_dir(root, cases, seed=0, copies=None, runs=None):
    """metrics/, logs/<run>/ (train_summary.json, the epoch-loss curve) and paper/ for the 8 runs; ``copies`` {run: source run} makes a
    run's results identical to another's."""
    rng = np.random.default_rng(seed)
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    runs = RUNS if runs is None else runs
    levels = {run.name: 0.5 + 0.03 * i for i, run in enumerate(runs)}
    frames = {run.name: _case_metrics(cases, levels[run.name], rng) for run in runs}
    for target, source in (copies or {}).items():
        frames[target] = frames[source]
    for run in runs:
        write_results(frames[run.name], summarise(frames[run.name]), root / run.cases_csv, root / run.metrics_json)
        curve_rows = [{"step": 10 * k, "WT": 0.1 * k, "TC": 0.1 * k, "ET": 0.1 * k, "mean": 0.1 * k}
                      for k in range(1, 6)]
        summary = {"model": run.model, "steps": 50, "seconds_per_step": 0.25,
                   "settings": {"model": run.model, "crop": 16, "precision": "fp32", "batch_size": 1, "lr": 1e-3},
                   "validation": {"every": 10, "subsets": ["flair"], "curve": curve_rows, "best": curve_rows[-1],
                                  "last": curve_rows[-1], "trend": "still rising"}}
        curve = root / run.log_dir / "live" / "plots" / "metrics" / "epoch" / "loss.tsv"
        curve.parent.mkdir(parents=True, exist_ok=True)
        curve.write_text("step\tloss\n" + "".join(f"{10 * k}\t{3.0 / k:.6f}\n" for k in range(1, 6)))
        (root / run.train_summary).write_text(json.dumps(summary))
    shutil.copytree(REPO / "paper", root / "paper", dirs_exist_ok=True)
    return frames


def write_manifest(root, cases):
    rows = [{"case": c, "split": "test", "n_ncr_net": 10 * i, "n_enhancing": 5} for i, c in enumerate(cases)]
    rows += [{"case": "train_case", "split": "train", "n_ncr_net": 0, "n_enhancing": 0}]
    (root / "data" / "preprocessed").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "data" / "preprocessed" / "manifest.csv", index=False)


CASES = [f"case_{i:02d}" for i in range(8)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results directory (8 test cases) and the report built from it, without the model-based figure."""
    root = tmp_path_factory.mktemp("results")
    frames = write_results_dir(root, CASES)
    write_manifest(root, CASES)
    report = build_report(_cfg(), root, with_example_case=False)
    yield root, frames, {str(path): text for path, text in report.texts.items()}
    for figure in report.figures.values():  # never written: close them
        plt.close(figure)


def table_after(text, heading):
    """Data rows (cells stripped) of the first markdown table after ``heading``, and its header."""
    lines = text.split("\n")
    start = next(i for i in range(lines.index(heading), len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[0], rows[2:]


def number(cell):
    return float(cell.strip("*"))


def metrics_json(root, run):
    return json.loads((root / run.metrics_json).read_text())


def seed_mean(root, model, *keys):
    """The mean over a main model's seeds of ``metrics_json(...)[k0][k1]...``."""
    values = []
    for run in seed_runs(model):
        value = metrics_json(root, run)
        for key in keys:
            value = value[key]
        values.append(value)
    return float(np.mean(values))


# --------------------------------------------------------------------------------------------------------------------
# Paper data


def test_paper_table1_maps_the_15_subsets_and_the_average_for_each_method():
    path = REPO / "paper" / "table1_brats2020.csv"
    paper = load_paper_table1(path)
    assert set(paper) == set(PAPER_TABLE1_METHODS)
    for rows in paper.values():
        assert set(rows) == set(ROWS)
        assert all(set(cells) == set(REGIONS) for cells in rows.values())
    for _, record in pd.read_csv(path, dtype=str).iterrows():
        if record["flair"] == "avg":
            row = AVERAGE
        else:
            present = {m for m in PAPER_ORDER if record[m] == "1"}
            row = next(s.name for s in SUBSETS if set(s.modalities) == present)
        assert paper[record["method"]][row][record["region"]] == float(record["dice"])
    # the paper's columns are FLAIR, T1, T1ce, T2: "0,0,1,0" is T1ce alone, "0,1,0,0" T1 alone
    assert paper["DC-Seg"]["t1ce"]["WT"] == 79.54
    assert paper["DC-Seg"]["t1"]["WT"] == 78.47
    assert paper["DC-Seg"][AVERAGE] == {"WT": 87.54, "TC": 79.63, "ET": 65.00}


def test_paper_table1_with_an_unknown_method_fails_naming_it(tmp_path):
    path = tmp_path / "table1.csv"
    path.write_text((REPO / "paper" / "table1_brats2020.csv").read_text().replace(",DC-Seg,", ",DCSeg,", 1))
    with pytest.raises(DataError, match=r"table1\.csv line \d+: unknown method 'DCSeg'"):
        load_paper_table1(path)


# --------------------------------------------------------------------------------------------------------------------
# Table 1


def test_table1_rows_have_the_subsets_modality_dots_in_the_papers_column_order(results):
    header, rows = table_after(results[2]["table1.md"], "## Dice (%) per modality subset")
    assert header[:4] == ["FLAIR", "T1", "T1ce", "T2"]
    assert len(rows) == 16 and rows[15][0] == "**Average**"
    for subset, row in zip(SUBSETS, rows):
        assert row[:4] == ["●" if m in subset.modalities else "○" for m in PAPER_ORDER], subset.name


def test_table1_values_come_from_the_metrics_with_the_chosen_et_column(results):
    root, _, texts = results
    header, rows = table_after(texts["table1.md"], "## Dice (%) per modality subset")
    flair_t1ce = rows[[s.name for s in SUBSETS].index("flair+t1ce")]
    wt = 100 * seed_mean(root, "dcseg", "subsets", "flair+t1ce", "dice", "WT")  # the mean over the seeds
    assert number(flair_t1ce[header.index("WT DC-Seg")]) == round(wt, 2)
    assert wt != 100 * metrics_json(root, Run("dcseg"))["subsets"]["flair+t1ce"]["dice"]["WT"]  # not seed 0 alone
    post = 100 * seed_mean(root, "dcseg", "subsets", "flair+t1ce", "dice_post", "ET")
    assert post != 100 * seed_mean(root, "dcseg", "subsets", "flair+t1ce", "dice", "ET")
    assert number(flair_t1ce[header.index("ET DC-Seg")]) == round(post, 2)


def test_table1_average_row_is_the_mean_of_the_15_subset_rows(results):
    root, _, texts = results
    header, rows = table_after(texts["table1.md"], "## Dice (%) per modality subset")
    for column, name in enumerate(header[4:], start=4):
        if "(paper)" in name:
            continue
        region, label = name.split(" ", 1)
        model = next(r for r, lab in METHODS.items() if lab == label)
        metric = "dice_post" if region == "ET" else "dice"
        exact = np.mean([100 * seed_mean(root, model, "subsets", s.name, metric, region) for s in SUBSETS])
        assert number(rows[15][column]) == round(exact, 2)
        assert abs(number(rows[15][column]) - np.mean([number(r[column]) for r in rows[:15]])) <= 0.0065


def test_table1_bolds_the_best_measured_value_per_row_and_region(results):
    header, rows = table_after(results[2]["table1.md"], "## Dice (%) per modality subset")
    for region in REGIONS:
        columns = [header.index(f"{region} {label}") for label in METHODS.values()]
        for row in rows:
            best = max(number(row[c]) for c in columns)
            assert [row[c].startswith("**") for c in columns] == [number(row[c]) == best for c in columns]
        assert not any(row[header.index(f"{region} DC-Seg (paper)")].startswith("**") for row in rows)


def test_table1_measured_minus_paper_is_the_difference(results):
    root, _, texts = results
    header, rows = table_after(texts["table1.md"], "## Measured minus paper")
    paper = pd.read_csv(REPO / "paper" / "table1_brats2020.csv", dtype=str)
    # FLAIR + T1ce present: flags 1,0,1,0 in the paper's column order
    record = paper[(paper.flair == "1") & (paper.t1 == "0") & (paper.t1ce == "1") & (paper.t2 == "0")
                   & (paper.region == "TC") & (paper.method == "mmFormer")]
    measured = 100 * seed_mean(root, "mmformer", "subsets", "flair+t1ce", "dice", "TC")
    row = rows[[s.name for s in SUBSETS].index("flair+t1ce")]
    assert row[:4] == ["●", "○", "●", "○"]
    assert number(row[header.index("TC mmFormer")]) == round(measured - float(record.dice.iloc[0]), 2)
    assert rows[15][0] == "**Average**" and rows[15][header.index("WT DC-Seg")].startswith(("+", "-"))


def test_table1_hd95_bolds_the_lowest(results):
    header, rows = table_after(results[2]["table1.md"], "## HD95 (mm)")
    assert len(rows) == 16
    for region in REGIONS:
        columns = [header.index(f"{region} {label}") for label in METHODS.values()]
        for row in rows:
            low = min(number(row[c]) for c in columns)
            assert [row[c].startswith("**") for c in columns] == [number(row[c]) == low for c in columns]


def test_table1_seed_statistics_and_summary_json_match_the_average(results):
    root, frames, texts = results
    summary = json.loads(texts["summary.json"])
    statistics = json.loads(texts["statistics.json"])
    header, main_rows = table_after(texts["table1.md"], "## Dice (%) per modality subset")
    _, seed_rows = table_after(texts["table1.md"], "## Per seed")
    for run, label in METHODS.items():
        for region in REGIONS:
            entry = summary["table1"][run][region]
            assert entry["dice"] == number(main_rows[15][header.index(f"{region} {label}")])
            assert entry["ci_low"] <= entry["dice"] <= entry["ci_high"]
            detail = statistics["table1"][run][region]
            per_seed = [float(r[2 + REGIONS.index(region)]) for r in seed_rows if r[0] == label]
            assert len(per_seed) == len(SEEDS) == detail["n_seeds"]
            assert detail["min"] == min(per_seed) and detail["max"] == max(per_seed)
            assert detail["sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=0.011)
            assert entry["dice"] == pytest.approx(np.mean(per_seed), abs=0.011)
    assert list(summary["table2"]) == list(ABLATION_ROWS)
    assert summary["n_test_cases"] == len(CASES) and summary["et_column"] == "dice_post"
    # the same labels in the table, the headline file and the detail file
    header, rows = table_after(texts["table1.md"], "| comparison | region | difference | larger seed SD | Wilcoxon p "
                                                   "| Holm p | label | why |")
    assert len(rows) == 6
    for row in rows:
        other = next(m for m, lab in METHODS.items() if row[0].endswith(lab))
        label = row[header.index("label")].strip("*")
        assert summary["table1_labels"][f"dcseg_vs_{other}"][row[1]] == label
        assert statistics["table1_comparisons"][f"dcseg_vs_{other}"][row[1]]["label"] == label


# --------------------------------------------------------------------------------------------------------------------
# Statistics


def test_bootstrap_ci_contains_the_estimate_is_deterministic_and_narrows_with_more_cases(results):
    per_case = per_case_average(results[1]["dcseg_seed0"], "dice_post").to_numpy()
    low, high = bootstrap_ci(per_case, 2000, seed=3)
    assert np.all(low <= per_case.mean(axis=0)) and np.all(per_case.mean(axis=0) <= high)
    again_low, again_high = bootstrap_ci(per_case, 2000, seed=3)
    np.testing.assert_array_equal(low, again_low)
    np.testing.assert_array_equal(high, again_high)
    assert not np.array_equal(low, bootstrap_ci(per_case, 2000, seed=4)[0])

    rng = np.random.default_rng(0)
    few, many = rng.normal(70, 10, 10), rng.normal(70, 10, 1000)
    width = {n: np.subtract(*bootstrap_ci(v, 2000, seed=0)[::-1]) for n, v in ((10, few), (1000, many))}
    assert width[1000] < width[10] / 3


def test_paired_wilcoxon_matches_scipy_and_is_na_without_differences():
    rng = np.random.default_rng(1)
    a, b = rng.normal(80, 5, 12), rng.normal(78, 5, 12)
    test = paired_wilcoxon(a, b)
    assert test.p_value == stats.wilcoxon(a - b, alternative="two-sided").pvalue
    assert test.median_difference == np.median(a - b) and test.n_cases == 12
    same = paired_wilcoxon(a, a)
    assert same.p_value is None and "zero" in same.reason
    one = paired_wilcoxon(a[:1], b[:1])
    assert one.p_value is None and "at least 2" in one.reason


COMPARISONS = "| comparison | region | difference | larger seed SD | Wilcoxon p | Holm p | label | why |"


def test_table1_wilcoxon_rows_match_scipy_on_the_seed_averaged_cases(results):
    _, frames, texts = results
    header, rows = table_after(texts["table1.md"], COMPARISONS)

    def et_per_case(model):  # each case's 15-subset mean of the post-processed ET Dice, in %, averaged over seeds
        per_seed = [100 * frames[run.name][frames[run.name].region == "ET"].groupby("case")["dice_post"].mean()
                    for run in seed_runs(model)]
        return sum(per_seed) / len(per_seed)

    d = et_per_case("dcseg") - et_per_case("rfnet")
    row = next(r for r in rows if r[0] == "DC-Seg − RFNet" and r[1] == "ET")
    p = stats.wilcoxon(d).pvalue
    assert float(row[header.index("Wilcoxon p")]) == pytest.approx(p, rel=1e-2)
    assert number(row[header.index("difference")]) == pytest.approx(float(d.mean()), abs=0.006)
    raw = [float(r[header.index("Wilcoxon p")]) for r in rows]  # Holm over the table's 6 comparisons
    rank = sorted(raw).index(float(row[header.index("Wilcoxon p")]))
    assert float(row[header.index("Holm p")]) >= min(1.0, (len(raw) - rank) * p) * 0.99


def test_identical_methods_give_na_not_a_crash(tmp_path):
    write_results_dir(tmp_path, CASES[:4], copies={f"rfnet_seed{s}": f"dcseg_seed{s}" for s in SEEDS})
    write_manifest(tmp_path, CASES[:4])
    text = build_report(_cfg(), tmp_path, with_example_case=False).texts
    table1 = text[next(p for p in text if p.name == "table1.md")]
    header, rows = table_after(table1, COMPARISONS)
    for row in (r for r in rows if r[0] == "DC-Seg − RFNet"):
        assert row[header.index("Wilcoxon p")] == "n/a (all differences are zero)"
        assert row[header.index("label")] == "within noise" and row[header.index("why")] == "test undefined"
    assert all(r[header.index("Wilcoxon p")] != "n/a (all differences are zero)" for r in rows
               if r[0] != "DC-Seg − RFNet")


# --------------------------------------------------------------------------------------------------------------------
# Table 2


def test_table2_check_marks_follow_ablations_and_deltas_are_measured_minus_full(results):
    root, _, texts = results
    header, rows = table_after(texts["table2.md"], "## 15-subset average Dice (%)")
    assert [r[0] for r in rows] == list(ABLATION_ROWS)
    # full is Table 1's DC-Seg (all its seeds); the variants have one seed each
    assert rows[0][1] == str(len(SEEDS)) and all(r[1] == "1" for r in rows[1:])
    for row in rows:
        for term in ("ana", "mod", "rec", "reg"):
            assert row[header.index(term.capitalize())] == ("✓" if getattr(ABLATIONS[row[0]], term) else "✗")
    full = 100 * seed_mean(root, "dcseg", "average", "dice", "WT")
    assert number(rows[0][header.index("WT mean ± SD")].split(" ± ")[0]) == round(full, 2)
    header, rows = table_after(texts["table2.md"], "## Change from removing the component (variant minus full)")
    no_rec = 100 * metrics_json(root, Run("dcseg", "no_rec"))["average"]["dice"]["WT"]
    row = next(r for r in rows if r[0] == "no_rec − full" and r[1] == "WT")
    assert number(row[header.index("difference")]) == pytest.approx(no_rec - full, abs=0.006)
    assert number(row[header.index("paper difference")]) == round(86.58 - 87.54, 2)
    assert len(rows) == 15  # 5 variants x 3 regions, one Holm family


def test_one_seed_and_no_variants_the_quick_setting_still_reports(tmp_path):
    """`seeds.main: [0]`, `seeds.ablation: []`: Table 1 has no seed SD (so nothing is significant), Table 2 only its
    full row."""
    cfg = _cfg(["seeds.main=[0]", "seeds.ablation=[]"])
    write_results_dir(tmp_path, CASES[:5], runs=list(matrix_runs(cfg)))
    write_manifest(tmp_path, CASES[:5])
    texts = {str(p): t for p, t in build_report(cfg, tmp_path, with_example_case=False).texts.items()}
    header, rows = table_after(texts["table1.md"], COMPARISONS)
    assert {r[header.index("label")] for r in rows} == {"within noise"}
    assert all("seed spread unknown" in r[header.index("why")] or "Holm p" in r[header.index("why")] for r in rows)
    _, rows = table_after(texts["table2.md"], "## 15-subset average Dice (%)")
    assert [r[0] for r in rows] == ["full"] and "No variant was trained" in texts["table2.md"]
    assert json.loads(texts["summary.json"])["table1"]["rfnet"]["WT"]["sd"] is None


# --------------------------------------------------------------------------------------------------------------------
# Bad input: a clear error naming the file or key, and nothing written


def test_missing_ablation_metrics_names_the_file_and_writes_nothing(tmp_path):
    write_results_dir(tmp_path, CASES[:3])
    write_manifest(tmp_path, CASES[:3])
    (tmp_path / "metrics" / "dcseg_no_rec_seed0.json").unlink()
    with pytest.raises(DataError, match=r"metrics/dcseg_no_rec_seed0\.json is missing; run `dvc repro "
                                        r"evaluate_ablation@no_rec-0`"):
        run_report(_cfg(), tmp_path, with_example_case=False)
    assert not (tmp_path / "reports").exists()


def test_corrupt_metrics_and_a_missing_subset_are_named(tmp_path):
    write_results_dir(tmp_path, CASES[:3])
    write_manifest(tmp_path, CASES[:3])
    path = tmp_path / "metrics" / "mmformer_seed1.json"
    good = path.read_text()
    path.write_text(good[:40])
    with pytest.raises(DataError, match=r"metrics/mmformer_seed1\.json is not valid JSON"):
        build_report(_cfg(), tmp_path, with_example_case=False)
    summary = json.loads(good)
    del summary["subsets"]["flair+t1"]
    path.write_text(json.dumps(summary))
    with pytest.raises(DataError, match=r"metrics/mmformer_seed1\.json: subset 'flair\+t1' is missing"):
        build_report(_cfg(), tmp_path, with_example_case=False)


def test_bad_report_params_name_the_key():
    with pytest.raises(ConfigError, match=r"report\.et_column is 'raw'; expected one of \['dice_post', 'dice'\]"):
        report_settings(_cfg(["report.et_column=raw"]))
    with pytest.raises(ConfigError, match=r"report\.figure_subsets.*'t1ce\+flair'"):
        report_settings(_cfg(["report.figure_subsets=[t1ce+flair]"]))
    with pytest.raises(ConfigError, match=r"report\.bootstrap_samples"):
        report_settings(_cfg(["report.bootstrap_samples=0"]))


def test_stage_reports_bad_input_in_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    write_results_dir(tmp_path, CASES[:3])
    write_manifest(tmp_path, CASES[:3])
    (tmp_path / "logs" / "dcseg_no_ana_seed0" / "train_summary.json").unlink()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_stage("report", _load_stage().main, FAST)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "logs/dcseg_no_ana_seed0/train_summary.json is missing" in err
    assert not (tmp_path / "reports").exists()


# --------------------------------------------------------------------------------------------------------------------
# The stage end to end, with tiny untrained models for the example figure

SHAPE = (18, 18, 18)  # preprocessed to 16^3 (min_size)
TINY_MODELS = {
    "rfnet": ({"base_channels": 2}, 16),
    "dcseg": ({"base_channels": 2}, 16),
    "mmformer": ({"base_channels": 2, "transformer_dim": 8, "mlp_dim": 16, "heads": 1, "crop_size": 32}, 32),
}


def _load_stage():
    spec = importlib.util.spec_from_file_location("report_stage", REPO / "stages" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_writes_every_report_with_the_example_figure(tmp_path, monkeypatch, capsys):
    ids = [f"BraTS20_Training_00{i}" for i in range(1, 5)]
    for seed, case in enumerate(ids):
        image, seg = make_arrays(SHAPE, seed=seed)
        write_case(tmp_path / "raw", case, image, seg)
    write_split(tmp_path / "splits", {"train": ids[:1], "val": ids[1:2], "test": ids[2:]})
    preprocessed = tmp_path / "data" / "preprocessed"
    build_preprocessed(tmp_path / "raw", tmp_path / "splits", preprocessed, min_size=(16, 16, 16), progress=False)
    write_results_dir(tmp_path, ids[2:])
    overrides = FAST + ["profiles.cpu.evaluate.precision=fp32", "report.figure_subsets=[t2,flair+t1ce]"]
    for name, (options, patch) in TINY_MODELS.items():
        torch.manual_seed(0)
        model = build_model(name, width="cpu", **options)
        save_atomic(model_record(name, "cpu", options, model, seed=0, seed_index=0,
                                 data_hash=data_fingerprint(preprocessed)), Path(tmp_path) / Run(name).model_dir / "model.pt")
        overrides.append(f"profiles.cpu.models.{name}.eval_patch={patch}")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)

    run_stage("report", _load_stage().main, overrides)
    assert "report: done" in capsys.readouterr().out
    for name in ("table1.md", "table2.md", "summary.json", "statistics.json", "figures/dice_heatmap.png",
                 "figures/example_case.png",
                 "figures/training_curves.png"):
        assert (tmp_path / "reports" / name).stat().st_size > 0, name
    assert (tmp_path / "reports" / "figures" / "example_case.png").read_bytes()[:4] == b"\x89PNG"
    assert "test cases evaluated: 2" in (tmp_path / "reports" / "table1.md").read_text()

    with pytest.raises(SystemExit):  # a figure case outside the test split names the key
        run_stage("report", _load_stage().main, overrides + ["report.figure_case=BraTS20_Training_001"])
    assert "'report.figure_case' is 'BraTS20_Training_001', not a test case" in capsys.readouterr().err


def test_example_figure_from_given_predictions():
    image, seg = make_arrays((12, 14, 10), seed=0)
    label = np.where(seg == 4, 3, seg).astype(np.uint8)
    subsets = (subset_by_name("flair"), subset_by_name("flair+t1ce+t1+t2"))
    predictions = {"RFNet": np.stack([label, np.zeros_like(label)]), "DC-Seg": np.stack([label, label])}
    figure = plot_example_case(image, label, predictions, subsets, "case")
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles[:5] == ["FLAIR", "T1", "T1ce", "T2", "ground truth"]
    assert titles[5] == "FLAIR\nWT 100 TC 100 ET 100" and titles[6].startswith("FLAIR+T1ce+T1+T2\nWT 0 ")
    plt.close(figure)


def test_commit_line_ignores_the_pipelines_own_results_but_not_code(tmp_path):
    """DVC rewrites dvc.lock and deletes a stage's outputs while it runs; only other changes make the tree dirty."""
    import subprocess

    from dcseg.report import describe_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    results = ("dvc.lock", "metrics/rfnet.json", "reports/table1.md", "logs/rfnet_seed0/train_summary.json",
               "wmh/dvc.lock", "wmh/metrics/rfnet_seed0.json", "wmh/logs/rfnet_seed0/train_summary.json",
               "wmh/splits/wmh_phantom/split.csv")
    for path in (*results, "dcseg/code.py", "wmh/params.yaml"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("v1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    clean = describe_commit(tmp_path)
    assert len(clean) >= 7 and "uncommitted" not in clean
    for path in results:
        (tmp_path / path).write_text("v2\n")
    (tmp_path / "reports/table1.md").unlink()
    assert describe_commit(tmp_path) == clean
    assert describe_commit(tmp_path / "wmh") == clean  # the WMH pipeline runs in wmh/
    (tmp_path / "wmh/params.yaml").write_text("v2\n")
    assert describe_commit(tmp_path) == f"{clean} + uncommitted changes"
    git("checkout", "wmh/params.yaml")
    (tmp_path / "dcseg/code.py").write_text("v2\n")
    assert describe_commit(tmp_path) == f"{clean} + uncommitted changes"
    assert describe_commit(tmp_path / "dcseg") == f"{clean} + uncommitted changes"  # run from a subfolder
    assert describe_commit(tmp_path / "wmh") == f"{clean} + uncommitted changes"  # a change outside the folder
