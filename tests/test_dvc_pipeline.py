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
from dcseg.runs import matrix_runs

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
    runs = matrix_runs(yaml.safe_load((repo / "params.yaml").read_text()))
    assert f"{len(runs)} runs, 2 jobs" in p.stdout
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
    """phantom -> preprocess -> every run and seed trained and evaluated -> report on a shrunken copy of the real
    params (2 seeds of each model); then `loss.alpha` reruns exactly DC-Seg's stages and the report, a third seed
    adds its stages and reruns nothing else, and an ablation seed adds the five variants' stages. (The variants are
    not trained here, to keep CI within its budget: their stages are the DC-Seg stages with `--ablation`, and
    tests/test_settings.py shows they train like the main run.)"""
    # the BraTS pipeline alone: `dvc status` without targets also reports the WMH pipeline (wmh/dvc.yaml), which has
    # its own tests (tests/test_wmh_path.py, tests/test_table3.py)
    shutil.rmtree(repo_copy / "wmh")
    _set_params(repo_copy, **{
        "phantom.n_cases": 5, "phantom.voxel_size": 5.0, "preprocess.min_size": [32, 32, 32],
        "profiles.cpu.train.steps": 2, "profiles.cpu.train.steps_per_epoch": 1, "profiles.cpu.train.log_every": 1,
        "profiles.cpu.train.checkpoint_every": 1,
        "profiles.cpu.models.dcseg": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 1, "eval_patch": 32},
        "profiles.cpu.models.rfnet": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 1, "eval_patch": 32},
        "profiles.cpu.models.mmformer": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 0, "eval_patch": 32,
                                         "precision": "fp32"},
        "profiles.cpu.train.validation": {"every": 1, "subsets": ["flair"], "overlap": 0.5},
        "seeds": {"main": [0, 1], "ablation": []},
        "report.bootstrap_samples": 200,
    })
    models = ("dcseg", "rfnet", "mmformer")
    variants = ("no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")
    dcseg_stages = [f"train_dcseg@{r}" for r in (0, 1)] + [f"evaluate@dcseg-{r}" for r in (0, 1)] + [
        "report", "disentanglement"]
    # through the README's script: the runs' stages side by side (2 jobs), then the report
    ran = _ran(_parallel_repro(repo_copy))
    assert ran[:2] == ["phantom", "preprocess"] and set(ran[-2:]) == {"report", "disentanglement"}
    baselines = {f"{s}@{m}-{r}" for s in ("train", "evaluate") for m in ("rfnet", "mmformer") for r in (0, 1)}
    assert sorted(ran[2:]) == sorted(baselines | set(dcseg_stages))
    import json
    names = [f"{m}_seed{r}" for m in models for r in (0, 1)]
    for run in names:
        metrics = json.loads((repo_copy / "metrics" / f"{run}.json").read_text())
        assert set(metrics["average"]["dice"]) == {"WT", "TC", "ET"}
        rows = (repo_copy / "metrics" / f"{run}_cases.csv").read_text().splitlines()
        assert len(rows) == 1 + metrics["n_cases"] * 15 * 3
    seeds = {r: json.loads((repo_copy / f"logs/rfnet_seed{r}/train_summary.json").read_text()) for r in (0, 1)}
    assert seeds[1]["settings"]["seed"] == seeds[0]["settings"]["seed"] + 1  # seed index 1: the run's seed + 1
    assert [row["step"] for row in seeds[1]["validation"]["curve"]] == [1, 2]
    table1 = (repo_copy / "reports/table1.md").read_text()
    assert "| ● | ● | ● | ● |" in table1 and "Average" in table1
    assert "full" in (repo_copy / "reports/table2.md").read_text()  # the main DC-Seg run; no variant trained
    assert {p.name for p in (repo_copy / "reports/figures").iterdir()} >= {"dice_heatmap.png", "example_case.png"}
    fig3 = json.loads((repo_copy / "reports/disentanglement.json").read_text())
    assert list(fig3["runs"]) == ["full"] and fig3["left_out"] == ["no_contrastive", "no_ana", "no_mod"]
    assert "Data and pipelines are up to date" in _dvc(repo_copy, "status").stdout
    shown = _dvc(repo_copy, "metrics", "show").stdout
    assert "reports/summary.json" in shown and "table1.rfnet.WT.dice" in shown
    assert "average.dice.WT" in _dvc(repo_copy, "metrics", "show", "metrics/rfnet_seed0.json").stdout  # detail
    # issue 12, item 10: the headline metrics only, not 9 runs x 15 subsets x 3 regions x 3 metrics (1,526 columns)
    header = _dvc(repo_copy, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    metric_columns = [c for c in header if c.startswith(("table1", "table2", "reports/", "metrics/"))]
    assert 0 < len(metric_columns) <= 80, len(metric_columns)  # the headline numbers and labels only
    # a clone shows the training curves without retraining: small logs are in git, the curves are also a PNG
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"],
                ["git", "clone", "-q", str(repo_copy), str(repo_copy.parent / "clone")]):
        subprocess.run(cmd, cwd=repo_copy, check=True, capture_output=True)
    clone = repo_copy.parent / "clone"
    assert not (clone / "models").exists() and (clone / "logs/rfnet_seed1/live/plots/metrics/epoch/loss.tsv").is_file()
    assert (clone / "reports/figures/training_curves.png").read_bytes()[:4] == b"\x89PNG"
    plots = _dvc(clone, "plots", "show", "-o", "curves")
    assert "failed to load" not in (plots.stdout + plots.stderr).lower()
    html = (clone / "curves" / "index.html").read_text()
    assert all(f"logs/{m}_seed0/live/plots/metrics/epoch/loss.tsv" in html for m in models)

    # DC-Seg's loss weight reruns DC-Seg's runs and the report; never the data stages or the baselines
    # (--dry lists the stages that read the key: it cannot know which outputs the others would then change; the
    # whole rerun is not run here, to keep CI within its budget: the first repro above ran every one of them)
    alpha = yaml.safe_load((repo_copy / "params.yaml").read_text())["loss"]["alpha"]
    _set_params(repo_copy, **{"loss.alpha": alpha / 2})
    dry = set(_ran(_dvc(repo_copy, "repro", "--dry").stdout))
    assert {f"train_dcseg@{r}" for r in (0, 1)} <= dry <= set(dcseg_stages)
    _set_params(repo_copy, **{"loss.alpha": alpha})
    assert "Data and pipelines are up to date" in _dvc(repo_copy, "status").stdout
    # a third seed of every model: its stages and the report, nothing else
    # (`dvc status`, not `repro --dry`: a dry run stops at the first evaluation whose model does not exist yet)
    _set_params(repo_copy, **{"seeds": {"main": [0, 1, 2], "ablation": []}})
    added = {f"train@{m}-2" for m in ("rfnet", "mmformer")} | {"train_dcseg@2"} | {
        f"evaluate@{m}-2" for m in models} | {"report", "disentanglement"}
    assert set(json.loads(_dvc(repo_copy, "status", "--json").stdout)) == added
    # an ablation seed: the five variants' train and evaluate stages and the report
    _set_params(repo_copy, **{"seeds": {"main": [0, 1], "ablation": [0]}})
    added = {f"{s}@{v}-0" for s in ("train_ablation", "evaluate_ablation") for v in variants} | {
        "report", "disentanglement"}
    assert set(json.loads(_dvc(repo_copy, "status", "--json").stdout)) == added
    _set_params(repo_copy, **{"seeds": {"main": [0, 1], "ablation": []}})
    # an evaluation key reruns every evaluation and the report, no training
    _set_params(repo_copy, **{"profiles.cpu.evaluate.overlap": 0.25})
    dry = _ran(_dvc(repo_copy, "repro", "--dry").stdout)
    assert dry and not [s for s in dry if "train" in s] and "report" in dry
