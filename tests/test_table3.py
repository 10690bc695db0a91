"""Table 3 (dcseg/report/table3.py) from synthetic WMH run outputs: the paper's layout, the seed statistics and the
labelled differences, and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from dcseg.convergence import curve_summary
from dcseg.data.errors import DataError
from dcseg.report.table3 import build_table3, load_paper_table3, render_table3
from dcseg.wmh_metrics import WMH_METRICS

PAPER = Path(__file__).resolve().parent.parent / "paper" / "table3_wmh.csv"
CFG = OmegaConf.create({"data": {"source": "wmh_phantom"}, "seeds": {"main": [0, 1, 2], "ablation": []},
                        "report": {"bootstrap_samples": 500, "seed": 0}})
OFFSET = {"rfnet": 0.0, "mmformer": -0.05, "dcseg": 0.20}  # DC-Seg clearly better on every scan


def _write_runs(root: Path, scans=24):
    (root / "metrics").mkdir(parents=True)
    (root / "splits" / "wmh_phantom").mkdir(parents=True)  # two scans per subject
    (root / "splits" / "wmh_phantom" / "subjects.csv").write_text(
        "scan,subject\n" + "".join(f"Phantom_{i:03d}_t0,S{i // 2}\n" for i in range(scans)))
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.7, scans)
    for model, offset in OFFSET.items():
        for seed in (0, 1, 2):
            rows = []
            for i in range(scans):
                for subset, shift in (("t1", -0.2), ("flair", 0.0), ("flair+t1", 0.02)):
                    value = base[i] + shift + offset + 0.005 * seed
                    rows.append({"case": f"Phantom_{i:03d}_t0", "subset": subset, "region": "WMH", "dice": value,
                                 "hd95": 5.0, "avd": 10.0 + seed, "recall": 0.5, "f1": 0.6})
            pd.DataFrame(rows, columns=["case", "subset", "region", *WMH_METRICS]).to_csv(
                root / "metrics" / f"{model}_seed{seed}_cases.csv", index=False)
            # the validation curve: DC-Seg still gaining 5 points over the final 30 %, the baselines flat
            gain = 0.05 if model == "dcseg" else 0.0
            curve = [{"step": step, "WMH": 0.3 + gain * step / 1200, "mean": 0.3 + gain * step / 1200}
                     for step in range(150, 1201, 150)]
            summary = {"steps": 1200, "seconds_per_step": 0.3,
                       "settings": {"crop": 24, "precision": "fp32", "batch_size": 2, "lr": 2e-3},
                       "validation": {"every": 150, "subsets": ["flair+t1"], "curve": curve,
                                      **curve_summary(curve, 1200)}}
            (root / "logs" / f"{model}_seed{seed}").mkdir(parents=True)
            (root / "logs" / f"{model}_seed{seed}" / "train_summary.json").write_text(json.dumps(summary))


def test_table3_layout_statistics_and_labels(tmp_path):
    _write_runs(tmp_path)
    table = build_table3(CFG, tmp_path, PAPER)
    assert table["subsets"] == ["t1", "flair", "flair+t1"] and table["cases"] == 24 and table["subjects"] == 12
    assert table["seeds"]["dcseg"] == [0, 1, 2]
    # per-subset means over seeds, in %: the seed offsets average to 0.005
    expected = 100 * (np.random.default_rng(0).uniform(0.4, 0.7, 24).mean() - 0.2 + 0.2 + 0.005)
    assert table["per_subset"]["dcseg"]["t1"]["mean"] == pytest.approx(expected)
    assert table["statistics"]["dcseg"]["sd"] == pytest.approx(0.5)  # seeds 0, 1, 2 step by 0.5 points
    labels = {c["second"]: c["label"] for c in table["comparisons"]}
    assert labels == {"rfnet": "significant", "mmformer": "significant"}
    assert table["other_metrics"]["rfnet"]["avd"]["mean"] == pytest.approx(11.0)
    text = render_table3(table)
    assert "| ● | ● |" in text and "60.42" in text and "significant" in text and "lesion F1" in text
    assert "24 scans of 12 subjects" in text and "the WMH phantom" in text
    trends = {name: row["trend"] for name, row in table["convergence"].items()}
    assert trends["dcseg_seed2"] == "still rising" and trends["rfnet_seed0"] == "plateaued" and len(trends) == 9
    assert table["convergence"]["dcseg_seed0"]["last"] == {"step": 1200, "dice": pytest.approx(35.0)}
    assert "(%, unprocessed, WMH Dice, over" in text and "wmh/logs/<run>" in text and "training_curves" not in text
    assert "Still rising at the end: dcseg_seed0, dcseg_seed1, dcseg_seed2" in text


def test_six_test_subjects_cannot_give_a_significant_label(tmp_path):
    # Wilcoxon over 6 pairs: the smallest two-sided p is 2 / 2^6 = 0.031, and Holm over two comparisons doubles it
    _write_runs(tmp_path, scans=12)
    labels = {c["second"]: c["label"] for c in build_table3(CFG, tmp_path, PAPER)["comparisons"]}
    assert labels == {"rfnet": "within noise", "mmformer": "within noise"}


def test_missing_run_and_bad_paper_file_fail_naming_the_file(tmp_path):
    _write_runs(tmp_path)
    (tmp_path / "metrics" / "mmformer_seed1_cases.csv").unlink()
    with pytest.raises(DataError, match="mmformer_seed1_cases.csv is missing"):
        build_table3(CFG, tmp_path, PAPER)
    _write_runs(tmp_path / "no_logs")
    (tmp_path / "no_logs" / "logs" / "rfnet_seed2" / "train_summary.json").unlink()
    with pytest.raises(DataError, match="rfnet_seed2/train_summary.json"):
        build_table3(CFG, tmp_path / "no_logs", PAPER)
    bad = tmp_path / "paper.csv"
    bad.write_text("flair,t1,RobustSeg,RFNet,mmFormer,DC-Seg\n0,1,1,2,3,4\n")
    with pytest.raises(DataError, match="rows"):
        load_paper_table3(bad)
