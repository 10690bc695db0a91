"""The evaluate stage on a tiny preprocessed dataset with an untrained model file."""

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from dcseg.checkpoint import data_fingerprint, model_record, save_atomic
from dcseg.cli import run_stage
from dcseg.config import ConfigError, load_params
from dcseg.data.dataset import build_preprocessed
from dcseg.data.splits import write_split
from dcseg.evaluation import score_case, evaluation_settings, summarise
from dcseg.metrics import CASE_COLUMNS, REGIONS
from dcseg.registry import build_model
from dcseg.runs import Run
from dcseg.subsets import SUBSETS

from .conftest import REPO, make_arrays, write_case

SPACING = (1.5, 1.5, 2.0)
SHAPE = (18, 18, 18)  # preprocessed to 16^3 (min_size): one 16^3 window
TEST_CASES = ["BraTS20_Training_003", "BraTS20_Training_004"]
OVERRIDES = ["profiles.cpu.models.rfnet.eval_patch=16", "profiles.cpu.evaluate.precision=fp32"]


def _load_stage():
    spec = importlib.util.spec_from_file_location("evaluate_stage", REPO / "stages" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save_model(root, name, model_name="rfnet", variant=None, drop=(), **identity):
    """A model file as the train stage writes it (``drop``: record fields left out, as in an older file)."""
    torch.manual_seed(0)
    options = Run(model_name, variant).model_options()
    model = build_model(model_name, width="cpu", base_channels=2, **options)
    identity.setdefault("data_hash", data_fingerprint(root / "data" / "preprocessed"))
    identity.setdefault("seed", 1024)
    identity.setdefault("seed_index", 0)
    record = model_record(model_name, "cpu", {"base_channels": 2, **options}, model, variant=variant, options=options,
                          **identity)
    save_atomic({k: v for k, v in record.items() if k not in drop}, root / "models" / name / "model.pt")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A stage working directory: data/preprocessed (4 cases, 2 in test) and models/rfnet_seed0/model.pt."""
    root = tmp_path_factory.mktemp("evaluate")
    ids = ["BraTS20_Training_001", "BraTS20_Training_002"] + TEST_CASES
    for seed, case in enumerate(ids):
        image, seg = make_arrays(SHAPE, seed=seed)
        write_case(root / "raw", case, image, seg, affine=np.diag(SPACING + (1.0,)))
    write_split(root / "splits", {"train": ids[:1], "val": ids[1:2], "test": ids[2:]})
    build_preprocessed(root / "raw", root / "splits", root / "data" / "preprocessed", min_size=(16, 16, 16),
                       progress=False)
    _save_model(root, "rfnet_seed0")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads would only add overhead
    yield
    torch.set_num_threads(threads)


def test_evaluate_stage_writes_per_case_rows_and_table1_means(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    _load_stage().main(["rfnet"] + OVERRIDES)

    cases = pd.read_csv(workdir / "metrics" / "rfnet_seed0_cases.csv")
    assert tuple(cases.columns) == CASE_COLUMNS
    assert len(cases) == len(TEST_CASES) * len(SUBSETS) * len(REGIONS)
    assert sorted(cases["case"].unique()) == TEST_CASES
    assert list(cases["subset"].unique()) == [s.name for s in SUBSETS]
    assert cases["dice"].between(0, 1).all() and cases["dice_post"].between(0, 1).all()
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(SHAPE, SPACING)))  # original grid, from the manifest
    assert cases["hd95"].between(0, diagonal + 1e-5).all()
    wt_tc = cases[cases.region != "ET"]
    assert np.allclose(wt_tc["dice"], wt_tc["dice_post"])  # post-processing only changes ET

    summary = json.loads((workdir / "metrics" / "rfnet_seed0.json").read_text())
    assert summary["n_cases"] == len(TEST_CASES) and "seconds" not in summary  # results only: reproducible bytes
    assert list(summary["subsets"]) == [s.name for s in SUBSETS]
    for metric in ("dice", "dice_post", "hd95"):
        for region in REGIONS:
            rows = cases[cases.region == region]
            assert summary["average"][metric][region] == pytest.approx(rows[metric].mean(), abs=1e-5)
            for subset in SUBSETS:
                expected = rows.loc[rows.subset == subset.name, metric].mean()
                assert summary["subsets"][subset.name][metric][region] == pytest.approx(expected, abs=1e-5)
    assert not list((workdir / "metrics").glob(".*tmp*"))  # written through temp files, none left behind


def test_summary_average_is_the_mean_over_subsets():
    rows = [{"case": c, "subset": s.name, "region": r, "dice": d, "dice_post": d, "hd95": 2 * d}
            for c, d0 in (("a", 0.2), ("b", 0.6)) for i, s in enumerate(SUBSETS) for r in REGIONS
            for d in [d0 + 0.01 * i]]
    summary = summarise(pd.DataFrame(rows))
    assert summary["subsets"]["t2"]["dice"]["WT"] == pytest.approx(0.4)
    assert summary["average"]["dice"]["ET"] == pytest.approx(0.4 + 0.01 * 7)
    assert summary["average"]["hd95"]["TC"] == pytest.approx(2 * (0.4 + 0.01 * 7))


def test_a_checkpoint_of_another_model_is_refused(workdir):
    _save_model(workdir, "mmformer_seed0")  # an RFNet file where the mmFormer model belongs
    p = subprocess.run([sys.executable, str(REPO / "stages" / "evaluate.py"), "mmformer"], cwd=workdir,
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    message = p.stderr.strip()
    assert message.startswith("evaluate: error:") and "Traceback" not in message
    assert "models/mmformer_seed0/model.pt" in message and "file has 'rfnet', expected 'mmformer'" in message


def test_a_checkpoint_from_other_data_is_refused(workdir, monkeypatch, capsys):
    _save_model(workdir, "dcseg_seed0", model_name="dcseg", data_hash="0" * 16)
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exit_info:
        run_stage("evaluate", _load_stage().main, ["dcseg"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "models/dcseg_seed0/model.pt" in err and "data_hash: file has '0000000000000000'" in err


def test_bad_arguments_and_params_name_the_problem():
    stage = _load_stage()
    with pytest.raises(ConfigError, match="usage"):
        stage.main(["profile=cpu"])
    with pytest.raises(ConfigError, match="unknown model 'unet'"):
        stage.main(["unet"])
    cfg = load_params(["profiles.cpu.evaluate.weighting=cosine"])
    with pytest.raises(ConfigError, match="profiles.cpu.evaluate.weighting"):
        evaluation_settings(cfg, "rfnet")
    cfg = load_params(["profiles.cpu.evaluate.overlap=1.0"])
    with pytest.raises(ConfigError, match="overlap"):
        evaluation_settings(cfg, "rfnet")
    settings, et_volume, device, hardware = evaluation_settings(load_params(), "mmformer")
    assert settings.patch == load_params().profiles.cpu.models.mmformer.eval_patch and et_volume == 500.0


def test_score_case_post_processes_only_et():
    label = np.zeros((12, 12, 12), np.uint8)
    label[3:9, 3:9, 3:9] = 2
    label[4:7, 4:7, 4:7] = 1  # a core without ET: BraTS ET empty
    prediction = label.copy()
    prediction[5, 5, 5:8] = 3  # a 3-voxel false-positive ET
    rows = score_case("c", prediction[None], label, (1.0, 1.0, 1.0), 99.0, et_min_voxels=4, subsets=SUBSETS[:1])
    by_region = {r["region"]: r for r in rows}
    assert [r["subset"] for r in rows] == ["t2"] * 3
    assert by_region["ET"]["dice"] == 0.0 and by_region["ET"]["dice_post"] == 1.0  # removed: empty vs empty
    assert by_region["ET"]["hd95"] == 99.0  # HD95 of the raw prediction: one mask empty -> the diagonal
    assert by_region["WT"]["dice"] == by_region["WT"]["dice_post"] == 1.0
    assert by_region["TC"]["dice"] == by_region["TC"]["dice_post"] < 1.0  # one ET voxel lies in the edema
    kept = score_case("c", prediction[None], label, (1.0, 1.0, 1.0), 99.0, et_min_voxels=3, subsets=SUBSETS[:1])
    assert kept[2]["dice_post"] == 0.0


def _refusal(workdir, *argv) -> str:
    p = subprocess.run([sys.executable, str(REPO / "stages" / "evaluate.py"), *argv], cwd=workdir,
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.startswith("evaluate: error:")
    return p.stderr


def test_an_ablation_model_is_refused_as_the_main_model_and_the_reverse(workdir):
    # issue 12, item 1: `cp models/dcseg_no_rec/model.pt models/dcseg_seed0/model.pt` was accepted
    _save_model(workdir, "dcseg_seed0", model_name="dcseg", variant="no_rec")
    err = _refusal(workdir, "dcseg")
    assert "models/dcseg_seed0/model.pt" in err and "variant: file has 'no_rec', expected None" in err
    _save_model(workdir, "dcseg_no_ana_seed0", model_name="dcseg")  # the main DC-Seg where a variant belongs
    err = _refusal(workdir, "dcseg", "--ablation", "no_ana")
    assert "models/dcseg_no_ana_seed0/model.pt" in err and "variant: file has None, expected 'no_ana'" in err
    _save_model(workdir, "dcseg_no_mod_seed0", model_name="dcseg", variant="no_mod")
    record = torch.load(workdir / "models/dcseg_no_mod_seed0/model.pt", weights_only=True)
    record["options"] = {}  # the right variant name, but built without the variant's options
    save_atomic(record, workdir / "models/dcseg_no_mod_seed0/model.pt")
    assert "options: file has {}" in _refusal(workdir, "dcseg", "--ablation", "no_mod")


def test_an_older_or_hand_made_model_file_is_refused_with_the_missing_fields(workdir):
    # issue 12, item 8: a record without some field gave a KeyError traceback
    _save_model(workdir, "mmformer_seed0", drop=("variant", "options", "seed"))
    err = _refusal(workdir, "mmformer")
    assert "models/mmformer_seed0/model.pt lacks the field(s) ['variant', 'options', 'seed']" in err
    assert "older or hand-made" in err


def test_a_model_of_another_seed_is_refused(workdir):
    """models/rfnet_seed1 holding seed 0's model (a copy) is refused: the seed index is part of the run's identity."""
    _save_model(workdir, "rfnet_seed1", seed_index=0)
    err = _refusal(workdir, "rfnet", "--seed", "1")
    assert "models/rfnet_seed1/model.pt" in err and "seed_index: file has 0, expected 1" in err
