"""`dvc repro` of the real dvc.yaml on a shrunken copy of the real params, in a temporary copy of the repo."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcseg.config import ConfigError, load_params
from dcseg.runs import ALL_RUNS

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(**extra) -> dict:
    """The environment of a `dvc` call: this interpreter's bin/ first (the stages run `python`), no analytics."""
    return dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra)


def _dvc(cwd, *args, check=True):
    p = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def _parallel_repro(repo: Path) -> str:
    """scripts/parallel_repro.py (what scripts/repro.sh runs) with 2 jobs; its output."""
    p = subprocess.run([sys.executable, "scripts/parallel_repro.py"], cwd=repo, env=_env(REPRO_JOBS="2"),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{len(ALL_RUNS)} runs, 2 jobs" in p.stdout
    return p.stdout


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def _set_params(repo: Path, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *path, last = dotted.split(".")
        for k in path:
            node = node[k]
        assert last in node, dotted
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def repo_copy(tmp_path):
    """The project's tracked and untracked (not ignored) files, as a fresh git + DVC repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    dst = tmp_path / "repo"
    for f in filter(None, files):
        src = REPO / f
        # the pipeline's own results stay behind: the copy regenerates them
        if src.is_file() and not f.startswith(("data/", "reports/", "splits/phantom/", "metrics/", "logs/")) \
                and f != "dvc.lock":
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    _set_params(dst, **{"phantom.n_cases": 6, "phantom.voxel_size": 4.0, "preprocess.min_size": [24, 24, 24]})
    return dst


def test_repro_phantom_and_preprocess_then_noop_then_only_dependents(repo_copy):
    first = _dvc(repo_copy, "repro", "preprocess")
    assert _ran(first.stdout) == ["phantom", "preprocess"]
    manifest = (repo_copy / "data/preprocessed/manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + 6
    assert sorted(p.name for p in (repo_copy / "splits/phantom").iterdir()) == ["test.txt", "train.txt", "val.txt"]
    assert (repo_copy / "reports/phantom.png").stat().st_size > 1000

    again = _dvc(repo_copy, "repro", "preprocess")
    assert _ran(again.stdout) == []
    assert "Data and pipelines are up to date" in _dvc(repo_copy, "status", "preprocess").stdout

    _set_params(repo_copy, **{"phantom.noise": 0.05})  # a phantom key: phantom + preprocess, nothing else
    assert _ran(_dvc(repo_copy, "repro", "preprocess").stdout) == ["phantom", "preprocess"]

    _set_params(repo_copy, **{"preprocess.min_size": [32, 32, 32]})  # a preprocess key: preprocess only
    assert _ran(_dvc(repo_copy, "repro", "preprocess").stdout) == ["preprocess"]
    shape = (repo_copy / "data/preprocessed/manifest.csv").read_text().splitlines()[1].split(",")[2:5]
    assert all(int(v) >= 32 for v in shape)


def test_brats2020_source_without_data_fails_clearly_and_phantom_does_no_work(repo_copy):
    _set_params(repo_copy, **{"data.source": "brats2020"})
    assert _ran(_dvc(repo_copy, "repro", "phantom").stdout) == ["phantom"]
    assert (repo_copy / "data/raw/phantom/NOT_GENERATED.txt").is_file()
    assert not list((repo_copy / "data/raw/phantom").glob("BraTS20_*"))
    # DVC refuses a missing data folder before running anything, naming it ...
    p = _dvc(repo_copy, "repro", "preprocess", check=False)
    assert p.returncode != 0 and "data/raw/brats2020" in (p.stdout + p.stderr)
    # ... and so does the stage when run by hand, saying what to do.
    p = subprocess.run([sys.executable, "stages/preprocess.py"], cwd=repo_copy, capture_output=True, text=True)
    assert p.returncode == 1 and "data folder data/raw/brats2020 does not exist" in p.stderr
    assert not (repo_copy / "data/preprocessed").exists()


def test_stage_overrides_and_unknown_keys(repo_copy):
    cfg = load_params(["phantom.n_cases=3"], path=repo_copy / "params.yaml")
    assert cfg.phantom.n_cases == 3
    with pytest.raises(ConfigError, match="phantom.n_case"):
        load_params(["phantom.n_case=3"], path=repo_copy / "params.yaml")
    p = subprocess.run([sys.executable, "stages/preprocess.py", "preprocess.min_sise=[1,1,1]"], cwd=repo_copy,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "unknown key 'preprocess.min_sise'" in p.stderr


def test_tiny_full_pipeline_trains_evaluates_ablates_and_reports(repo_copy):
    """phantom -> preprocess -> train@* -> evaluate@* -> ablation_* -> report on a shrunken copy of the real params,
    then `loss.alpha` reruns exactly DC-Seg's stages, the ablation and the report."""
    _set_params(repo_copy, **{
        "phantom.n_cases": 5, "phantom.voxel_size": 5.0, "preprocess.min_size": [32, 32, 32],
        "profiles.cpu.train.steps": 2, "profiles.cpu.train.steps_per_epoch": 1, "profiles.cpu.train.log_every": 1,
        "profiles.cpu.train.checkpoint_every": 1,
        "profiles.cpu.models.dcseg": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 1, "eval_patch": 32},
        "profiles.cpu.models.rfnet": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 1, "eval_patch": 32},
        "profiles.cpu.models.mmformer": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 0, "eval_patch": 32,
                                         "precision": "fp32"},
        "profiles.cpu.ablation": {"steps": 1},
        "report.bootstrap_samples": 200,
    })
    models = ("dcseg", "rfnet", "mmformer")
    variants = ("full", "no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")
    dcseg_stages = ["train@dcseg", "evaluate@dcseg"] + [f"{s}@dcseg_{v}" for s in ("train", "evaluate")
                                                        for v in variants] + ["report"]
    # through the README's script: the runs' stages side by side (2 jobs), then the report
    ran = _ran(_parallel_repro(repo_copy))
    assert ran[:2] == ["phantom", "preprocess"] and ran[-1] == "report"
    assert sorted(ran[2:]) == sorted({f"{s}@{m}" for s in ("train", "evaluate") for m in models} | set(dcseg_stages))
    import json
    for run in models + tuple(f"dcseg_{v}" for v in variants):
        metrics = json.loads((repo_copy / "metrics" / f"{run}.json").read_text())
        assert set(metrics["average"]["dice"]) == {"WT", "TC", "ET"}
        rows = (repo_copy / "metrics" / f"{run}_cases.csv").read_text().splitlines()
        assert len(rows) == 1 + metrics["n_cases"] * 15 * 3
    assert json.loads((repo_copy / "logs/dcseg_no_rec/train_summary.json").read_text())["steps"] == 1
    table1 = (repo_copy / "reports/table1.md").read_text()
    assert "| ● | ● | ● | ● |" in table1 and "Average" in table1
    assert "no_reg" in (repo_copy / "reports/table2.md").read_text()
    assert {p.name for p in (repo_copy / "reports/figures").iterdir()} >= {"dice_heatmap.png", "example_case.png"}
    assert "Data and pipelines are up to date" in _dvc(repo_copy, "status").stdout
    shown = _dvc(repo_copy, "metrics", "show").stdout
    assert "reports/summary.json" in shown and "table1.rfnet.WT.dice" in shown
    assert "average.dice.WT" in _dvc(repo_copy, "metrics", "show", "metrics/rfnet.json").stdout  # detail on request
    # issue 12, item 10: the headline metrics only, not 9 runs x 15 subsets x 3 regions x 3 metrics (1,526 columns)
    header = _dvc(repo_copy, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    metric_columns = [c for c in header if c.startswith(("table1.", "table2.", "reports/", "metrics/"))]
    assert 0 < len(metric_columns) <= 60, len(metric_columns)
    # a clone shows the training curves without retraining: small logs are in git, the curves are also a PNG
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"],
                ["git", "clone", "-q", str(repo_copy), str(repo_copy.parent / "clone")]):
        subprocess.run(cmd, cwd=repo_copy, check=True, capture_output=True)
    clone = repo_copy.parent / "clone"
    assert not (clone / "models").exists() and (clone / "logs/rfnet/live/plots/metrics/epoch/loss.tsv").is_file()
    assert (clone / "reports/figures/training_curves.png").read_bytes()[:4] == b"\x89PNG"
    plots = _dvc(clone, "plots", "show", "-o", "curves")
    assert "failed to load" not in (plots.stdout + plots.stderr).lower()
    html = (clone / "curves" / "index.html").read_text()
    assert all(f"logs/{m}/live/plots/metrics/epoch/loss.tsv" in html for m in models)

    # DC-Seg's loss weight reruns DC-Seg, its ablation and the report; never the data stages or the baselines
    _set_params(repo_copy, **{"loss.alpha": 0.2})
    # --dry lists the stages that read the key (it cannot know which outputs the others would then change)
    dry = set(_ran(_dvc(repo_copy, "repro", "--dry").stdout))
    assert {"train@dcseg"} | {f"train@dcseg_{v}" for v in variants} <= dry <= set(dcseg_stages)
    assert sorted(_ran(_parallel_repro(repo_copy))) == sorted(dcseg_stages)
    # an evaluation key reruns every evaluation and the report, no training
    _set_params(repo_copy, **{"profiles.cpu.evaluate.overlap": 0.25})
    dry = _ran(_dvc(repo_copy, "repro", "--dry").stdout)
    assert dry and not [s for s in dry if "train" in s] and "report" in dry
